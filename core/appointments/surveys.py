"""The patient survey after a visit, a video consultation or a written consultation: a link by SMS, once,
to those who consented (``ConsentPurpose.PATIENT_SURVEY``, its own legal basis and text), and anonymous
answers that operators see only as aggregates.

**Sending.** After an appointment, the ``SURVEY`` timed text (``timed_texts``, three hours after the
visit) is made here: skipped unless the visit took place (completed, paid or invoiced: never after a
cancellation or a no-show) and the patient — or the guardian who booked for her child — consents. After a
written consultation, closing the case (by the patient or the periodic auto-close, never a cancellation)
enqueues ``cases.SURVEY_JOB``, which does the same for the case. Either way an invitation is stored once
per subject (unique on subject): a redelivered job, a failover or a second run finds it and sends nothing
new.

**The link.** A random-looking token derived with a keyed hash from the subject (``derive_key
("survey-links")``, so a text made again for a failover is the same text) whose SHA-256 alone is stored on
the invitation. Unlike the appointment links (``links``), the token names nothing: not the appointment,
not the case. It works for ``VALID_FOR`` (30 days) and for one answer.

**Anonymous answers.** ``answer`` stores a ``SurveyAnswer`` with the survey's kind, the month of the
visit or consultation, the clinic (visits at a clinic only) and the scores — no person, no appointment or
case, no invitation, no time of day, no free text; its id is random. The invitation is marked answered
so the link works once; the link between the invitation and the answer is not stored anywhere, and the
answer writes no access-log entry (it names no one). The invitation itself names its subject only so
the survey is sent once.

**Aggregates.** ``results`` gives operators, per survey kind and question, the count, mean and
distribution of scores; a kind with fewer than ``MIN_GROUP`` answers in the period (and clinic) is
suppressed (k-anonymity: a small group lets someone who knows who was there guess who answered what).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.appointments import timed_texts
from legetime.core.appointments.access import GUARDIAN
from legetime.core.consultation import consents
from legetime.core.consultation.notifications import PENDING
from legetime.core.consultation.sms_delivery import deliver, texts_of_other_notices
from legetime.core.identity.actors import require_operator
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.appointment_models import (
    Appointment,
    AppointmentMode,
    AppointmentStatus,
    SurveyAnswer,
    SurveyInvitation,
    TimedText,
    TimedTextPlan,
)
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import (
    Case,
    CaseStatus,
    ConsentPurpose,
    Notification,
    Person,
    RequesterRole,
)
from legetime.core.platform.errors import ErrorCode, LinkExpired, NotFound, ValidationError
from legetime.core.platform.jobs.types import JobContext
from legetime.core.platform.runtime import Platform

log = structlog.get_logger(__name__)

KEY_PURPOSE = "survey-links"
VALID_FOR = timedelta(days=30)
MIN_GROUP = 5
"""Fewer answers than this in a group are not shown (k-anonymity)."""
SCORES = range(1, 6)
APPOINTMENT = "appointment"
CASE = "case"
NOTICE_SUBJECT = "survey"
"""The first part of the case survey's notice event (``survey.case``): its text is made here again."""
CASE_NOTICE = f"{NOTICE_SUBJECT}.case"

SKIPPED_NOT_HELD = "skipped_not_held"
SKIPPED_NO_CONSENT = "skipped_no_consent"
SKIPPED_ALREADY = "skipped_already_invited"
HELD = frozenset({AppointmentStatus.COMPLETED, AppointmentStatus.PAID, AppointmentStatus.INVOICED})

TEXT = (
    "Legetime: Hvordan opplevde du oss? Svar på fem korte spørsmål. Svarene er anonyme. "
    "Lenken gjelder i 30 dager: {link}"
)
NOT_FOUND_MESSAGE = "Fant ikke undersøkelsen. Sjekk at hele lenken fra meldingen er med."
EXPIRED_MESSAGE = "Undersøkelsen er avsluttet. Takk likevel!"
ANSWERED_MESSAGE = "Du har allerede svart på denne undersøkelsen. Takk for svaret!"


