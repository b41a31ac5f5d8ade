"""The texts around an appointment, planned as jobs on the outbox (issue 16):

- ``REMINDER``: two days before, at the same time of day in Europe/Oslo (across a change to or from
  summer time too), with the link to its forms when the type has any;
- ``ARRIVAL``: one hour before an in-person visit, with the link to register arrival;
- ``PAYMENT_LINK``: shortly after the visit; ``INVOICE``: 48 hours after it, if still unpaid;
- ``SURVEY``: after the visit, once, if she consented to being asked.

**Plans.** Each appointment carries a ``plan`` number, bumped whenever its time changes or it is
cancelled. A text is planned for one plan: a row in ``appointment_text`` (unique per appointment, kind and
plan) and a job with a delay, deduplicated by the same triple. When the job runs it sends only if the
appointment is still on that plan and the text is still true (not cancelled, not yet paid …); otherwise it
records why not. Moving an appointment plans its texts again under the new plan; cancelling plans none, so
the old jobs find nothing to do. A text that went out is never sent again: the SMS path sends each
reference once (``core.consultation.notifications``), and a redelivered job finds its row settled.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select

from legetime.core.appointments import states
from legetime.core.consultation.notifications import PENDING
from legetime.core.consultation.sms_delivery import SENT as HANDED_OVER
from legetime.core.consultation.sms_delivery import deliver, texts_of_other_notices
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.appointment_models import (
    Appointment,
    AppointmentMode,
    TimedText,
    TimedTextPlan,
)
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import Notification, Person
from legetime.core.platform.jobs.outbox import enqueue
from legetime.core.platform.jobs.types import JobContext

log = structlog.get_logger(__name__)

SEND_JOB = "appointments.timed_text"

REMINDER_DAYS = 2
ARRIVAL_BEFORE = timedelta(hours=1)
PAYMENT_LINK_AFTER = timedelta(minutes=15)
INVOICE_AFTER = timedelta(hours=48)
SURVEY_AFTER = timedelta(hours=3)

PLANNED = "planned"
SENT = "sent"
REPLANNED = "skipped_replanned"  # the appointment moved (or was cancelled) since it was planned
NO_PHONE = "no_phone"
SUBJECT = "appointment"
"""The first part of these notices' events (``appointment.reminder``)."""


def reminder_due(ctx: Ctx, starts_at: datetime) -> datetime:
    """Two calendar days before, at the same local time (Europe/Oslo), as an instant."""
    zone = ctx.platform.settings.zone
    local = starts_at.astimezone(zone)
    earlier = (local.replace(tzinfo=None) - timedelta(days=REMINDER_DAYS)).replace(tzinfo=zone)
    return earlier.astimezone(starts_at.tzinfo)


def before_visit(ctx: Ctx, appointment: Appointment) -> list[tuple[TimedText, datetime]]:
    """The texts before the visit still ahead of us. A reminder whose time has passed (booked less than
    two days ahead) is not sent: she has just booked, and the confirmation is on her screen."""
    assert appointment.starts_at is not None
    planned = [(TimedText.REMINDER, reminder_due(ctx, appointment.starts_at))]
    if appointment.mode is AppointmentMode.IN_PERSON:
        planned.append((TimedText.ARRIVAL, appointment.starts_at - ARRIVAL_BEFORE))
    return [(kind, due) for kind, due in planned if due > ctx.now]


def after_visit(ctx: Ctx, appointment: Appointment) -> list[tuple[TimedText, datetime]]:
    assert appointment.completed_at is not None
    done = appointment.completed_at
    planned = [(TimedText.SURVEY, done + SURVEY_AFTER)]
    if appointment.price_amount > 0:
        planned += [
            (TimedText.PAYMENT_LINK, done + PAYMENT_LINK_AFTER),
            (TimedText.INVOICE, done + INVOICE_AFTER),
        ]
    return planned


