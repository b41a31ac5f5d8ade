"""Deleting a case's digital communication: answers, messages and images.

One machinery for every rule: **retention** (3 months after the case ended, configurable), **withdrawn
consent** to storage, and an **erasure request**. Journal notes (health-record law), the payment record
(accounting law), the access log and the consent history are kept. Before anything is deleted, anonymised
statistics are recorded (no case or person id, day, age band); afterwards the case keeps a tombstone
(what was deleted, when, by which rule).

The communication key is deleted with the rows, and each image's own key with its row, so every copy of
the content — storage objects whose deletion failed, database backups — is unreadable (crypto-shredding;
see docs/privacy.md for backups). Withdrawn consent to storing images therefore shreds the images at once
although the communication key stays (images stored before revision 0012 use that key: docs/privacy.md).

Batches commit separately and lock only their own rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so a
purge of 100 000 cases never holds a long lock and several workers may run it side by side.
"""

from __future__ import annotations

import calendar
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from legetime.core.identity.actors import SYSTEM
from legetime.core.identity.nationalid import age_on
from legetime.core.platform import events
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import (
    Attachment,
    Case,
    CaseErasure,
    CaseStatistic,
    CaseStatus,
    Message,
    OutboxJob,
    OutboxStatus,
    Person,
    RequesterRole,
    RetentionRun,
)
from legetime.core.platform.events import EventType
from legetime.core.platform.jobs.outbox import enqueue
from legetime.core.platform.jobs.types import JobContext
from legetime.core.platform.providers import STORAGE
from legetime.core.protection import audit

if TYPE_CHECKING:
    from legetime.core.identity.actors import Actor
    from legetime.core.platform.runtime import Platform

log = structlog.get_logger(__name__)

ERASE_CASE_JOB = "privacy.erase_case"
DELETE_OBJECTS_JOB = "storage.delete"
DELETE_RETRY_DELAY = timedelta(minutes=5)
"""The retention purge deletes a batch's storage objects at once; the ``storage.delete`` job it enqueues
with the batch waits this long, and runs only for what that could not delete."""

RETENTION = "retention"
CONSENT_WITHDRAWN = "consent_withdrawn"
ERASURE_REQUEST = "erasure_request"
IMAGE_CONSENT_WITHDRAWN = "image_consent_withdrawn"
ENDED = (CaseStatus.CLOSED, CaseStatus.CANCELLED)
AGE_BANDS = ((0, "0-5"), (6, "6-11"), (12, "12-15"), (16, "16-29"), (30, "30-49"), (50, "50-69"), (70, "70+"))


def retention_deadline(ended: datetime, months: int) -> datetime:
    """``months`` calendar months after ``ended`` (31 January + 1 month = 28/29 February)."""
    month_index = ended.month - 1 + months
    year, month = ended.year + month_index // 12, month_index % 12 + 1
    day = min(ended.day, calendar.monthrange(year, month)[1])
    return ended.replace(year=year, month=month, day=day)


def age_band(age: int) -> str:
    band = AGE_BANDS[0][1]
    for lowest, name in AGE_BANDS:
        if age >= lowest:
            band = name
    return band


@dataclass
class PurgeSummary:
    rule: str
    dry_run: bool
    cases: int = 0
    messages: int = 0
    images: int = 0
    run_id: uuid.UUID | None = None
    case_numbers: list[str] = field(default_factory=list)
    storage_failures: int = 0


@dataclass(frozen=True)
class Deleted:
    messages: int
    images: int
    storage_keys: list[str]


