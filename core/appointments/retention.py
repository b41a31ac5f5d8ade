"""Deleting an appointment's content when its purpose is fulfilled: the same machinery as for cases
(``core.protection.retention``), for what an appointment holds.

**When.** An appointment's retention period starts when it ends — paid (or nothing to pay), cancelled, or a
no-show (``ended``, called by ``booking``) — and lasts ``appointment_retention_days`` (90 by default).
After it, the periodic job ``privacy.retention`` and ``legetime purge`` delete its content, batch by batch.
An erasure request (``erase_for_patient``) deletes the content of her ended appointments at once, and of
open ones as soon as they end. (Withdrawing the consent to storing a consultation's communication does not
reach appointments: their content is kept for the visit, not on that consent.)

**What goes.** Her message to the doctor, her forms, the stored copy of the invoice's PDF, and the
appointment's data key that sealed them all (crypto-shredding: a backup, or a storage object whose
deletion failed, is unreadable from the commit on).

**What stays: a tombstone.** The appointment row with its ids (patient, clinic, type, clinician, the
referring case), times, status and price, and ``purged_at``; an ``AppointmentErasure`` row (what was
deleted, when, by which rule); the payment rows; and the invoice's bookkeeping fields — number, KID,
amounts, fee, dates, status — which the accounting law keeps for five years (bokføringsloven § 13). The
invoice document of record stays with the invoicing provider (the default keeps it sealed in its own
table: ``InvoicingProvider.get``); only the platform's copy is deleted. The access log keeps the entries,
and one more for each erasure. Before anything is deleted, anonymised statistics are recorded: month,
clinic, type, mode, age band, whether for a child, final status, paid, invoiced — no appointment or
person id.

Batches commit separately and lock only their own rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), as for
cases. Each run is a ``RetentionRun`` with the rule ``appointment_retention`` (operators: ``retentionRuns``).
"""

from __future__ import annotations

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

from legetime.core.appointments import access, appointment_events
from legetime.core.consultation.access import require_person
from legetime.core.identity.actors import SYSTEM
from legetime.core.identity.ctx import Ctx
from legetime.core.identity.nationalid import age_on
from legetime.core.platform.db.appointment_models import (
    Appointment,
    AppointmentErasure,
    AppointmentForm,
    AppointmentStatistic,
    AppointmentStatus,
    AppointmentType,
    Invoice,
)
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import OutboxJob, OutboxStatus, Person, RetentionRun
from legetime.core.platform.events import EventType
from legetime.core.platform.jobs.outbox import enqueue
from legetime.core.platform.jobs.types import JobContext
from legetime.core.protection import audit
from legetime.core.protection.retention import (
    DELETE_OBJECTS_JOB,
    DELETE_RETRY_DELAY,
    ERASURE_REQUEST,
    RETENTION,
    age_band,
    delete_stored,
)

if TYPE_CHECKING:
    from legetime.core.identity.actors import Actor
    from legetime.core.platform.runtime import Platform

log = structlog.get_logger(__name__)

APPOINTMENT_RETENTION = "appointment_retention"
"""The rule of a run of this purge (``RetentionRun.rule``); each tombstone of the run says ``retention``."""
ERASE_ACTION = "erase_content"
ENDED = (AppointmentStatus.PAID, AppointmentStatus.CANCELLED, AppointmentStatus.NO_SHOW)
"""Its purpose is fulfilled: the retention period runs (an invoiced, unpaid one waits for its payment)."""


@dataclass
class AppointmentPurgeSummary:
    dry_run: bool
    appointments: int = 0
    messages: int = 0
    forms: int = 0
    documents: int = 0
    run_id: uuid.UUID | None = None
    storage_failures: int = 0


@dataclass(frozen=True)
class Erased:
    messages: int
    forms: int
    documents: int
    storage_keys: list[str]


@dataclass
class PatientErasure:
    """What an erasure request did to her appointments (and those she booked for a child in her care)."""

    erased: list[str] = field(default_factory=list)
    """Numbers of the appointments whose content was deleted now."""
    pending: list[str] = field(default_factory=list)
    """Numbers of appointments still open: their content goes as soon as they end."""
    messages: int = 0
    forms: int = 0


def deadline(now: datetime, days: int) -> datetime:
    return now + timedelta(days=days)


