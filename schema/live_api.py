"""GraphQL subscriptions (``graphql-transport-ws`` on ``/graphql``): what happens to the cases and the
appointments a person may see, as it happens.

An update says that a case (or an appointment) changed (its id, the event's type and time, its status):
the client asks a query for what it wants to show, under the same access rules. Each event is checked
against the subscriber's access when it arrives, in a short read of its own (her session may have ended,
the case may have been handed to another clinician), so a subscription shows what the same query would
show her then.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from strawberry import relay

from legetime.core.appointments import access as appointment_access
from legetime.core.consultation.access import Unauthenticated, load_case, readable
from legetime.core.identity.actors import require_operator
from legetime.core.identity.auth import authenticate
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.errors import Forbidden, NotFound
from legetime.core.platform.events import Event, EventType
from legetime.schema.appointment_api import AppointmentStatus
from legetime.schema.case_types import CaseStatus
from legetime.schema.context import Context
from legetime.schema.mutation import global_uuid
from legetime.schema.operator_api import OperationFigures, operation_figures


@strawberry.type(description="A case changed: ask a query for what to show. Ids and statuses only.")
class CaseUpdate:
    case_id: strawberry.ID = strawberry.field(description="The case's global id (as `Case.id`).")
    type: str = strawberry.field(
        description="What happened: an event type of docs/events.md, e.g. `case.answered`."
    )
    status: CaseStatus | None  # type: ignore[valid-type]
    occurred_at: datetime


@strawberry.type(description="An appointment changed: ask a query for what to show. Ids and statuses only.")
class AppointmentUpdate:
    appointment_id: strawberry.ID = strawberry.field(description="As `Appointment.id`.")
    type: str = strawberry.field(description="What happened, e.g. `appointment.booked` (docs/events.md).")
    status: AppointmentStatus  # type: ignore[valid-type]
    occurred_at: datetime


QUEUE_EVENTS = frozenset(
    {
        EventType.CASE_SUBMITTED,
        EventType.CASE_CLAIMED,
        EventType.CASE_CLAIM_RELEASED,
        EventType.CASE_OVERDUE,
        EventType.CASE_SLA_WARNING,
        EventType.CASE_CANCELLED,
        EventType.CASE_ANSWERED,
    }
)
"""What changes the clinicians' queue (``caseQueue``): a case in, taken, given back, near its deadline,
overdue, withdrawn, answered."""


FIGURES_EVERY = 2.0
"""How often at most the operation's figures are recomputed for a subscriber (a few aggregate queries)."""


