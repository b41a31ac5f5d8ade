"""The forms a patient fills in before a visit: the health declaration (egenerklæring om helse før
operasjon) and the consent to disclose health data to her insurer.

Both are questionnaires of the consultation's engine (``core.consultation.questionnaire``): versioned JSON
in ``core/consultation/questionnaires/`` (``health_declaration``, ``insurer_consent``), checked completely
when loaded, answers checked in one pass with one error per question. The frontend renders them from the
``questionnaire(key:)`` query like the consultation's.

**Who may submit.** A person logged in with BankID (the session's identity provider is one of the BankID
providers, the simulated ``bankid-test`` included; ``BANKID_PROVIDERS``) who is the appointment's patient
or her guardian (``access.as_patient``). Not an integrator's token (no session), not a login by any other
method, not staff acting for her. From the reminder's link the token must also be a valid forms link of
that very appointment; from the app the appointment's id is enough.

**What is kept.** One form per kind and appointment, sealed with the appointment's data key
(``content.seal_form``) and deleted with it. Until the visit begins she may send it again (it replaces
the earlier one); after that it is part of the visit and refused. The insurer consent also records a
``Consent`` (``INSURER_DISCLOSURE``) for the patient (given by whoever submitted it: she, or her guardian),
for the consultation that referred her when there is one, otherwise in general (the form names the
insurer it was given to). A form of an appointment referred from a case is logged on that case too: it
belongs with the case's record.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.appointments import access, booking, links, states
from legetime.core.consultation import case_events
from legetime.core.consultation.consents import CONSENT_TEXTS
from legetime.core.consultation.questionnaire import (
    AnswerError,
    AnswersInvalid,
    Questionnaire,
    load_questionnaire,
    validate_answers,
)
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.appointment_models import (
    Appointment,
    AppointmentForm,
    AppointmentType,
    FormKind,
)
from legetime.core.platform.db.models import AuthSession, Consent, ConsentAction, ConsentPurpose
from legetime.core.platform.errors import ErrorCode, Forbidden, NotFound, ValidationError
from legetime.core.platform.events import EventType
from legetime.core.protection import audit, content

log = structlog.get_logger(__name__)

BANKID_PROVIDERS = frozenset({"bankid-oidc", "bankid-se", "bankid-test"})
"""Identity providers whose login is a BankID login (Norwegian, Swedish, and the simulated one)."""
CONSENT_QUESTION = "consent"
"""The insurer consent's yes/no question: it must be yes for the form to count."""

BANKID_MESSAGE = "Logg inn med BankID for å sende skjemaet."


def questionnaire(kind: FormKind) -> Questionnaire:
    """The newest definition of a form (a form is one questionnaire key)."""
    return load_questionnaire(kind.value)


def parse_kind(value: str) -> FormKind:
    try:
        return FormKind(value.lower())
    except ValueError:
        raise ValidationError("Ukjent skjema.", field="kind") from None


async def require_bankid(ctx: Ctx) -> uuid.UUID:
    """The actor's person if her session came from a BankID login: ``UNAUTHENTICATED`` otherwise (no
    login, an integrator's token, another login method)."""
    actor = ctx.actor
    if actor.person_id is None or actor.session_id is None or actor.integrator is not None:
        raise Forbidden(BANKID_MESSAGE, code=ErrorCode.UNAUTHENTICATED)
    provider = await ctx.session.scalar(
        select(AuthSession.provider).where(
            AuthSession.id == actor.session_id, AuthSession.person_id == actor.person_id
        )
    )
    if provider not in BANKID_PROVIDERS:
        raise Forbidden(BANKID_MESSAGE, code=ErrorCode.UNAUTHENTICATED)
    return actor.person_id


async def submit_form(ctx: Ctx, token: str, kind: str, answers: Any) -> Appointment:
    """A form sent from the reminder's link (after BankID)."""
    await require_bankid(ctx)
    appointment = await links.read_token(ctx, token, links.LinkPurpose.FORMS, for_update=True)
    if not await access.is_patient_side(ctx, appointment):
        raise NotFound(access.NOT_FOUND_MESSAGE, field="token")
    return await _submit(ctx, appointment, parse_kind(kind), answers)