async def erase_content(
    session: AsyncSession,
    platform: Platform,
    appointments: Sequence[Appointment],
    *,
    rule: str,
    actor: Actor,
    now: datetime,
    run_id: uuid.UUID | None = None,
) -> Erased:
    """Delete the content of these appointments (loaded, and locked by the caller) in the caller's
    transaction, after recording their statistics; each keeps a tombstone, an access-log entry and an
    ``appointment.erased`` event. Returns the storage keys to delete once the transaction has committed."""
    rows = [a for a in appointments if a.purged_at is None]
    if not rows:
        return Erased(0, 0, 0, [])
    ids = [a.id for a in rows]
    forms = Counter(
        dict(
            (
                await session.execute(
                    select(AppointmentForm.appointment_id, func.count())
                    .where(AppointmentForm.appointment_id.in_(ids))
                    .group_by(AppointmentForm.appointment_id)
                )
            ).all()
        )
    )
    invoices = list(
        (
            await session.scalars(
                select(Invoice).where(Invoice.appointment_id.in_(ids), Invoice.document_key.is_not(None))
            )
        ).all()
    )
    births = dict(
        (
            await session.execute(
                select(Person.id, Person.birth_date).where(Person.id.in_({a.patient_id for a in rows}))
            )
        ).all()
    )
    codes = dict(
        (
            await session.execute(
                select(AppointmentType.id, AppointmentType.code).where(
                    AppointmentType.id.in_({a.type_id for a in rows})
                )
            )
        ).all()
    )
    documents = Counter(invoice.appointment_id for invoice in invoices)
    zone = platform.settings.zone
    statistics: list[dict[str, Any]] = []
    tombstones: list[dict[str, Any]] = []
    removed: list[dict[str, int]] = []
    entries: list[audit.Entry] = []
    for appointment in rows:
        visit = (appointment.starts_at or appointment.requested_at or appointment.created_at).astimezone(zone)
        try:
            age = age_on(births[appointment.patient_id], visit.date())
        except ValueError:  # a birth date after the visit is a data error: count it in the youngest band
            age = 0
        statistics.append(
            {
                "id": uuid.uuid4(),
                "month": visit.strftime("%Y-%m"),
                "clinic_id": appointment.clinic_id,
                "appointment_type": codes[appointment.type_id],
                "mode": appointment.mode,
                "age_band": age_band(age),
                "for_child": appointment.booked_by_role == access.GUARDIAN,
                "final_status": appointment.status.value,
                "paid": appointment.paid_at is not None,
                "invoiced": appointment.invoiced_at is not None,
            }
        )
        deleted = {
            "message": int(appointment.message_sealed is not None),
            "forms": forms[appointment.id],
            "documents": documents[appointment.id],
        }
        removed.append(deleted)
        tombstones.append(
            {
                "id": uuid.uuid4(),
                "appointment_id": appointment.id,
                "rule": rule,
                "run_id": run_id,
                "deleted": deleted,
                "erased_at": now,
            }
        )
        entries.append(
            audit.Entry(
                actor.person_id,
                actor.role,
                appointment.patient_id,
                "appointment",
                str(appointment.id),
                ERASE_ACTION,
                rule,
            )
        )
    messages = sum(int(a.message_sealed is not None) for a in rows)
    keys = [invoice.document_key for invoice in invoices if invoice.document_key is not None]

    await session.execute(insert(AppointmentStatistic), statistics)
    await session.execute(delete(AppointmentForm).where(AppointmentForm.appointment_id.in_(ids)))
    for invoice in invoices:
        invoice.document_key = None
    for appointment in rows:  # through the ORM: the row's version moves on, a stale writer fails
        appointment.data_key = appointment.data_key_id = appointment.message_sealed = None
        appointment.purged_at = appointment.updated_at = now
    await session.flush()
    await session.execute(insert(AppointmentErasure), tombstones)
    await audit.record_many(session, entries)
    for appointment, deleted in zip(rows, removed, strict=True):
        await appointment_events.emit_in(
            session, EventType.APPOINTMENT_ERASED, appointment, actor, rule=rule, **deleted
        )
    return Erased(messages, sum(forms.values()), len(keys), keys)


# --- when an appointment ends ------------------------------------------------------------------------


async def ended(ctx: Ctx | JobContext, appointment: Appointment) -> None:
    """Its purpose is fulfilled (paid, cancelled, a no-show): the retention period starts. If she asked for
    erasure while it was open, its content goes now, in this transaction."""
    now = ctx.now if isinstance(ctx, Ctx) else utcnow()
    if appointment.erasure_requested_at is None:
        appointment.retention_until = deadline(now, ctx.platform.settings.appointment_retention_days)
        return
    appointment.retention_until = now
    erased = await erase_content(
        ctx.session, ctx.platform, [appointment], rule=ERASURE_REQUEST, actor=SYSTEM, now=now
    )
    if erased.storage_keys:
        await enqueue(ctx.session, DELETE_OBJECTS_JOB, {"keys": erased.storage_keys})


# --- an erasure request ------------------------------------------------------------------------------


