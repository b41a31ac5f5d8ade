"""The domain events of appointments (``legetime.core.platform.events``), emitted where the change is made,
in its transaction, so an event exists if and only if the change committed.

An appointment event is about no case (``case_id`` and ``case_status`` are null: the consultation that
referred her has its own stream, and a reader of that case may not be one who may read the appointment).
Its ``data`` holds the appointment's id, its status after the change (as GraphQL names it) and its
clinic's id — ids and a status only, never her message, her forms, the type or the clinician.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.appointments.access import GUARDIAN
from legetime.core.appointments.states import AppointmentEvent
from legetime.core.identity.actors import SYSTEM, Actor
from legetime.core.identity.ctx import Ctx
from legetime.core.platform import events
from legetime.core.platform.db.appointment_models import Appointment
from legetime.core.platform.events import EventType
from legetime.core.platform.jobs.types import JobContext

FOR_TRANSITION = {
    AppointmentEvent.BOOK: EventType.APPOINTMENT_BOOKED,
    AppointmentEvent.MOVE: EventType.APPOINTMENT_MOVED,
    AppointmentEvent.CANCEL: EventType.APPOINTMENT_CANCELLED,
    AppointmentEvent.ARRIVE: EventType.APPOINTMENT_ARRIVED,
    AppointmentEvent.COMPLETE: EventType.APPOINTMENT_COMPLETED,
    AppointmentEvent.NO_SHOW: EventType.APPOINTMENT_NO_SHOW,
    AppointmentEvent.PAY: EventType.APPOINTMENT_PAID,
    AppointmentEvent.INVOICE: EventType.APPOINTMENT_INVOICED,
}
"""The event each transition emits (``REMIND`` emits none: the reminder is the platform's own text)."""


def data_of(appointment: Appointment, **data: Any) -> dict[str, Any]:
    """The event's ``data``: the appointment's id, status and clinic, and the caller's ids and codes."""
    return {
        "appointment_id": str(appointment.id),
        "appointment_status": appointment.status.name,
        "clinic_id": str(appointment.clinic_id),
        **data,
    }


async def emit(ctx: Ctx | JobContext, type: EventType, appointment: Appointment, **data: Any) -> None:
    """Record ``type`` about ``appointment`` (its status already changed) in the transaction of ``ctx``;
    a job (``JobContext``) acts as the system."""
    actor = ctx.actor if isinstance(ctx, Ctx) else SYSTEM
    await emit_in(ctx.session, type, appointment, actor, **data)


async def emit_in(
    session: AsyncSession, type: EventType, appointment: Appointment, actor: Actor, **data: Any
) -> None:
    """As ``emit``, in a session of the caller's own (a batch of the retention run)."""
    await events.emit(
        session,
        type,
        case_id=None,
        case_status=None,
        actor_role=role_of(actor, appointment),
        data=data_of(appointment, **data),
    )


def role_of(actor: Actor, appointment: Appointment) -> str:
    """``guardian`` for the parent who booked for her child, otherwise the actor's role."""
    if (
        appointment.booked_by_role == GUARDIAN
        and actor.person_id is not None
        and actor.person_id == appointment.booked_by_id
        and actor.person_id != appointment.patient_id
    ):
        return GUARDIAN
    return actor.role
