"""Domain events: one stream of what happens to cases, for plugins (``handle_event``) and, built on it,
live updates and outbound webhooks.

- **Written with the change.** ``emit`` adds the event to the caller's transaction, so an event exists if
  and only if the change committed.
- **Ids, not content.** An event carries its id, type and time, the case's id and status after the
  change, the actor's role, and ids and codes in ``data`` (a payment's status, an SMS's provider) — never
  health content, names or national IDs. A consumer fetches what it may see through the API.
- **Delivered at least once, after commit.** The same transaction enqueues a job (``DISPATCH_JOB``) that,
  after the commit, hands the event to every plugin that implements ``handle_event``. A plugin that fails
  gets a job of its own (``DELIVER_JOB``), retried with backoff, so one plugin's failure never holds back
  another's. A redelivery carries the same ``Event.id``: consumers deduplicate on it.
- **Published live at commit.** Right after the transaction commits, its events go to the process's
  ``LiveEvents`` (``publish_after_commit``), in commit order, for GraphQL subscriptions: from the process
  that made the change, so an update is published before the answer to the request that caused it, and
  a later change (another request, another process) is published after it. Live updates are best effort;
  the dispatch job is the durable path.

``EventType`` is the catalogue; docs/events.md describes each type and its ``data``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import event as orm_event
from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from legetime.core.platform.db.base import new_id, utcnow
from legetime.core.platform.db.models import DomainEvent
from legetime.core.platform.jobs.outbox import enqueue
from legetime.core.platform.webhooks_out import delivery as webhooks_out

if TYPE_CHECKING:
    from legetime.core.platform.db.engine import Database
    from legetime.core.platform.jobs.types import JobContext

log = structlog.get_logger(__name__)

DISPATCH_JOB = "events.dispatch"
DELIVER_JOB = "events.deliver"
_EMITTED = "legetime.emitted_events"
_PUBLISH = "legetime.publish_events"


class EventType(StrEnum):
    CASE_STARTED = "case.started"
    CASE_SUBMITTED = "case.submitted"
    CASE_CLAIMED = "case.claimed"
    CASE_CLAIM_RELEASED = "case.claim_released"
    CASE_OVERDUE = "case.overdue"
    CASE_SLA_WARNING = "case.sla_warning"
    CASE_FOLLOW_UP_ASKED = "case.follow_up_asked"
    CASE_PATIENT_REPLIED = "case.patient_replied"
    CASE_ANSWERED = "case.answered"
    CASE_CLOSED = "case.closed"
    CASE_CANCELLED = "case.cancelled"
    MESSAGE_SENT = "message.sent"
    PAYMENT_RESERVED = "payment.reserved"
    PAYMENT_CAPTURED = "payment.captured"
    PAYMENT_RELEASED = "payment.released"
    PAYMENT_FAILED = "payment.failed"
    JOURNAL_DRAFTED = "journal.drafted"
    JOURNAL_APPROVED = "journal.approved"
    SMS_DELIVERED = "sms.delivered"
    SMS_FAILED = "sms.failed"
    CONSENT_GRANTED = "consent.granted"
    CONSENT_WITHDRAWN = "consent.withdrawn"
    CASE_ERASED = "case.erased"
    APPOINTMENT_REQUESTED = "appointment.requested"
    APPOINTMENT_BOOKED = "appointment.booked"
    APPOINTMENT_MOVED = "appointment.moved"
    APPOINTMENT_CANCELLED = "appointment.cancelled"
    APPOINTMENT_ARRIVED = "appointment.arrived"
    APPOINTMENT_COMPLETED = "appointment.completed"
    APPOINTMENT_NO_SHOW = "appointment.no_show"
    APPOINTMENT_PAID = "appointment.paid"
    APPOINTMENT_INVOICED = "appointment.invoiced"
    APPOINTMENT_ERASED = "appointment.erased"


@dataclass(frozen=True)
class Event:
    """What a ``handle_event`` implementation receives."""

    id: uuid.UUID
    """The same on every delivery of this event."""
    type: EventType
    occurred_at: datetime
    case_id: uuid.UUID | None
    case_status: str | None
    """The case's status after the change (``SUBMITTED`` …), when the event is about a case."""
    actor_role: str | None
    """Who caused it: ``patient``, ``guardian``, ``clinician``, ``operator``, ``system`` …"""
    data: Mapping[str, Any] = field(default_factory=dict)
    """Ids and codes only; each type's are in docs/events.md."""