async def erase_for_patient(ctx: Ctx) -> PatientErasure:
    """Her erasure request, for appointments: the content of those that ended goes now (recorded as a run
    she started), that of open ones as soon as they end (``ended``). Hers, and those she booked for a child
    still in her care — the appointments she may read (``access.as_patient``)."""
    me = require_person(ctx.actor)
    found = list(
        (
            await ctx.session.scalars(
                select(Appointment)
                .where(access.as_patient(ctx.actor, ctx.today), Appointment.purged_at.is_(None))
                .order_by(Appointment.created_at)
                .with_for_update(of=Appointment)
            )
        ).all()
    )
    account = PatientErasure()
    now_rows = []
    for appointment in found:
        if appointment.status in ENDED:
            appointment.retention_until = ctx.now
            now_rows.append(appointment)
            account.erased.append(appointment.number)
        else:
            appointment.erasure_requested_at = ctx.now
            account.pending.append(appointment.number)
    if not now_rows:
        return account
    run = RetentionRun(rule=ERASURE_REQUEST, trigger="patient", actor_id=me, started_at=ctx.now)
    ctx.session.add(run)
    await ctx.session.flush()
    erased = await erase_content(
        ctx.session, ctx.platform, now_rows, rule=ERASURE_REQUEST, actor=ctx.actor, now=ctx.now, run_id=run.id
    )
    run.appointments, run.messages, run.finished_at = len(now_rows), erased.messages, utcnow()
    if erased.storage_keys:
        await enqueue(ctx.session, DELETE_OBJECTS_JOB, {"keys": erased.storage_keys})
    account.messages, account.forms = erased.messages, erased.forms
    return account


# --- the retention run -------------------------------------------------------------------------------


def _due_filter(now: datetime) -> list[ColumnElement[bool]]:
    return [
        Appointment.status.in_(ENDED),
        Appointment.purged_at.is_(None),
        Appointment.retention_until <= now,
    ]


async def count_due(session: AsyncSession, now: datetime) -> tuple[int, int, int, int]:
    """(appointments, messages, forms, stored documents) due for deletion at ``now``."""
    due = select(Appointment.id).where(*_due_filter(now))
    appointments = await session.scalar(select(func.count()).select_from(due.subquery()))
    messages = await session.scalar(
        select(func.count()).where(*_due_filter(now), Appointment.message_sealed.is_not(None))
    )
    forms = await session.scalar(select(func.count()).where(AppointmentForm.appointment_id.in_(due)))
    documents = await session.scalar(
        select(func.count()).where(Invoice.appointment_id.in_(due), Invoice.document_key.is_not(None))
    )
    return int(appointments or 0), int(messages or 0), int(forms or 0), int(documents or 0)


async def run_appointment_retention(
    platform: Platform,
    *,
    actor: Actor,
    trigger: str,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AppointmentPurgeSummary:
    """Delete the content of every appointment past its retention time, batch by batch (as
    ``protection.retention.run_retention`` does for cases). The run is recorded, dry runs too."""
    now = now or utcnow()
    batch_size = batch_size or platform.settings.purge_batch_size
    summary = AppointmentPurgeSummary(dry_run=dry_run)
    async with platform.db.transaction() as session:
        total, messages, forms, documents = await count_due(session, now)
        run = RetentionRun(
            rule=APPOINTMENT_RETENTION,
            trigger=trigger,
            actor_id=actor.person_id,
            dry_run=dry_run,
            started_at=utcnow(),
        )
        session.add(run)
        await session.flush()
        summary.run_id = run.id
        if dry_run:
            run.appointments, run.messages, run.finished_at = total, messages, utcnow()
            summary.appointments, summary.messages = total, messages
            summary.forms, summary.documents = forms, documents
            return summary
    if progress:
        progress(0, total)
    while True:
        async with platform.db.transaction() as session:
            batch = list(
                (
                    await session.scalars(
                        select(Appointment)
                        .where(*_due_filter(now))
                        .order_by(Appointment.retention_until)
                        .limit(batch_size)
                        .with_for_update(skip_locked=True, of=Appointment)
                    )
                ).all()
            )
            if not batch:
                break
            erased = await erase_content(
                session, platform, batch, rule=RETENTION, actor=actor, now=now, run_id=run.id
            )
            deletion_job = None
            if erased.storage_keys:  # committed with the batch: an interrupted deletion is retried
                job = await enqueue(
                    session, DELETE_OBJECTS_JOB, {"keys": erased.storage_keys}, delay=DELETE_RETRY_DELAY
                )
                deletion_job = job.id
        summary.appointments += len(batch)
        summary.messages += erased.messages
        summary.forms += erased.forms
        summary.documents += erased.documents
        failed = await delete_stored(platform, erased.storage_keys)
        summary.storage_failures += len(failed)
        if deletion_job is not None:
            await _settle_deletion_job(platform, deletion_job, failed)
        if progress:
            progress(summary.appointments, max(total, summary.appointments))
    async with platform.db.transaction() as session:
        await session.execute(
            update(RetentionRun)
            .where(RetentionRun.id == run.id)
            .values(
                appointments=summary.appointments,
                messages=summary.messages,
                storage_failures=summary.storage_failures,
                finished_at=utcnow(),
            )
        )
    log.info(
        "purge.finished",
        rule=APPOINTMENT_RETENTION,
        appointments=summary.appointments,
        dry_run=dry_run,
        trigger=trigger,
    )
    return summary


async def _settle_deletion_job(platform: Platform, job_id: uuid.UUID, failed: list[str]) -> None:
    """After the run's own attempt: the batch's ``storage.delete`` job is done, or keeps only the keys that
    failed (it runs after its delay). A job a relay took already is left alone: it deletes again,
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