class SurveyKind(StrEnum):
    VISIT = "visit"
    """An appointment at a clinic."""
    VIDEO = "video"
    """A video consultation."""
    CONSULTATION = "consultation"
    """A written consultation (a case)."""


@dataclass(frozen=True)
class Question:
    id: str
    text: str


QUESTIONS: tuple[Question, ...] = (
    Question("overall", "Hvor fornøyd er du alt i alt?"),
    Question("listened", "Hvor godt lyttet legen til deg?"),
    Question("explained", "Hvor godt forklarte legen hva som skal skje videre?"),
    Question("easy", "Hvor enkelt var det å bruke tjenesten?"),
    Question("recommend", "Hvor sannsynlig er det at du anbefaler oss til andre?"),
)
"""Scores 1 (svært dårlig / svært lite) to 5 (svært bra / svært mye); every question is answered."""
LOW_LABEL = "Svært dårlig"
HIGH_LABEL = "Svært bra"
_QUESTION_IDS = frozenset(q.id for q in QUESTIONS)


# --- the link ----------------------------------------------------------------------------------------------


def token_for(platform: Platform, subject_type: str, subject_id: uuid.UUID) -> str:
    """The subject's token: 192 bits of a keyed hash, the same every time it is made."""
    mac = hmac.new(platform.derive_key(KEY_PURPOSE), f"{subject_type}:{subject_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:24]).decode("ascii")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link(platform: Platform, token: str) -> str:
    """The survey page of the frontend (the platform itself is headless)."""
    return f"{platform.settings.public_url.rstrip('/')}/s/{token}"


def _text(platform: Platform, subject_type: str, subject_id: uuid.UUID) -> str:
    return TEXT.format(link=link(platform, token_for(platform, subject_type, subject_id)))


# --- sending -----------------------------------------------------------------------------------------------


async def consented(
    session: AsyncSession, patient_id: uuid.UUID, guardian_id: uuid.UUID | None, case_id: uuid.UUID | None
) -> bool:
    """The patient's consent (for the case, or in general), or that of the guardian who acts for her."""
    if await consents.current(session, patient_id, ConsentPurpose.PATIENT_SURVEY, case_id):
        return True
    return guardian_id is not None and await consents.current(
        session, guardian_id, ConsentPurpose.PATIENT_SURVEY, None
    )


async def _invite(
    session: AsyncSession, platform: Platform, subject_type: str, subject_id: uuid.UUID, expires_at: datetime
) -> bool:
    """Store the invitation, once per subject: False when there is one already."""
    exists = await session.scalar(
        select(SurveyInvitation.id).where(
            SurveyInvitation.subject_type == subject_type, SurveyInvitation.subject_id == subject_id
        )
    )
    if exists is not None:
        return False
    session.add(
        SurveyInvitation(
            subject_type=subject_type,
            subject_id=subject_id,
            token_hash=token_hash(token_for(platform, subject_type, subject_id)),
            expires_at=expires_at,
        )
    )
    await session.flush()
    return True


@timed_texts.makes(TimedText.SURVEY)
async def appointment_text(ctx: JobContext, appointment: Appointment, row: TimedTextPlan) -> timed_texts.Text:
    """The survey after a visit: only if it took place and she consents; the invitation is stored here,
    in the send job's transaction, so it exists if and only if the text goes out."""
    body = _text(ctx.platform, APPOINTMENT, appointment.id)
    if appointment.status not in HELD:
        return timed_texts.Text(body, skipped=SKIPPED_NOT_HELD)
    guardian = appointment.booked_by_id if appointment.booked_by_role == GUARDIAN else None
    if not await consented(ctx.session, appointment.patient_id, guardian, appointment.case_id):
        return timed_texts.Text(body, skipped=SKIPPED_NO_CONSENT)
    booker = await ctx.session.get(Person, appointment.booked_by_id)
    if booker is None or not booker.phone:
        return timed_texts.Text(body)  # the send job records that there is no number
    if not await _invite(ctx.session, ctx.platform, APPOINTMENT, appointment.id, row.due_at + VALID_FOR):
        return timed_texts.Text(body, skipped=SKIPPED_ALREADY)
    return timed_texts.Text(body)


async def case_survey_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The survey after a closed written consultation (``cases.SURVEY_JOB``), once, with consent."""
    session = ctx.session
    case_id = uuid.UUID(payload["case_id"])
    case = await session.get(Case, case_id, with_for_update=True, populate_existing=True)
    if case is None or case.status is not CaseStatus.CLOSED:
        return
    guardian = case.requester_id if case.requester_role is RequesterRole.GUARDIAN else None
    reason = None
    requester = await session.get(Person, case.requester_id)
    if not await consented(session, case.subject_id, guardian, case.id):
        reason = SKIPPED_NO_CONSENT
    elif requester is None or not requester.phone:
        reason = "no_phone"
    else:
        expires_at = (case.closed_at or utcnow()) + VALID_FOR
        if not await _invite(session, ctx.platform, CASE, case.id, expires_at):
            reason = SKIPPED_ALREADY
    if reason is not None:
        log.info("survey.not_sent", case_id=str(case.id), reason=reason)
        return
    assert requester is not None and requester.phone
    notice = Notification(event=CASE_NOTICE, reference=f"{NOTICE_SUBJECT}:{CASE}:{case.id}", status=PENDING)
    session.add(notice)
    await session.flush()
    await deliver(ctx, notice, requester.phone, _text(ctx.platform, CASE, case.id), after=None)


async def _case_text_again(ctx: JobContext, notice: Notification) -> str:
    """The case survey's text, made again for a failover (from the notice's reference)."""
    _, subject_type, subject_id = notice.reference.split(":")
    return _text(ctx.platform, subject_type, uuid.UUID(subject_id))


texts_of_other_notices(NOTICE_SUBJECT, _case_text_again)


# --- answering ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenSurvey:
    kind: SurveyKind
    questions: tuple[Question, ...]
    expires_at: datetime


async def _invitation(ctx: Ctx, token: str) -> SurveyInvitation:
    found = await ctx.session.scalar(
        select(SurveyInvitation).where(SurveyInvitation.token_hash == token_hash(token.strip()))
    )
    if found is None:
        raise NotFound(NOT_FOUND_MESSAGE, field="token")
    if found.answered:
        raise ValidationError(ANSWERED_MESSAGE, field="token", code=ErrorCode.CONFLICT)
    if found.expires_at <= ctx.now:
        raise LinkExpired(EXPIRED_MESSAGE, field="token")
    return found


@dataclass(frozen=True)
class _Subject:
    kind: SurveyKind
    month: str
    clinic_id: uuid.UUID | None


async def _subject(ctx: Ctx, invitation: SurveyInvitation) -> _Subject:
    """What the answer may say about what it answers: the kind, the month (local), the clinic (visits)."""
    zone = ctx.platform.settings.zone
    if invitation.subject_type == APPOINTMENT:
        appointment = await ctx.session.get(Appointment, invitation.subject_id)
        if appointment is None:
            raise NotFound(NOT_FOUND_MESSAGE, field="token")
        when = appointment.completed_at or appointment.ends_at or ctx.now
        visit = appointment.mode is AppointmentMode.IN_PERSON
        return _Subject(
            SurveyKind.VISIT if visit else SurveyKind.VIDEO,
            when.astimezone(zone).strftime("%Y-%m"),
            appointment.clinic_id if visit else None,
        )
    case = await ctx.session.get(Case, invitation.subject_id)
    if case is None:
        raise NotFound(NOT_FOUND_MESSAGE, field="token")
    when = case.closed_at or ctx.now
    return _Subject(SurveyKind.CONSULTATION, when.astimezone(zone).strftime("%Y-%m"), None)


async def open_survey(ctx: Ctx, token: str) -> OpenSurvey:
    """The questions behind a link still open (no login: the token). Nothing is logged: nothing about
    anyone is shown."""
    invitation = await _invitation(ctx, token)
    subject = await _subject(ctx, invitation)
    return OpenSurvey(subject.kind, QUESTIONS, invitation.expires_at)


def _scores(scores: Mapping[str, int]) -> dict[str, int]:
    missing = sorted(_QUESTION_IDS - set(scores))
    unknown = sorted(set(scores) - _QUESTION_IDS)
    if unknown:
        raise ValidationError(f"Ukjent spørsmål: {unknown[0]}.", field="scores")
    if missing:
        raise ValidationError("Svar på alle spørsmålene.", field="scores", code=ErrorCode.REQUIRED)
    if any(isinstance(v, bool) or not isinstance(v, int) or v not in SCORES for v in scores.values()):
        raise ValidationError("Velg et tall fra 1 til 5.", field="scores")
    return {q.id: int(scores[q.id]) for q in QUESTIONS}


async def answer(ctx: Ctx, token: str, scores: Mapping[str, int]) -> None:
    """Store the answer without identity and close the link. A second answer (also a concurrent one) is
    ``CONFLICT``: the invitation is marked answered by a conditional update only one can win."""
    clean = _scores(scores)
    invitation = await _invitation(ctx, token)
    subject = await _subject(ctx, invitation)
    won = await ctx.session.execute(
        update(SurveyInvitation)
        .where(SurveyInvitation.id == invitation.id, SurveyInvitation.answered.is_(False))
        .values(answered=True)
        .execution_options(synchronize_session=False)
    )
    if getattr(won, "rowcount", 0) != 1:
        raise ValidationError(ANSWERED_MESSAGE, field="token", code=ErrorCode.CONFLICT)
    ctx.session.add(
        SurveyAnswer(
            id=uuid.uuid4(),
            survey=subject.kind.value,
            month=subject.month,
            clinic_id=subject.clinic_id,
            scores=clean,
        )
    )
    try:
        await ctx.session.flush()
    except IntegrityError:  # pragma: no cover - a clinic is never deleted
        raise NotFound(NOT_FOUND_MESSAGE, field="token") from None
    log.info("survey.answered", survey=subject.kind.value)


# --- aggregates for operators ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuestionResult:
    question: Question
    count: int
    mean: float
    distribution: tuple[int, ...]
    """How many answered 1, 2, 3, 4 and 5."""


@dataclass(frozen=True)
class KindResult:
    kind: SurveyKind
    answers: int | None
    """None when suppressed."""
    suppressed: bool
    questions: tuple[QuestionResult, ...]


async def results(ctx: Ctx, first: date, last: date, clinic_id: uuid.UUID | None = None) -> list[KindResult]:
    """Operators: the answers of the months from ``first`` to ``last`` (inclusive), per kind and question;
    a kind with fewer than ``MIN_GROUP`` answers is suppressed."""
    require_operator(ctx.actor)
    if last < first:
        raise ValidationError("Til-datoen må være etter fra-datoen.", field="to")
    query = select(SurveyAnswer.survey, SurveyAnswer.scores).where(
        SurveyAnswer.month >= first.strftime("%Y-%m"), SurveyAnswer.month <= last.strftime("%Y-%m")
    )
    if clinic_id is not None:
        query = query.where(SurveyAnswer.clinic_id == clinic_id)
    grouped: dict[SurveyKind, list[dict[str, Any]]] = {kind: [] for kind in SurveyKind}
    for survey, scores in (await ctx.session.execute(query)).all():
        grouped.setdefault(SurveyKind(survey), []).append(scores)
    found = []
    for kind, answers in grouped.items():
        if len(answers) < MIN_GROUP:
            found.append(KindResult(kind, None, True, ()))
            continue
        found.append(KindResult(kind, len(answers), False, tuple(_question(q, answers) for q in QUESTIONS)))
    return found


def _question(question: Question, answers: list[dict[str, Any]]) -> QuestionResult:
    values = [int(a[question.id]) for a in answers if isinstance(a.get(question.id), int)]
    distribution = tuple(values.count(score) for score in SCORES)
    mean = round(sum(values) / len(values), 2) if values else 0.0
    return QuestionResult(question, len(values), mean, distribution)
