"""The consultation: every change to a case, each checked against the access rules and the state
machine (``case_states``), logged in the access log, and with its side effects (payment, SMS,
journal drafting) as outbox jobs in the same transaction."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.consultation import case_events, consents
from legetime.core.consultation.access import (
    ProcessingRestricted,
    as_clinician,
    as_patient,
    load_case,
    readable,
    require_person,
)
from legetime.core.consultation.case_states import CaseEvent, next_status
from legetime.core.consultation.notifications import notify
from legetime.core.consultation.payments import capture_later, release_later
from legetime.core.consultation.questionnaire import load_questionnaire, validate_answers
from legetime.core.consultation.sla import sla_due_at
from legetime.core.identity import persons
from legetime.core.identity.actors import SYSTEM
from legetime.core.identity.countries import country_of_national_id, identify
from legetime.core.identity.ctx import Ctx
from legetime.core.identity.nationalid import InvalidNationalId, age_on
from legetime.core.platform import idempotency
from legetime.core.platform.db.models import (
    Attachment,
    Case,
    CaseOutcome,
    CaseStatus,
    ConsentPurpose,
    Message,
    MessageKind,
    Participant,
    ParticipantRole,
    Person,
    RequesterRole,
)
from legetime.core.platform.errors import ErrorCode, Forbidden, LegetimeError, ValidationError
from legetime.core.platform.events import EventType
from legetime.core.platform.jobs.outbox import enqueue
from legetime.core.platform.runtime import Platform
from legetime.core.protection import audit, content
from legetime.core.protection.retention import (
    CONSENT_WITHDRAWN,
    ERASE_CASE_JOB,
    IMAGE_CONSENT_WITHDRAWN,
    retention_deadline,
)

CASE_NUMBER_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read aloud on the phone
MAX_MESSAGE_LENGTH = 5000
SURVEY_JOB = "surveys.after_case"
"""The patient survey after a closed consultation, with consent, once (``core.appointments.surveys``)."""
SURVEY_AFTER = timedelta(hours=3)


class ChildTooOld(LegetimeError):
    code = ErrorCode.CHILD_TOO_OLD


class GuardianshipNotConfirmed(LegetimeError):
    code = ErrorCode.GUARDIANSHIP_NOT_CONFIRMED


class PrescriptionNotAllowed(LegetimeError):
    code = ErrorCode.PRESCRIPTION_NOT_ALLOWED


class PrescriptionGroup(StrEnum):
    """Norwegian prescription groups (reseptgruppe). A and B are narcotics and habit-forming drugs:
    never prescribed in a digital consultation."""

    A = "A"
    B = "B"
    C = "C"
    F = "F"


@dataclass(frozen=True)
class Prescription:
    medication: str
    group: PrescriptionGroup


async def log_case(ctx: Ctx, case: Case, action: str, reason: str | None = None) -> None:
    """Log an action on a case in the access log (the person is the case's patient)."""
    await audit.log(
        ctx,
        person_id=case.subject_id,
        object_type="case",
        object_id=str(case.id),
        action=action,
        reason=reason,
    )


async def _transition(ctx: Ctx, case: Case, event: CaseEvent, **data: Any) -> None:
    """Move the case on (the state machine says where) and record the domain event in the same
    transaction."""
    case.status = next_status(case.status, event)
    await case_events.emit(ctx, case_events.FOR_TRANSITION[event], case, **data)


async def _new_number(ctx: Ctx) -> str:
    while True:
        number = "LT-" + "".join(secrets.choice(CASE_NUMBER_ALPHABET) for _ in range(6))
        if await ctx.session.scalar(select(Case.id).where(Case.number == number)) is None:
            return number


# --- reading ---------------------------------------------------------------------------------------


async def read_case(ctx: Ctx, case_id: uuid.UUID) -> Case:
    """A case the actor may read; the read is logged (staff reads carry the reason "treatment")."""
    case = await load_case(ctx, case_id, readable(ctx.actor, ctx.today))
    reason = "treatment" if ctx.actor.is_clinician and case.subject_id != ctx.actor.person_id else None
    await log_case(ctx, case, "read", reason)
    return case


async def log_reads(ctx: Ctx, cases: list[Case], action: str = "list") -> None:
    """Log reads of several cases at once (a page of a list): one batched insert."""
    actor = ctx.actor
    reader, role, reason = actor.person_id, actor.role, _reason(ctx)
    await audit.record_many(
        ctx.session,
        [audit.Entry(reader, role, case.subject_id, "case", str(case.id), action, reason) for case in cases],
    )


def list_log_parameters(ctx: Ctx) -> dict[str, Any]:
    """The parameters of a page statement that logs the cases it lists itself (``audit.logging_select``),
    with the same actor, role and reason as ``log_reads``."""
    return audit.logging_parameters(ctx.actor.person_id, ctx.actor.role, _reason(ctx))


def _reason(ctx: Ctx) -> str | None:
    return "treatment" if ctx.actor.is_clinician else None


# --- the patient -----------------------------------------------------------------------------------


async def start_case(
    ctx: Ctx,
    *,
    child_national_id: str | None = None,
    child_given_name: str | None = None,
    guardian_declared: bool = False,
    idempotency_key: str | None = None,
) -> Case:
    """Open a draft case for the actor herself, or for her child (she becomes its guardian): a child of her
    own country under its guardian age (Norway 16, Sweden 18; ``legetime.core.identity.countries``).
    A retry with the same ``idempotency_key`` returns the case the first call opened."""
    requester_id = require_person(ctx.actor)
    key = idempotency.check_key(idempotency_key)
    child = () if child_national_id is None else (child_national_id, child_given_name, str(guardian_declared))
    requested = idempotency.request_hash(ctx.platform, "start_case", *child) if key is not None else None

    async def find() -> Case | None:
        existing = await ctx.session.scalar(
            select(Case).where(Case.requester_id == requester_id, Case.idempotency_key == key)
        )
        if existing is not None and existing.request_hash != requested:
            raise idempotency.conflict("start_case", "en annen sak")
        return existing

    async def create() -> Case:
        requester = await ctx.session.get(Person, requester_id)
        assert requester is not None
        if requester.restricted_at is not None:
            raise ProcessingRestricted(
                "Du har begrenset behandlingen av opplysningene dine. "
                "Opphev begrensningen for å starte en sak.",
                field="restricted",
            )
        subject = requester
        role = RequesterRole.SELF
        if child_national_id is not None:
            subject = await child_of_guardian(
                ctx, requester, child_national_id, child_given_name, guardian_declared
            )
            role = RequesterRole.GUARDIAN
        questionnaire = load_questionnaire()
        case = Case(
            id=uuid.uuid4(),
            number=await _new_number(ctx),
            subject_id=subject.id,
            requester_id=requester.id,
            requester_role=role,
            questionnaire_key=questionnaire.key,
            questionnaire_version=questionnaire.version,
            price_amount=ctx.platform.settings.price_minor,
            price_currency=ctx.platform.settings.currency,
            idempotency_key=key,
            request_hash=requested,
            patient_given_name=(child_given_name or "").strip()[:200]
            if role is RequesterRole.GUARDIAN
            else None,
            created_at=ctx.now,
        )
        content.give_case_keys(ctx.platform.keyring, case)
        ctx.session.add(case)
        await ctx.session.flush()
        ctx.session.add(Participant(case_id=case.id, person_id=subject.id, role=ParticipantRole.PATIENT))
        if role is RequesterRole.GUARDIAN:
            ctx.session.add(
                Participant(case_id=case.id, person_id=requester.id, role=ParticipantRole.GUARDIAN)
            )
        await ctx.session.flush()
        await log_case(ctx, case, "create")
        await case_events.emit(ctx, EventType.CASE_STARTED, case)
        return case

    return await idempotency.once(ctx.session, "start_case", key, find, create)


async def child_of_guardian(
    ctx: Ctx, guardian: Person, national_id: str, given_name: str | None, declared: bool
) -> Person:
    """The child a guardian acts for (a case, an appointment): of her country, under its guardian age, her
    guardianship declared and confirmed by the ``verify_guardianship`` hook; made a person if new."""
    guardian_national_id = persons.national_id(ctx.platform.keyring, guardian)
    rules = country_of_national_id(guardian_national_id)  # the child's ID is of the guardian's country
    try:
        parsed = rules.parse(national_id, born_by=ctx.today)
    except InvalidNationalId as exc:
        other = identify(national_id) if rules.child_same_country.value else None
        if other is not None and other is not rules:
            raise InvalidNationalId(
                f"Barnets nummer er et {other.id_with_country}, men du er logget inn med "
                f"{rules.id_with_country}. Saken må opprettes av en forelder med e-legitimasjon fra "
                "samme land som barnet.",
                reason="country",
                field="childNationalId",
            ) from None
        raise InvalidNationalId(exc.message, field="childNationalId") from None
    if parsed.value == guardian_national_id:
        raise ValidationError(f"Barnets {rules.id_noun} kan ikke være ditt eget.", field="childNationalId")
    if not rules.guardian_may_act_for(age_on(parsed.birth_date, ctx.today)):
        raise ChildTooOld(rules.child_too_old_message(), field="childNationalId")
    if not declared:
        raise GuardianshipNotConfirmed(
            "Bekreft at du har foreldreansvar for barnet.", field="guardianDeclared"
        )
    if not await ctx.platform.hooks.verify_guardianship(guardian_national_id, parsed.value):
        raise GuardianshipNotConfirmed(
            "Vi kunne ikke bekrefte at du har foreldreansvar for barnet.", field="childNationalId"
        )
    child = await persons.find_person(ctx.session, ctx.platform, parsed.value)
    if child is None:
        child = persons.new_person(
            ctx.platform,
            parsed.value,
            given_name=(given_name or "").strip()[:200],
            family_name="",
            birth_date=parsed.birth_date,
        )
        ctx.session.add(child)
        await ctx.session.flush()
    return child


async def answer_questionnaire(ctx: Ctx, case_id: uuid.UUID, answers: dict[str, Any]) -> Case:
    """Save (some of) the answers: validated as far as given; completeness is checked at submit."""
    case = await load_case(ctx, case_id, as_patient(ctx.actor, ctx.today))
    if case.status is not CaseStatus.DRAFT:
        raise ValidationError("Svarene kan bare endres før saken sendes inn.", field="caseId")
    questionnaire = load_questionnaire(case.questionnaire_key or "general", case.questionnaire_version)
    merged = {**content.answers(ctx.platform.keyring, case), **answers}
    merged = {key: value for key, value in merged.items() if value is not None}
    clean = validate_answers(
        questionnaire,
        merged,
        for_child=case.requester_role is RequesterRole.GUARDIAN,
        partial=True,
        today=ctx.today,
    )
    content.set_answers(ctx.platform.keyring, case, dict(clean))
    case.updated_at = ctx.now
    await log_case(ctx, case, "answer")
    return case


async def _ended(ctx: Ctx, case: Case) -> None:
    """A case closed or was cancelled: its communication is kept for the retention time — or deleted now,
    if the patient has not (or no longer) consented to storing it."""
    if case.status is CaseStatus.CLOSED:  # the survey follows (with consent, once); never a cancellation
        job = {"case_id": str(case.id)}
        await enqueue(ctx.session, SURVEY_JOB, job, dedupe_key=f"survey:{case.id}", delay=SURVEY_AFTER)
    keep = await consents.current(ctx.session, case.subject_id, ConsentPurpose.COMMUNICATION_STORAGE, case.id)
    if keep:
        case.retention_until = retention_deadline(ctx.now, ctx.platform.settings.retention_months)
        images = await consents.current(ctx.session, case.subject_id, ConsentPurpose.IMAGE_STORAGE, case.id)
        if not images and await ctx.session.scalar(
            select(Attachment.id).where(Attachment.case_id == case.id)
        ):
            await enqueue(
                ctx.session,
                ERASE_CASE_JOB,
                {"case_id": str(case.id), "rule": IMAGE_CONSENT_WITHDRAWN},
                dedupe_key=f"erase-images:{case.id}",
            )
        return
    case.retention_until = ctx.now
    await enqueue(
        ctx.session,
        ERASE_CASE_JOB,
        {"case_id": str(case.id), "rule": CONSENT_WITHDRAWN},
        dedupe_key=f"erase:{case.id}",
    )


async def cancel_case(ctx: Ctx, case_id: uuid.UUID) -> Case:
    case = await load_case(ctx, case_id, as_patient(ctx.actor, ctx.today), for_update=True)
    await _transition(ctx, case, CaseEvent.CANCEL)
    case.cancelled_at = ctx.now
    await _ended(ctx, case)
    await release_later(ctx, case)
    await log_case(ctx, case, "cancel")
    return case


async def close_case(ctx: Ctx, case_id: uuid.UUID) -> Case:
    """The patient has read the answer: close it, and charge the reserved fee."""
    case = await load_case(ctx, case_id, as_patient(ctx.actor, ctx.today), for_update=True)
    await _transition(ctx, case, CaseEvent.CLOSE)
    case.closed_at = ctx.now
    await _ended(ctx, case)
    await capture_later(ctx, case)
    await log_case(ctx, case, "close")
    return case


# --- the clinician ---------------------------------------------------------------------------------


async def claim_case(ctx: Ctx, case_id: uuid.UUID) -> Case:
    case = await load_case(ctx, case_id, as_clinician(ctx.actor, write=False), for_update=True)
    await _transition(ctx, case, CaseEvent.CLAIM)
    case.assigned_clinician_id = ctx.actor.person_id
    ctx.session.add(
        Participant(case_id=case.id, person_id=ctx.actor.person_id, role=ParticipantRole.CLINICIAN)
    )
    await ctx.session.flush()
    await log_case(ctx, case, "claim", "treatment")
    return case


async def send_message(
    ctx: Ctx, case_id: uuid.UUID, body: str, idempotency_key: str | None = None
) -> Message:
    """A message on the case. From the assigned clinician while in review it is a follow-up question
    (the case waits for the patient, who gets an SMS); the patient's reply puts it back in review. A retry
    with the same ``idempotency_key`` (the author's own, per case) returns the message the first call sent
    and changes nothing."""
    body = body.strip()
    if not body:
        raise ValidationError("Meldingen er tom.", field="body")
    if len(body) > MAX_MESSAGE_LENGTH:
        raise ValidationError(f"Meldingen kan være høyst {MAX_MESSAGE_LENGTH} tegn.", field="body")
    key = idempotency.check_key(idempotency_key)
    sender_id = require_person(ctx.actor)
    case = await load_case(
        ctx, case_id, as_clinician(ctx.actor, write=True) | as_patient(ctx.actor, ctx.today), for_update=True
    )
    # The case's row lock makes a retry wait for the first call, then find its message (PostgreSQL).
    case_id = case.id

    async def find() -> Message | None:
        existing = await ctx.session.scalar(
            select(Message).where(
                Message.case_id == case_id, Message.author_id == sender_id, Message.idempotency_key == key
            )
        )
        if existing is None:
            return None
        current = await ctx.session.get(Case, case_id)  # reloaded if a rolled-back savepoint expired it
        assert current is not None
        if content.message_body(ctx.platform.keyring, current, existing) != body:
            raise idempotency.conflict("send_message", "en annen melding")
        return existing

    async def create() -> Message:
        from_clinician = case.assigned_clinician_id == sender_id
        if from_clinician:
            kind, role = MessageKind.FOLLOW_UP, ParticipantRole.CLINICIAN
            if case.status is CaseStatus.IN_REVIEW:
                await _transition(ctx, case, CaseEvent.ASK_FOLLOW_UP)
            elif case.status is not CaseStatus.AWAITING_PATIENT:
                next_status(case.status, CaseEvent.ASK_FOLLOW_UP)  # raises the typed illegal-transition error
        else:
            kind = MessageKind.MESSAGE
            role = (
                ParticipantRole.GUARDIAN
                if case.requester_role is RequesterRole.GUARDIAN
                else ParticipantRole.PATIENT
            )
            if case.status is CaseStatus.AWAITING_PATIENT:
                await _transition(ctx, case, CaseEvent.PATIENT_REPLIED)
            elif case.status not in (CaseStatus.SUBMITTED, CaseStatus.IN_REVIEW):
                raise ValidationError("Du kan ikke sende melding på saken nå.", field="caseId")
        message = Message(
            case_id=case.id,
            author_id=sender_id,
            author_role=role,
            kind=kind,
            body_sealed=content.seal_message(ctx.platform.keyring, case, body),
            idempotency_key=key,
            created_at=ctx.now,
        )
        ctx.session.add(message)
        case.updated_at = ctx.now
        await ctx.session.flush()
        await case_events.emit(
            ctx,
            EventType.MESSAGE_SENT,
            case,
            message_id=str(message.id),
            kind=kind.value,
            author_role=role.value,
        )
        if kind is MessageKind.FOLLOW_UP:
            await notify(ctx, case, "follow_up", str(message.id))
        await log_case(ctx, case, "message", "treatment" if from_clinician else None)
        return message

    return await idempotency.once(ctx.session, "send_message", key, find, create)


async def answer_case(
    ctx: Ctx,
    case_id: uuid.UUID,
    *,
    body: str,
    outcome: CaseOutcome,
    prescription: Prescription | None = None,
) -> Message:
    """The clinician's written answer: advice, a referral to a physical examination, or a prescription
    (never A or B preparations; no sick notes in a digital consultation)."""
    if outcome is CaseOutcome.PRESCRIPTION:
        if prescription is None:
            raise ValidationError("Oppgi legemiddel og reseptgruppe.", field="prescription")
        if prescription.group in (PrescriptionGroup.A, PrescriptionGroup.B):
            raise PrescriptionNotAllowed(
                "A- og B-preparater forskrives ikke ved digital konsultasjon.", field="prescription"
            )
    elif prescription is not None:
        raise ValidationError("Resept hører bare til utfallet resept.", field="prescription")
    body = body.strip()
    if not body:
        raise ValidationError("Svaret er tomt.", field="body")
    case = await load_case(ctx, case_id, as_clinician(ctx.actor, write=True), for_update=True)
    case.outcome = outcome
    case.answered_at = ctx.now
    text = body if prescription is None else f"{body}\n\nResept: {prescription.medication}"
    message = Message(
        case_id=case.id,
        author_id=ctx.actor.person_id,
        author_role=ParticipantRole.CLINICIAN,
        kind=MessageKind.ANSWER,
        body_sealed=content.seal_message(ctx.platform.keyring, case, text),
        created_at=ctx.now,
    )
    ctx.session.add(message)
    await ctx.session.flush()
    await _transition(ctx, case, CaseEvent.ANSWER, message_id=str(message.id))
    await notify(ctx, case, "answered", str(message.id))
    await log_case(ctx, case, "answer", "treatment")
    return message


# --- submitting ------------------------------------------------------------------------------------


async def check_submittable(ctx: Ctx, case: Case) -> None:
    """Everything a case needs before the fee is reserved: answers complete and valid, consent given."""
    if case.status is not CaseStatus.DRAFT:
        next_status(case.status, CaseEvent.SUBMIT)  # raises the typed illegal-transition error
    questionnaire = load_questionnaire(case.questionnaire_key or "general", case.questionnaire_version)
    validate_answers(
        questionnaire,
        content.answers(ctx.platform.keyring, case),
        for_child=case.requester_role is RequesterRole.GUARDIAN,
        partial=False,
        today=ctx.today,
    )
    await consents.require(
        ctx,
        case.subject_id,
        ConsentPurpose.COMMUNICATION_STORAGE,
        case.id,
        "Du må samtykke til lagring av den digitale kommunikasjonen før du sender inn.",
    )


async def mark_submitted(ctx: Ctx, case: Case) -> None:
    settings = ctx.platform.settings
    case.submitted_at = ctx.now
    case.sla_due_at = sla_due_at(ctx.now, cutoff=settings.sla_cutoff, zone=settings.zone)
    await _transition(ctx, case, CaseEvent.SUBMIT)


async def close_answered_cases(
    session: AsyncSession,
    platform: Platform,
    now: datetime,
    batch: int = 100,
    case_ids: list[uuid.UUID] | None = None,
) -> int:
    """Close answered cases the patient has not closed within ``auto_close_hours`` (or these ``case_ids``:
    their payment hold is about to lapse), charging the fee. ``SKIP LOCKED`` lets several workers run this
    side by side; the capture is enqueued once per case."""
    cutoff = now - timedelta(hours=platform.settings.auto_close_hours)
    which = Case.id.in_(case_ids) if case_ids is not None else Case.answered_at < cutoff
    due = (
        await session.scalars(
            select(Case)
            .where(Case.status == CaseStatus.ANSWERED, which)
            .order_by(Case.answered_at)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
    ).all()
    ctx = Ctx(session=session, platform=platform, actor=SYSTEM, now=now)
    for case in due:
        await _transition(ctx, case, CaseEvent.CLOSE)
        case.closed_at = now
        await _ended(ctx, case)
        await capture_later(ctx, case)
        await log_case(ctx, case, "auto_close", "retention of answered cases")
    return len(due)


def require_clinician(ctx: Ctx) -> None:
    require_person(ctx.actor)
    if not ctx.actor.is_clinician:
        raise Forbidden("Bare leger har tilgang.")