async def plan(ctx: Ctx, appointment: Appointment, texts: list[tuple[TimedText, datetime]]) -> None:
    """Plan the texts for the appointment's current plan (in the caller's transaction)."""
    for kind, due in texts:
        exists = await ctx.session.scalar(
            select(TimedTextPlan.id).where(
                TimedTextPlan.appointment_id == appointment.id,
                TimedTextPlan.kind == kind,
                TimedTextPlan.plan == appointment.plan,
            )
        )
        if exists is not None:
            continue
        ctx.session.add(
            TimedTextPlan(appointment_id=appointment.id, kind=kind, plan=appointment.plan, due_at=due)
        )
        await enqueue(
            ctx.session,
            SEND_JOB,
            {"appointment_id": str(appointment.id), "kind": kind.value, "plan": appointment.plan},
            dedupe_key=f"appointment-text:{appointment.id}:{kind.value}:{appointment.plan}",
            delay=max(due - ctx.now, timedelta()),
        )


async def replan(ctx: Ctx, appointment: Appointment) -> None:
    """A new plan: the time changed (or it was cancelled, with ``texts`` to follow none)."""
    appointment.plan += 1
    if appointment.starts_at is not None and appointment.cancelled_at is None:
        await plan(ctx, appointment, before_visit(ctx, appointment))


# --- sending ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """What a planned text says, and whether it is still true: ``skipped`` is why not (a status)."""

    body: str
    skipped: str | None = None


TextMaker = Callable[[JobContext, Appointment, TimedTextPlan], Awaitable[Text]]
_MAKERS: dict[TimedText, TextMaker] = {}


def makes(kind: TimedText) -> Callable[[TextMaker], TextMaker]:
    """Register the maker of one kind of text (``texts_before_visit``, ``settlement``, ``surveys``). A
    maker never puts health content in the text, and makes the same text again for the same plan (a
    failover to another SMS provider sends it again)."""

    def register(maker: TextMaker) -> TextMaker:
        _MAKERS[kind] = maker
        return maker

    return register


def reference(appointment_id: uuid.UUID, kind: TimedText, plan_number: int) -> str:
    return f"{appointment_id}:{kind.value}:{plan_number}"


async def send_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Send one planned text if the appointment is still on its plan and the text still true (see the
    module docstring); record why not otherwise. Settled once: a redelivered job finds nothing to do."""
    session = ctx.session
    appointment_id, kind, number = (
        uuid.UUID(payload["appointment_id"]),
        TimedText(payload["kind"]),
        int(payload["plan"]),
    )
    appointment = await session.get(Appointment, appointment_id, with_for_update=True, populate_existing=True)
    row = await session.scalar(
        select(TimedTextPlan).where(
            TimedTextPlan.appointment_id == appointment_id,
            TimedTextPlan.kind == kind,
            TimedTextPlan.plan == number,
        )
    )
    if appointment is None or row is None or row.status != PLANNED:
        return
    row.settled_at = utcnow()
    if appointment.plan != number:
        row.status = REPLANNED
        return
    text = await _MAKERS[kind](ctx, appointment, row)
    booker = await session.get(Person, appointment.booked_by_id)
    phone = booker.phone if booker is not None else None
    status = text.skipped or (None if phone else NO_PHONE)
    if status is not None:
        row.status = status
        log.info(
            "appointment.text_not_sent", appointment_id=str(appointment.id), kind=kind.value, reason=status
        )
        return
    assert phone is not None
    notice = Notification(
        appointment_id=appointment.id,
        event=f"{SUBJECT}.{kind.value}",
        reference=reference(appointment.id, kind, number),
        status=PENDING,
    )
    session.add(notice)
    await session.flush()
    await deliver(ctx, notice, phone, text.body, after=None)
    row.status = SENT
    if kind is TimedText.REMINDER and notice.status == HANDED_OVER:  # she has been reminded
        appointment.status = states.next_status(appointment.status, states.AppointmentEvent.REMIND)
        appointment.reminded_at = utcnow()


async def _text_again(ctx: JobContext, notice: Notification) -> str:
    """The text of a notice about an appointment, made again for a failover."""
    appointment_id, kind, number = notice.reference.split(":")
    appointment = await ctx.session.get(Appointment, uuid.UUID(appointment_id))
    row = await ctx.session.scalar(
        select(TimedTextPlan).where(
            TimedTextPlan.appointment_id == uuid.UUID(appointment_id),
            TimedTextPlan.kind == TimedText(kind),
            TimedTextPlan.plan == int(number),
        )
    )
    assert appointment is not None and row is not None
    return (await _MAKERS[TimedText(kind)](ctx, appointment, row)).body


texts_of_other_notices(SUBJECT, _text_again)