async def emit(
    session: AsyncSession,
    type: EventType,
    *,
    case_id: uuid.UUID | None,
    case_status: str | None,
    actor_role: str | None,
    data: Mapping[str, Any] | None = None,
) -> Event:
    """Record an event in ``session``'s transaction, and the job that hands it to plugins after commit."""
    event = Event(new_id(), type, utcnow(), case_id, case_status, actor_role, dict(data or {}))
    row = DomainEvent(
        id=event.id,
        type=event.type.value,
        occurred_at=event.occurred_at,
        case_id=event.case_id,
        case_status=event.case_status,
        actor_role=event.actor_role,
        data=dict(event.data),
    )
    session.add(row)
    session.info.setdefault(_EMITTED, []).append((row, event))
    await enqueue(session, DISPATCH_JOB, {"event_id": str(event.id)})
    return event


def publish_after_commit(database: Database, publish: Callable[[list[Event]], None]) -> None:
    """Hand ``publish`` the events of each transaction of ``database`` right after it commits, in the
    committing thread (``publish`` must not block: ``LiveEvents.committed``)."""
    database.sessions.configure(info={_PUBLISH: publish})


@orm_event.listens_for(Session, "after_commit")
def _publish_committed(session: Session) -> None:
    emitted = session.info.pop(_EMITTED, None)
    publish = session.info.get(_PUBLISH)
    if not emitted or publish is None:
        return
    # A savepoint rolled back (one failed job of a batch) took its events' rows with it: those are not
    # persistent any more, and not published.
    committed = [event for row, event in emitted if inspect(row).persistent]
    if committed:
        try:
            publish(committed)
        except Exception:  # the commit is done; live updates are best effort
            log.warning("event.publish_failed", exc_info=True)


@orm_event.listens_for(Session, "after_transaction_end")
def _forget_emitted(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the whole transaction ended (after a rollback: nothing to publish)
        session.info.pop(_EMITTED, None)


async def dispatch_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Hand the event to the webhook endpoints and every plugin that handles events; a plugin that fails
    gets a retried job of its own. (Live subscriptions had it at commit.)"""
    event = await _load(ctx, payload["event_id"])
    if event is None:
        return
    await webhooks_out.fan_out(ctx.session, event)  # a delivery (and its job) per subscribed endpoint
    for plugin in ctx.platform.hooks.event_handlers():
        try:
            await ctx.platform.hooks.handle_event(plugin, event, ctx.platform)
        except Exception as exc:
            log.warning(
                "event.handler_failed", event_id=str(event.id), plugin=plugin, error=type(exc).__name__
            )
            await enqueue(ctx.session, DELIVER_JOB, {"event_id": str(event.id), "plugin": plugin})


async def deliver_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Hand one event to one plugin again; a failure is retried with the job's backoff."""
    event = await _load(ctx, payload["event_id"])
    if event is not None:
        await ctx.platform.hooks.handle_event(payload["plugin"], event, ctx.platform)


async def _load(ctx: JobContext, event_id: str) -> Event | None:
    row = await ctx.session.scalar(select(DomainEvent).where(DomainEvent.id == uuid.UUID(event_id)))
    return None if row is None else as_event(row)


def as_event(row: DomainEvent) -> Event:
    return Event(
        id=row.id,
        type=EventType(row.type),
        occurred_at=row.occurred_at,
        case_id=row.case_id,
        case_status=row.case_status,
        actor_role=row.actor_role,
        data=dict(row.data or {}),
    )