async def submit_form_in_app(ctx: Ctx, appointment_id: uuid.UUID, kind: str, answers: Any) -> Appointment:
    """A form sent from the app (after BankID), without the link."""
    await require_bankid(ctx)
    appointment = await access.load(
        ctx, appointment_id, access.as_patient(ctx.actor, ctx.today), for_update=True
    )
    return await _submit(ctx, appointment, parse_kind(kind), answers)


async def _submit(ctx: Ctx, appointment: Appointment, kind: FormKind, answers: Any) -> Appointment:
    person_id = ctx.actor.person_id
    assert person_id is not None
    type_ = await ctx.session.get(AppointmentType, appointment.type_id)
    if type_ is None or kind.value not in type_.forms:
        raise ValidationError("Dette skjemaet hører ikke til timen.", field="kind")
    started = appointment.starts_at is not None and appointment.starts_at <= ctx.now
    if appointment.status not in states.OPEN or started or content.appointment_deleted(appointment):
        raise Forbidden("Skjemaet kan ikke sendes eller endres etter timen.", field="kind")
    if not isinstance(answers, Mapping):
        raise ValidationError("Svarene må være et objekt med spørsmålets id som nøkkel.", field="answers")
    clean = validate_answers(
        questionnaire(kind),
        answers,
        for_child=appointment.patient_id != person_id,
        partial=False,
        today=ctx.today,
    )
    if kind is FormKind.INSURER_CONSENT and clean.get(CONSENT_QUESTION) is not True:
        raise AnswersInvalid(
            [AnswerError(CONSENT_QUESTION, ErrorCode.REQUIRED, "Du må samtykke for å sende skjemaet.")]
        )
    form = await ctx.session.scalar(
        select(AppointmentForm).where(
            AppointmentForm.appointment_id == appointment.id, AppointmentForm.kind == kind
        )
    )
    replaced = form is not None
    if form is None:
        form = AppointmentForm(appointment_id=appointment.id, kind=kind)
        ctx.session.add(form)
    form.submitted_by_id, form.submitted_at = person_id, ctx.now
    content.seal_form(ctx.platform.keyring, appointment, form, dict(clean))
    await ctx.session.flush()
    if kind is FormKind.INSURER_CONSENT:
        await _record_consent(ctx, appointment, person_id)
    await booking.log_appointment(ctx, appointment, "submit_form", kind.value)
    if appointment.case_id is not None:
        await audit.log(
            ctx,
            person_id=appointment.patient_id,
            object_type="case",
            object_id=str(appointment.case_id),
            action="appointment_form",
            reason=kind.value,
        )
    log.info(
        "appointment.form_submitted", appointment_id=str(appointment.id), kind=kind.value, replaced=replaced
    )
    return appointment


async def _record_consent(ctx: Ctx, appointment: Appointment, given_by: uuid.UUID) -> None:
    """The patient's consent to disclosure to her insurer, as the consent history keeps every consent."""
    purpose = ConsentPurpose.INSURER_DISCLOSURE
    consent = Consent(
        person_id=appointment.patient_id,
        case_id=appointment.case_id,
        purpose=purpose,
        action=ConsentAction.GRANTED,
        text_version=CONSENT_TEXTS[purpose].version,
        given_by_id=given_by,
        created_at=ctx.now,
    )
    ctx.session.add(consent)
    await ctx.session.flush()
    await case_events.emit(
        ctx, EventType.CONSENT_GRANTED, appointment.case_id, consent_id=str(consent.id), purpose=purpose.value
    )
    await audit.log(
        ctx,
        person_id=appointment.patient_id,
        object_type="consent",
        object_id=str(consent.id),
        action="grant",
        reason=purpose.value,
    )


async def missing(
    session: AsyncSession, appointment: Appointment, *, at: datetime | None = None
) -> list[FormKind]:
    """The type's forms she has not sent (by ``at``, when given), in the type's order."""
    type_ = await session.get(AppointmentType, appointment.type_id)
    wanted = [FormKind(form) for form in (type_.forms if type_ is not None else [])]
    if not wanted:
        return []
    query = select(AppointmentForm.kind).where(AppointmentForm.appointment_id == appointment.id)
    if at is not None:
        query = query.where(AppointmentForm.submitted_at <= at)
    sent = set((await session.scalars(query)).all())
    return [form for form in wanted if form not in sent]