async def erase_communication(
    session: AsyncSession,
    platform: Platform,
    case_ids: Sequence[uuid.UUID],
    *,
    rule: str,
    actor: Actor,
    now: datetime,
    run_id: uuid.UUID | None = None,
) -> Deleted:
    """Delete the communication of these cases (already chosen and locked by the caller) in the caller's
    transaction. Returns the storage keys to delete once the transaction has committed."""
    ids = list(case_ids)
    if not ids:
        return Deleted(0, 0, [])
    cases = (
        await session.execute(
            select(Case, Person.birth_date).join(Person, Person.id == Case.subject_id).where(Case.id.in_(ids))
        )
    ).all()
    messages = Counter(
        dict(
            (
                await session.execute(
                    select(Message.case_id, func.count())
                    .where(Message.case_id.in_(ids))
                    .group_by(Message.case_id)
                )
            ).all()
        )
    )
    images = (
        await session.execute(
            select(Attachment.case_id, Attachment.storage_key).where(Attachment.case_id.in_(ids))
        )
    ).all()
    image_counts = Counter(case_id for case_id, _ in images)
    zone = platform.settings.zone

    statistics, erased = [], []
    for case, birth_date in cases:
        started = case.submitted_at or case.created_at
        response = None
        if case.submitted_at and case.answered_at:
            response = int((case.answered_at - case.submitted_at).total_seconds() // 60)
        statistics.append(
            {
                "id": uuid.uuid4(),
                "day": started.astimezone(zone).date(),
                "category": case.questionnaire_key or "general",
                "age_band": age_band(age_on(birth_date, started.astimezone(zone).date())),
                "for_child": case.requester_role is RequesterRole.GUARDIAN,
                "outcome": case.outcome.value if case.outcome else None,
                "final_status": case.status.value,
                "response_minutes": response,
            }
        )
        deleted = {
            "answers": int(case.answers_sealed is not None),
            "messages": messages[case.id],
            "images": image_counts[case.id],
        }
        erased.append((case.id, case.subject_id, deleted))

    await session.execute(insert(CaseStatistic), statistics)
    await session.execute(delete(Message).where(Message.case_id.in_(ids)))
    await session.execute(delete(Attachment).where(Attachment.case_id.in_(ids)))
    await session.execute(
        update(Case)
        .where(Case.id.in_(ids))
        .values(
            answers_sealed=None,
            communication_key=None,
            communication_key_id=None,
            purged_at=now,
            updated_at=now,
            version=Case.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    await _record_erasures(
        session, erased, action="erase_communication", rule=rule, actor=actor, now=now, run_id=run_id
    )
    return Deleted(sum(messages.values()), len(images), [key for _, key in images])


async def erase_images(
    session: AsyncSession,
    case_ids: Sequence[uuid.UUID],
    *,
    rule: str,
    actor: Actor,
    now: datetime,
    run_id: uuid.UUID | None = None,
) -> Deleted:
    """Delete only the images of these cases (consent to storing images withdrawn), in the caller's
    transaction; answers and messages stay until their own retention. Each image's own key goes with its
    row, so a copy of it (a backup, an object whose deletion fails) is unreadable from this commit on.
    Returns the storage keys to delete once the transaction has committed."""
    images = (
        await session.execute(
            select(Attachment.case_id, Attachment.storage_key, Case.subject_id)
            .join(Case, Case.id == Attachment.case_id)
            .where(Attachment.case_id.in_(list(case_ids)))
        )
    ).all()
    if not images:
        return Deleted(0, 0, [])
    counts = Counter(case_id for case_id, _, _ in images)
    subjects = {case_id: subject_id for case_id, _, subject_id in images}
    await session.execute(delete(Attachment).where(Attachment.case_id.in_(list(counts))))
    erased = [
        (case_id, subjects[case_id], {"answers": 0, "messages": 0, "images": count})
        for case_id, count in counts.items()
    ]
    await _record_erasures(
        session, erased, action="erase_images", rule=rule, actor=actor, now=now, run_id=run_id
    )
    return Deleted(0, len(images), [key for _, key, _ in images])


async def _record_erasures(
    session: AsyncSession,
    erased: Sequence[tuple[uuid.UUID, uuid.UUID, dict[str, int]]],
    *,
    action: str,
    rule: str,
    actor: Actor,
    now: datetime,
    run_id: uuid.UUID | None,
) -> None:
    """For each (case, its patient, what was deleted): a tombstone on the case, an access-log entry and a
    ``case.erased`` event."""
    tombstones = [
        {
            "id": uuid.uuid4(),
            "case_id": case_id,
            "rule": rule,
            "run_id": run_id,
            "deleted": deleted,
            "erased_at": now,
        }
        for case_id, _, deleted in erased
    ]
    await session.execute(insert(CaseErasure), tombstones)
    entries = [
        audit.Entry(actor.person_id, actor.role, subject_id, "case", str(case_id), action, rule)
        for case_id, subject_id, _ in erased
    ]
    await audit.record_many(session, entries)
    ids = [case_id for case_id, _, _ in erased]
    statuses = dict((await session.execute(select(Case.id, Case.status).where(Case.id.in_(ids)))).all())
    for case_id, _, deleted in erased:
        status = statuses.get(case_id)
        await events.emit(
            session,
            EventType.CASE_ERASED,
            case_id=case_id,
            case_status=status.name if status is not None else None,
            actor_role=actor.role,
            data={"scope": action, "rule": rule, **deleted},
        )


def _due_filter(now: datetime) -> list[ColumnElement[bool]]:
    return [Case.status.in_(ENDED), Case.purged_at.is_(None), Case.retention_until <= now]


async def count_due(session: AsyncSession, now: datetime) -> tuple[int, int, int]:
    """(cases, messages, images) whose communication is due for deletion at ``now``."""
    due = select(Case.id).where(*_due_filter(now))
    cases = await session.scalar(select(func.count()).select_from(due.subquery()))
    messages = await session.scalar(select(func.count()).where(Message.case_id.in_(due)))
    images = await session.scalar(select(func.count()).where(Attachment.case_id.in_(due)))
    return int(cases or 0), int(messages or 0), int(images or 0)


async def delete_stored(platform: Platform, keys: list[str]) -> list[str]:
    """Delete storage objects; returns the keys that could not be deleted (a failure leaves only ciphertext
    whose key is gone, and the caller has a job retry them)."""
    storage = platform.providers.get(STORAGE)
    failed = []
    for key in keys:
        try:
            await storage.delete(key)
        except Exception as exc:  # the content is already unreadable; retrying is housekeeping
            failed.append(key)
            log.warning("purge.storage_delete_failed", error=type(exc).__name__)
    return failed


async def _settle_deletion_job(platform: Platform, job_id: uuid.UUID, failed: list[str]) -> None:
    """After the purge's own attempt: nothing left, the batch's ``storage.delete`` job is done; otherwise
    it keeps only the keys that failed (and runs after its delay, retried with backoff until it succeeds
    or is marked failed in the outbox). A job a relay took already is left alone: it deletes again,
    harmlessly."""
    values: dict[str, Any] = {"payload": {"keys": failed}}
    if not failed:
        values = {"status": OutboxStatus.DONE, "finished_at": utcnow()}
    async with platform.db.transaction() as session:
        await session.execute(
            update(OutboxJob)
            .where(OutboxJob.id == job_id, OutboxJob.status == OutboxStatus.PENDING)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    if failed:
        log.warning("purge.storage_delete_deferred", job_id=str(job_id), count=len(failed))


async def run_retention(
    platform: Platform,
    *,
    actor: Actor,
    trigger: str,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PurgeSummary:
    """Delete the communication of every case past its retention time, batch by batch.

    ``progress(done, total)`` is called after each batch (the CLI draws a bar with it). The run is
    recorded (``RetentionRun``), dry runs too; each erased case is in the access log.
    """
    now = now or utcnow()
    batch_size = batch_size or platform.settings.purge_batch_size
    summary = PurgeSummary(rule=RETENTION, dry_run=dry_run)
    async with platform.db.transaction() as session:
        total, messages, images = await count_due(session, now)
        run = RetentionRun(
            rule=RETENTION, trigger=trigger, actor_id=actor.person_id, dry_run=dry_run, started_at=utcnow()
        )
        session.add(run)
        await session.flush()
        summary.run_id = run.id
        if dry_run:
            run.cases, run.messages, run.images, run.finished_at = total, messages, images, utcnow()
            summary.cases, summary.messages, summary.images = total, messages, images
            return summary
    if progress:
        progress(0, total)
    while True:
        async with platform.db.transaction() as session:
            batch = (
                await session.execute(
                    select(Case.id, Case.number)
                    .where(*_due_filter(now))
                    .order_by(Case.retention_until)
                    .limit(batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not batch:
                break
            deleted = await erase_communication(
                session,
                platform,
                [row.id for row in batch],
                rule=RETENTION,
                actor=actor,
                now=now,
                run_id=run.id,
            )
            deletion_job = None
            if deleted.storage_keys:  # committed with the batch: a failed or interrupted deletion is retried
                job = await enqueue(
                    session, DELETE_OBJECTS_JOB, {"keys": deleted.storage_keys}, delay=DELETE_RETRY_DELAY
                )
                deletion_job = job.id
        summary.cases += len(batch)
        summary.messages += deleted.messages
        summary.images += deleted.images
        failed = await delete_stored(platform, deleted.storage_keys)
        summary.storage_failures += len(failed)
        if deletion_job is not None:
            await _settle_deletion_job(platform, deletion_job, failed)
        if progress:
            progress(summary.cases, max(total, summary.cases))
    async with platform.db.transaction() as session:
        await session.execute(
            update(RetentionRun)
            .where(RetentionRun.id == run.id)
            .values(
                cases=summary.cases,
                messages=summary.messages,
                images=summary.images,
                storage_failures=summary.storage_failures,
                finished_at=utcnow(),
            )
        )
    log.info("purge.finished", rule=RETENTION, cases=summary.cases, dry_run=dry_run, trigger=trigger)
    return summary


# --- erasure by rule, and its jobs ----------------------------------------------------------------


async def erase_by_rule(
    session: AsyncSession,
    platform: Platform,
    case_ids: list[uuid.UUID],
    *,
    rule: str,
    actor: Actor,
    now: datetime,
    run_id: uuid.UUID | None = None,
) -> Deleted:
    """The rule decides what goes: only the images, or the whole communication. Storage objects are
    deleted by a job once the transaction has committed."""
    if rule == IMAGE_CONSENT_WITHDRAWN:
        deleted = await erase_images(session, case_ids, rule=rule, actor=actor, now=now, run_id=run_id)
    else:
        deleted = await erase_communication(
            session, platform, case_ids, rule=rule, actor=actor, now=now, run_id=run_id
        )
    if deleted.storage_keys:
        await enqueue(session, DELETE_OBJECTS_JOB, {"keys": deleted.storage_keys})
    return deleted


async def erase_case_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    """A case ended after its patient withdrew consent to storing its communication (or its images):
    erase that now, by the payload's rule (idempotent)."""
    case = await ctx.session.get(Case, uuid.UUID(payload["case_id"]), with_for_update=True)
    if case is None or case.purged_at is not None or case.status not in ENDED:
        return
    await erase_by_rule(
        ctx.session, ctx.platform, [case.id], rule=payload["rule"], actor=SYSTEM, now=utcnow()
    )


async def delete_objects_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Delete storage objects of erased communication (already unreadable: their key is gone)."""
    keys = list(payload["keys"])
    failed = await delete_stored(ctx.platform, keys)
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(keys)} storage objects could not be deleted; retrying")