@strawberry.type
class LiveSubscription:
    @strawberry.subscription(
        description="Updates of the cases you may read (a patient: hers and her children's; a clinician: "
        "those she holds), or of one case (`caseId`). Log in over the socket first: the "
        '`connection_init` payload `{"Authorization": "Bearer <token>"}`.'
    )
    async def case_updates(
        self, info: strawberry.Info[Context, None], case_id: strawberry.ID | None = None
    ) -> AsyncGenerator[CaseUpdate, None]:
        context = info.context
        if context.actor.person_id is None:
            raise Unauthenticated("Logg inn for å følge sakene dine.")
        only = global_uuid(case_id) if case_id is not None else None
        async for event in context.platform.live.subscribe():
            if event.case_id is None or (only is not None and event.case_id != only):
                continue
            if await _may_see(context, event):
                yield _update(event)

    @strawberry.subscription(
        description="Updates of the appointments you may see (a patient: hers and her children's; a "
        "clinician: hers and the booking requests; an operator: all), or of one (`appointmentId`). Log in "
        "over the socket first."
    )
    async def appointment_updates(
        self, info: strawberry.Info[Context, None], appointment_id: strawberry.ID | None = None
    ) -> AsyncGenerator[AppointmentUpdate, None]:
        context = info.context
        if context.actor.person_id is None:
            raise Unauthenticated("Logg inn for å følge timene dine.")
        only = str(appointment_id) if appointment_id is not None else None
        async for event in context.platform.live.subscribe():
            about = event.data.get("appointment_id") if event.case_id is None else None
            if about is None or (only is not None and about != only):
                continue
            if await _may_see_appointment(context, uuid.UUID(about)):
                yield AppointmentUpdate(
                    appointment_id=strawberry.ID(about),
                    type=event.type.value,
                    status=AppointmentStatus[event.data["appointment_status"]],
                    occurred_at=event.occurred_at,
                )

    @strawberry.subscription(
        description="Clinicians: the queue as it changes (a case submitted, claimed, given back, overdue, "
        "withdrawn or answered), for the cases `caseQueue` shows you. Log in over the socket first."
    )
    async def queue_updates(self, info: strawberry.Info[Context, None]) -> AsyncGenerator[CaseUpdate, None]:
        context = info.context
        if context.actor.person_id is None:
            raise Unauthenticated("Logg inn for å følge køen.")
        if not context.actor.is_clinician:
            raise Forbidden("Bare leger har tilgang.")
        async for event in context.platform.live.subscribe():
            if event.type in QUEUE_EVENTS and await _may_see(context, event):
                yield _update(event)

    @strawberry.subscription(
        description="Operators: the operation's figures (cases by status, open, overdue, answer times), "
        f"now and again whenever they may have changed, at most every {FIGURES_EVERY:g} seconds. Log in "
        "over the socket first."
    )
    async def operation_figures(
        self, info: strawberry.Info[Context, None]
    ) -> AsyncGenerator[OperationFigures, None]:
        context = info.context
        if context.actor.person_id is None:
            raise Unauthenticated("Logg inn for å følge driften.")
        require_operator(context.actor)
        yield await _figures(context)
        async for _ in context.platform.live.batches(FIGURES_EVERY):
            yield await _figures(context)


async def _figures(context: Context) -> OperationFigures:
    """The figures, in a short read of its own, for an operator whose session still stands."""
    platform = context.platform
    async with platform.db.read_sessions() as session:
        actor = await authenticate(session, platform, context.token)
        if actor.person_id is None:
            raise Unauthenticated("Økten er avsluttet. Logg inn på nytt.")
        require_operator(actor)
        return await operation_figures(session, utcnow())


def _update(event: Event) -> CaseUpdate:
    return CaseUpdate(
        case_id=strawberry.ID(relay.to_base64("Case", str(event.case_id))),
        type=event.type.value,
        status=CaseStatus[event.case_status] if event.case_status else None,
        occurred_at=event.occurred_at,
    )


async def _may_see(context: Context, event: Event) -> bool:
    """Whether she may read the case now (a short read of its own); her session must still stand, or the
    subscription ends with ``UNAUTHENTICATED``."""
    platform = context.platform
    async with platform.db.read_sessions() as session:
        actor = await authenticate(session, platform, context.token)
        if actor.person_id is None:
            raise Unauthenticated("Økten er avsluttet. Logg inn på nytt.")
        ctx = Ctx(session=session, platform=platform, actor=actor)
        assert event.case_id is not None
        try:
            await load_case(ctx, event.case_id, readable(actor, ctx.today))
        except NotFound:
            return False
        return True


async def _may_see_appointment(context: Context, appointment_id: uuid.UUID) -> bool:
    """Whether she may see the appointment now (a short read of its own), as ``_may_see`` for cases."""
    platform = context.platform
    async with platform.db.read_sessions() as session:
        actor = await authenticate(session, platform, context.token)
        if actor.person_id is None:
            raise Unauthenticated("Økten er avsluttet. Logg inn på nytt.")
        ctx = Ctx(session=session, platform=platform, actor=actor)
        try:
            await appointment_access.load(ctx, appointment_id, appointment_access.readable(actor, ctx.today))
        except NotFound:
            return False
        return True
