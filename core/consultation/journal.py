"""Journal notes: the drafter (a plugin) writes a draft as a job, the clinician edits it and approves
it, and from then on it is immutable with its provenance (drafter and version, approving clinician,
time). An AI draft needs the patient's consent, checked when asked for and again when the job runs.

A drafter that fails (its model unreachable, an unusable answer) fails the draft request at once: the
clinician sees it (``draft_request_of``), asks again or writes the note herself (``write_note``). The job is
not retried behind her back, so no draft turns up after she has written her own."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.consultation import case_events, consents
from legetime.core.consultation.access import as_clinician, load_case, require_person, require_unrestricted
from legetime.core.consultation.questionnaire import answers_for_display, load_questionnaire
from legetime.core.identity.ctx import Ctx
from legetime.core.identity.nationalid import age_on
from legetime.core.platform import idempotency
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import (
    Case,
    ConsentPurpose,
    JournalNote,
    JournalNoteStatus,
    Message,
    OutboxJob,
    OutboxStatus,
    Person,
)
from legetime.core.platform.errors import (
    ErrorCode,
    IdempotencyConflict,
    LegetimeError,
    NotFound,
    ProviderError,
    ValidationError,
)
from legetime.core.platform.events import EventType
from legetime.core.platform.jobs.outbox import enqueue
from legetime.core.platform.jobs.types import JobContext, JobFailed
from legetime.core.platform.providers import JOURNAL
from legetime.core.platform.providers.journal import JournalContext, JournalMessage
from legetime.core.protection import audit, content

AI_CONSENT_MESSAGE = "Pasienten har ikke samtykket til KI-assistert journalføring."
DRAFT_FAILED_MESSAGE = (
    "Utkastet kunne ikke lages fordi journalassistenten ikke svarte. Prøv igjen, eller skriv notatet selv."
)
MAX_NOTE_LENGTH = 20000
_NOTE_IDS = uuid.UUID("6f1d3a52-9a43-4d6e-8a8e-3e1f4c1d2b7a")
_WRITTEN_NOTE_IDS = uuid.UUID("0c7b1f9e-5d2a-4f43-9b6e-2a8d4c3e1f50")


DRAFT_JOB = "journal.draft"

log = structlog.get_logger(__name__)


class NoteApproved(LegetimeError):
    code = ErrorCode.CONFLICT


class DraftFailed(LegetimeError):
    """The drafter could not make the draft asked for; asking again (another key) may succeed."""

    code = ErrorCode.PROVIDER_UNAVAILABLE


class DraftStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class DraftRequest:
    """The newest request for a draft of a case, as its job stands."""

    status: DraftStatus
    requested_at: datetime
    error: LegetimeError | None = None


def _draft_key_prefix(case_id: uuid.UUID) -> str:
    return f"journal-draft:{case_id}:"


async def request_draft(ctx: Ctx, case_id: uuid.UUID, idempotency_key: str | None = None) -> Case:
    """Ask the drafter for a draft (a job). A retry with the same ``idempotency_key`` (the clinician's
    own, per case) asks once: the key is in the job's dedupe key, and the case's row lock makes a retry
    wait for the first call."""
    key = idempotency.check_key(idempotency_key)
    clinician_id = require_person(ctx.actor)
    case = await load_case(ctx, case_id, as_clinician(ctx.actor, write=True), for_update=key is not None)
    # Without a key every call asks anew; the key is still set, so the case's requests can be found.
    dedupe_key = f"{_draft_key_prefix(case.id)}{clinician_id}:{key or f'unkeyed-{uuid.uuid4().hex}'}"

    async def find() -> Case | None:
        asked = await ctx.session.scalar(select(OutboxJob.status).where(OutboxJob.dedupe_key == dedupe_key))
        if asked is OutboxStatus.FAILED:  # the first call's outcome, now known
            raise DraftFailed(DRAFT_FAILED_MESSAGE)
        return None if asked is None else case

    async def create() -> Case:
        await consents.require(ctx, case.subject_id, ConsentPurpose.AI_JOURNAL, case.id, AI_CONSENT_MESSAGE)
        await require_unrestricted(ctx, case.subject_id)
        await enqueue(ctx.session, DRAFT_JOB, {"case_id": str(case.id)}, dedupe_key=dedupe_key)
        await audit.log(
            ctx,
            person_id=case.subject_id,
            object_type="case",
            object_id=str(case.id),
            action="request_journal_draft",
            reason="treatment",
        )
        return case

    return await idempotency.once(ctx.session, "draft_journal_note", key, find, create)


async def draft_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    note_id = uuid.uuid5(_NOTE_IDS, ctx.job_id)  # one note per job, however often it is delivered
    if await ctx.session.get(JournalNote, note_id) is not None:
        return
    case = await ctx.session.get(Case, uuid.UUID(payload["case_id"]))
    if case is None:
        return
    if not await consents.current(ctx.session, case.subject_id, ConsentPurpose.AI_JOURNAL, case.id):
        return  # withdrawn since it was asked for: no draft
    patient = await ctx.session.get(Person, case.subject_id)
    assert patient is not None
    requester = await ctx.session.get(Person, case.requester_id)
    assert requester is not None
    if patient.restricted_at is not None or content.communication_deleted(case):
        return  # processing restricted, or nothing left to draft from
    ring = ctx.platform.keyring
    messages = (
        await ctx.session.scalars(
            select(Message).where(Message.case_id == case.id).order_by(Message.created_at)
        )
    ).all()
    questionnaire = load_questionnaire(case.questionnaire_key or "general", case.questionnaire_version)
    today = utcnow().astimezone(ctx.platform.settings.zone).date()
    drafter = ctx.platform.providers.get(JOURNAL)
    names = {patient.given_name, patient.family_name, requester.given_name, requester.family_name}
    context = JournalContext(
        case_number=case.number,
        patient_age_years=age_on(patient.birth_date, today),
        patient_sex=None,
        questionnaire=answers_for_display(questionnaire, content.answers(ring, case)),
        messages=[
            JournalMessage(author_role=m.author_role.value, body=content.message_body(ring, case, m))
            for m in messages
        ],
        outcome=case.outcome.value if case.outcome else None,
        consultation_date=today,
        known_names=tuple(sorted(name for name in names | {case.patient_given_name} if name)),
    )
    try:
        draft = await drafter.draft(context)
    except ProviderError as exc:
        # The drafter has retried already (its timeouts and backoff): the clinician decides what next.
        log.warning("journal.draft_failed", job_id=ctx.job_id, case_id=str(case.id), code=exc.code)
        raise JobFailed(exc.code) from None
    note = JournalNote(
        id=note_id,
        case_id=case.id,
        drafter=draft.provenance.drafter,
        drafter_version=draft.provenance.version,
        model=draft.provenance.model,
        prompt_version=draft.provenance.prompt_version,
    )
    content.set_note(ring, case, note, draft.text, dict(draft.sections))
    ctx.session.add(note)
    await case_events.emit(ctx, EventType.JOURNAL_DRAFTED, case, note_id=str(note.id), drafter=note.drafter)


async def draft_request_of(session: AsyncSession, case_id: uuid.UUID) -> DraftRequest | None:
    """The newest draft request of the case (None if none was made since requests were keyed by case).
    Only for those who may see the case's drafts: it tells whether one is coming."""
    row = (
        await session.execute(
            select(OutboxJob.status, OutboxJob.created_at)
            .where(OutboxJob.name == DRAFT_JOB, OutboxJob.dedupe_key.startswith(_draft_key_prefix(case_id)))
            .order_by(OutboxJob.created_at.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    status, requested_at = row
    if status is OutboxStatus.FAILED:
        return DraftRequest(DraftStatus.FAILED, requested_at, DraftFailed(DRAFT_FAILED_MESSAGE))
    if status is OutboxStatus.DONE:
        return DraftRequest(DraftStatus.DONE, requested_at)
    return DraftRequest(DraftStatus.PENDING, requested_at)


def _note_text(text: str) -> str:
    text = text.strip()
    if not text or len(text) > MAX_NOTE_LENGTH:
        raise ValidationError(f"Notatet må ha tekst (høyst {MAX_NOTE_LENGTH} tegn).", field="text")
    return text


async def write_note(
    ctx: Ctx, case_id: uuid.UUID, text: str, idempotency_key: str | None = None
) -> tuple[JournalNote, Case]:
    """A note the clinician writes herself: no drafter, so no AI consent. A draft until she approves it.
    A retry with the same ``idempotency_key`` (hers, per case) returns the note the first call wrote; the
    same key with another text, while the note is a draft, is a conflict."""
    key = idempotency.check_key(idempotency_key)
    clinician_id = require_person(ctx.actor)
    case = await load_case(ctx, case_id, as_clinician(ctx.actor, write=True), for_update=key is not None)
    text = _note_text(text)
    if key is not None:
        note_id = uuid.uuid5(_WRITTEN_NOTE_IDS, f"{case.id}:{clinician_id}:{key}")
        if (written := await ctx.session.get(JournalNote, note_id)) is not None:
            drafted = content.note_content(ctx.platform.keyring, case, written)[0]
            if written.status is JournalNoteStatus.DRAFT and drafted != text:
                raise IdempotencyConflict(
                    "Denne nøkkelen er allerede brukt for et annet notat.", field="idempotencyKey"
                )
            return written, case
    else:
        note_id = uuid.uuid4()
    note = JournalNote(id=note_id, case_id=case.id)
    content.set_note(ctx.platform.keyring, case, note, text, {})
    ctx.session.add(note)
    await audit.log(
        ctx,
        person_id=case.subject_id,
        object_type="journal_note",
        object_id=str(note.id),
        action="write",
        reason="treatment",
    )
    return note, case


async def _note(ctx: Ctx, note_id: uuid.UUID) -> tuple[JournalNote, Case]:
    require_person(ctx.actor)  # before any look-up: an anonymous caller learns nothing either way
    note = await ctx.session.get(JournalNote, note_id, with_for_update=True)
    if note is None:
        raise NotFound("Fant ikke journalnotatet.", field="noteId")
    try:
        case = await load_case(ctx, note.case_id, as_clinician(ctx.actor, write=True))
    except NotFound:
        raise NotFound("Fant ikke journalnotatet.", field="noteId") from None
    return note, case


async def approve(ctx: Ctx, note_id: uuid.UUID, text: str | None) -> JournalNote:
    """Approve the note, with the clinician's edited text if given. Approved notes never change."""
    note, case = await _note(ctx, note_id)
    if note.status is JournalNoteStatus.APPROVED:
        raise NoteApproved("Notatet er allerede godkjent og kan ikke endres.", field="noteId")
    if text is not None:
        text = _note_text(text)
        _, sections = content.note_content(ctx.platform.keyring, case, note)
        content.set_note(ctx.platform.keyring, case, note, text, sections)
    note.status = JournalNoteStatus.APPROVED
    note.approved_by_id = ctx.actor.person_id
    note.approved_at = ctx.now
    await case_events.emit(ctx, EventType.JOURNAL_APPROVED, case, note_id=str(note.id))
    await audit.log(
        ctx,
        person_id=case.subject_id,
        object_type="journal_note",
        object_id=str(note.id),
        action="approve",
        reason="treatment",
    )
    return note
