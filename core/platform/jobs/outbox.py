"""The transactional outbox: a job is a row written in the same transaction as the change causing it.

If the transaction rolls back, the job never existed; if it commits, the relay will hand it to the
broker, again and again until a worker has finished it (at least once; actors are idempotent).

A commit that enqueued jobs wakes the relays of its own process at once (``on_jobs_committed``), so a
job does not wait for the next poll; the poll stays as the safety net (jobs committed by another
process, a relay that failed, a broker that lost a message).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import event, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from legetime.core.platform import tracing
from legetime.core.platform.db.base import new_id, utcnow
from legetime.core.platform.db.models import OutboxJob, OutboxStatus
from legetime.core.platform.errors import ValidationError

log = structlog.get_logger(__name__)

RELAY_BATCH = 500
_ENQUEUED = "legetime.enqueued"
_committed: list[Callable[[], None]] = []


def on_jobs_committed(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` after each commit in this process that enqueued jobs (from whichever thread
    committed: make it thread-safe). Returns the function that stops it."""
    _committed.append(callback)
    return lambda: _committed.remove(callback)


@event.listens_for(Session, "after_commit")
def _announce_jobs(session: Session) -> None:
    if session.info.pop(_ENQUEUED, False):
        for callback in list(_committed):
            try:
                callback()
            except Exception:  # the commit is done; a relay that missed it has the poll
                log.warning("jobs.wake_up_failed", exc_info=True)


@event.listens_for(Session, "after_transaction_end")
def _forget_jobs(session: Session, transaction: SessionTransaction) -> None:
    # Only when the whole transaction ends (its commit has announced by then): a savepoint rolled back
    # after a job was enqueued (``after_rollback`` fires for savepoints too) must not silence the commit.
    if transaction.parent is None:
        session.info.pop(_ENQUEUED, None)


async def enqueue(
    session: AsyncSession,
    name: str,
    payload: dict[str, Any] | None = None,
    *,
    dedupe_key: str | None = None,
    delay: timedelta | None = None,
) -> OutboxJob:
    """Add a job to the caller's transaction. With ``dedupe_key``, the same key enqueues once only."""
    payload = payload or {}
    traceparent = tracing.current_traceparent()  # None unless tracing is on: the job continues the trace
    if traceparent is not None:
        payload = {**payload, tracing.TRACEPARENT_KEY: traceparent}
    try:
        json.dumps(payload)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"job payload is not JSON: {exc}", field="payload") from None
    if dedupe_key is not None:
        existing = await session.scalar(select(OutboxJob).where(OutboxJob.dedupe_key == dedupe_key))
        if existing is not None:
            return existing
    now = utcnow()
    job = OutboxJob(
        id=new_id(),
        name=name,
        payload=payload,
        dedupe_key=dedupe_key,
        status=OutboxStatus.PENDING,
        attempts=0,
        available_at=now + (delay or timedelta()),
        created_at=now,
    )
    # Not flushed here: the transaction's jobs go in with its next flush, many rows per INSERT (a backlog
    # of single-row INSERTs was most of its cost). The id is set now, so the caller has it at once;
    # a duplicate dedupe key still fails the transaction, at its flush.
    session.add(job)
    session.info[_ENQUEUED] = True
    return job


async def relay_once(
    session: AsyncSession,
    send: Callable[[str], object],
    *,
    relay_timeout: timedelta,
    batch_size: int = RELAY_BATCH,
    now: datetime | None = None,
) -> int:
    """Hand due jobs to the broker and mark them relayed; call inside a transaction.

    Pending jobs, and relayed ones no worker finished within ``relay_timeout`` (the broker may have lost
    them: Redis without persistence), are sent. Sending before the commit means a crash between the two
    sends a job twice, never zero times. ``SKIP LOCKED`` lets several relays run side by side on PostgreSQL.
    """
    now = now or utcnow()
    due = (
        select(OutboxJob.id)
        .where(
            OutboxJob.available_at <= now,
            or_(
                OutboxJob.status == OutboxStatus.PENDING,
                (OutboxJob.status == OutboxStatus.RELAYED) & (OutboxJob.relayed_at < now - relay_timeout),
            ),
        )
        .order_by(OutboxJob.available_at)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.scalars(due)).all())
    for job_id in ids:
        send(str(job_id))
    if ids:
        await session.execute(
            update(OutboxJob)
            .where(OutboxJob.id.in_(ids))
            .values(status=OutboxStatus.RELAYED, relayed_at=now)
            .execution_options(synchronize_session=False)
        )
    return len(ids)
