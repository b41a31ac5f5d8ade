"""SMS to the requester when something happens on her case. The text never holds health content: it
says there is news and asks her to log in.

Texts of one case go out in the order of their events, and only while they are still true, although
dramatiq hands the jobs to several workers at once and in any order:

- **A sequence per case.** ``notify`` writes the notice as a ``pending`` notification row in the same
  transaction as its event, next to its job. The caller holds the case's row lock (it has just changed
  the case), so the notices of one case are written one after the other; each takes a ``created_at``
  after the case's latest notice, so they are strictly ordered per case even when the hosts' clocks
  disagree.
- **In order.** A notice's job locks the pending notices of its case up to its own, oldest first
  (``FOR UPDATE``: only that case's rows, taken in one order, so jobs of one case wait for each other
  and never deadlock, and jobs of other cases never wait). It settles each of them in order: a notice
  whose own job has not run yet is settled before the later one (its job then finds nothing to do),
  and a job waits while an earlier notice of its case is with the provider. Nothing here locks the
  case, so the patient's reply or the clinician's answer never waits for an SMS.
- **Only while true.** Settling reads the case as it is now: a follow-up question is texted while the
  case awaits the patient and she has not written since it was asked; the answer while it can still be
  read. Otherwise the notice is not sent and its status says why (``skipped_not_awaiting``,
  ``skipped_replied``, ``skipped_gone``; ``no_phone`` without a number).
- **Exactly once.** The reference is the provider's idempotency key: a job that fails after a send rolls
  back, and its retry sends again with the same reference, for which the provider returns the first
  receipt. A settled notice is never sent again. Which provider sends, failover and delivery reports:
  ``sms_delivery``.

A notice goes to the requester's phone, except the SLA warning (``notify_on_duty``): it goes to the
operators' on-duty number, fixed in the notice (``to``) when the alert is raised, never to the patient.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.consultation.overdue import AWAITING_ANSWER
from legetime.core.consultation.sms_delivery import deliver
from legetime.core.consultation.sms_texts import SLA_WARNING, notice_text
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import (
    Case,
    CaseStatus,
    Message,
    Notification,
    ParticipantRole,
    Person,
)
from legetime.core.platform.jobs.outbox import enqueue
from legetime.core.platform.jobs.types import JobContext

log = structlog.get_logger(__name__)

SEND_SMS_JOB = "notify.sms"

# A notice's status (``notification.status``): waiting for its job, why it was not sent, or (once it
# went to a provider) sent, delivered or failed (``sms_delivery``).
PENDING = "pending"
NO_PHONE = "no_phone"
NOT_AWAITING = "skipped_not_awaiting"  # a question, but the case no longer waits for her
REPLIED = "skipped_replied"  # a question she has written since (the case waits for a later one)
GONE = "skipped_gone"  # the message is no longer there to read (its communication was deleted)
NOT_OPEN = "skipped_not_open"  # an SLA warning, but the case no longer waits for its answer

_PATIENT_SIDE = (ParticipantRole.PATIENT, ParticipantRole.GUARDIAN)


def _reference(case_id: uuid.UUID, event: str, about: str) -> str:
    return f"{case_id}:{event}:{about}"


def _about(notice: Notification) -> uuid.UUID:
    """The message a notice is about (the last part of its reference)."""
    return uuid.UUID(notice.reference.rsplit(":", 1)[1])


async def notify(ctx: Ctx, case: Case, event: str, about: str) -> None:
    """Text the requester about the event (``about``: the message), once and in the case's order.
    The caller holds the case's row lock: that orders the case's notices (see the module docstring)."""
    await _add_notice(ctx.session, case, event, _reference(case.id, event, about))


async def notify_on_duty(session: AsyncSession, case: Case, threshold_minutes: int, phone: str) -> None:
    """Text the on-duty number that the case nears its deadline, once per case and threshold. The caller
    holds the case's row lock, as for ``notify``."""
    reference = _reference(case.id, SLA_WARNING, str(threshold_minutes))
    await _add_notice(session, case, SLA_WARNING, reference, to=phone)


async def _add_notice(
    session: AsyncSession, case: Case, event: str, reference: str, *, to: str | None = None
) -> None:
    exists = await session.scalar(select(Notification.id).where(Notification.reference == reference))
    if exists is None:
        latest = await session.scalar(
            select(Notification.created_at)
            .where(Notification.case_id == case.id)
            .order_by(Notification.created_at.desc())
            .limit(1)
        )
        at = utcnow()
        if latest is not None and at <= latest:  # this host's clock is behind the one of the last notice
            at = latest + timedelta(microseconds=1)
        session.add(
            Notification(
                case_id=case.id, event=event, reference=reference, to=to, status=PENDING, created_at=at
            )
        )
    await enqueue(
        session,
        SEND_SMS_JOB,
        {"case_id": str(case.id), "event": event, "reference": reference},
        dedupe_key=f"sms:{reference}",
    )


async def send_sms_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Settle the case's pending notices up to this one, oldest first (see the module docstring)."""
    session = ctx.session
    reference = str(payload["reference"])
    own = await session.scalar(select(Notification).where(Notification.reference == reference))
    if own is None:  # enqueued before notices were written with their event: last in the case's order
        case_id = uuid.UUID(payload["case_id"])
        if await session.get(Case, case_id) is None:
            return
        own = Notification(case_id=case_id, event=str(payload["event"]), reference=reference, status=PENDING)
        session.add(own)
        await session.flush()
    if own.status != PENDING:
        return  # settled already: by an earlier delivery, or by the job of a later notice
    due = (
        await session.scalars(
            select(Notification)
            .where(
                Notification.case_id == own.case_id,
                Notification.status == PENDING,
                Notification.created_at <= own.created_at,
            )
            .order_by(Notification.created_at, Notification.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).all()
    for notice in due:
        await _settle(ctx, notice)


async def _settle(ctx: JobContext, notice: Notification) -> None:
    """Send the notice if it is still true, else record why not."""
    session = ctx.session
    case = await session.get(Case, notice.case_id, populate_existing=True)
    assert case is not None  # a notice's case is never deleted (erasure leaves a tombstone)
    why_not = await _untrue(session, case, notice)
    phone = await _recipient(session, case, notice)
    if why_not is None and not phone:
        why_not = NO_PHONE
    if why_not is not None:
        notice.status = why_not
        log.info(
            "sms.not_sent",
            notification_id=str(notice.id),
            case_id=str(case.id),
            notice_event=notice.event,
            reason=why_not,
        )
        return
    assert phone is not None
    await deliver(ctx, notice, phone, notice_text(ctx.platform, notice.event, case), after=None)


async def _recipient(session: AsyncSession, case: Case, notice: Notification) -> str | None:
    if notice.event == SLA_WARNING:
        return notice.to  # the on-duty number when the alert was raised
    requester = await session.get(Person, case.requester_id)
    return requester.phone if requester is not None else None


async def _untrue(session: AsyncSession, case: Case, notice: Notification) -> str | None:
    """Why the notice is no longer true (a status), or ``None`` while it is."""
    if notice.event == SLA_WARNING:
        return None if case.status in AWAITING_ANSWER else NOT_OPEN
    message = await session.get(Message, _about(notice))
    if message is None:
        return GONE
    if notice.event == "follow_up":
        if case.status is not CaseStatus.AWAITING_PATIENT:
            return NOT_AWAITING
        written_since = await session.scalar(
            select(Message.id)
            .where(
                Message.case_id == case.id,
                Message.author_role.in_(_PATIENT_SIDE),
                Message.created_at > message.created_at,
            )
            .limit(1)
        )
        if written_since is not None:
            return REPLIED
    return None
