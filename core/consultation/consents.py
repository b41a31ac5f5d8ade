"""Consents: per person (and per case where it matters), per purpose, as an append-only history.

The current consent for a purpose is the newest entry for that person, for the case or in general.
A guardian gives consent for her child: the entry is the child's, ``given_by`` is the guardian.
Consent gates behaviour (submitting needs communication storage; an AI draft needs AI assistance;
storing images needs image storage).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.consultation import case_events
from legetime.core.consultation.access import as_patient, load_case, require_person
from legetime.core.identity.ctx import Ctx
from legetime.core.platform import idempotency
from legetime.core.platform.db.models import Case, Consent, ConsentAction, ConsentPurpose
from legetime.core.platform.errors import ErrorCode, LegetimeError, ValidationError
from legetime.core.platform.events import EventType
from legetime.core.protection import audit


@dataclass(frozen=True)
class ConsentText:
    purpose: ConsentPurpose
    version: str
    text: str


CONSENT_TEXTS: dict[ConsentPurpose, ConsentText] = {
    text.purpose: text
    for text in (
        ConsentText(
            ConsentPurpose.COMMUNICATION_STORAGE,
            "2026-01",
            "Jeg samtykker til at den digitale kommunikasjonen i konsultasjonen (svar på helsespørsmål, "
            "meldinger og bilder) lagres i tre måneder og deretter slettes automatisk.",
        ),
        ConsentText(
            ConsentPurpose.AI_JOURNAL,
            "2026-01",
            "Jeg samtykker til at legen bruker et KI-verktøy som lager et utkast til journalnotat fra "
            "konsultasjonen. Legen går alltid gjennom utkastet før det godkjennes.",
        ),
        ConsentText(
            ConsentPurpose.IMAGE_STORAGE,
            "2026-01",
            "Jeg samtykker til at bilder jeg sender lagres med konsultasjonen og kan ses av meg og legen.",
        ),
        ConsentText(
            ConsentPurpose.KJERNEJOURNAL_LOOKUP,
            "2026-01",
            "Jeg samtykker til at legen ved behov kan slå opp i Kjernejournal.",
        ),
        ConsentText(
            ConsentPurpose.INSURER_DISCLOSURE,
            "2026-01",
            "Jeg samtykker til at helseopplysninger utleveres til mitt forsikringsselskap.",
        ),
        ConsentText(
            ConsentPurpose.PATIENT_SURVEY,
            "2026-12",
            "Jeg samtykker til å få en SMS med en kort spørreundersøkelse om hvordan jeg opplevde "
            "konsultasjonen eller timen. Svarene lagres uten navn og brukes bare i anonym statistikk.",
        ),
    )
}


class ConsentRequired(LegetimeError):
    code = ErrorCode.CONSENT_REQUIRED


async def current(
    session: AsyncSession, person_id: uuid.UUID, purpose: ConsentPurpose, case_id: uuid.UUID | None
) -> bool:
    """Whether the person consents to the purpose now: the newest entry for this case or in general
    wins (a general withdrawal after a case grant withdraws)."""
    newest = await session.scalar(
        select(Consent)
        .where(Consent.person_id == person_id, Consent.purpose == purpose)
        .where((Consent.case_id == case_id) | Consent.case_id.is_(None))
        .order_by(Consent.created_at.desc())
        .limit(1)
    )
    return newest is not None and newest.action is ConsentAction.GRANTED


async def require(
    ctx: Ctx, person_id: uuid.UUID, purpose: ConsentPurpose, case_id: uuid.UUID | None, message: str
) -> None:
    if not await current(ctx.session, person_id, purpose, case_id):
        raise ConsentRequired(message, field="consent")


async def record(
    ctx: Ctx,
    *,
    purpose: ConsentPurpose,
    granted: bool,
    text_version: str,
    case_id: uuid.UUID | None,
    idempotency_key: str | None = None,
) -> Consent:
    """Grant or withdraw. With a case, the consent is the case's patient's (a guardian gives it for the
    child); without, the actor's own. A retry with the same ``idempotency_key`` (the giver's own, for
    every case: the key names one request) returns the entry the first call recorded and records nothing;
    the same key with another purpose, text version or case is a conflict."""
    actor_id = require_person(ctx.actor)
    key = idempotency.check_key(idempotency_key)
    expected = CONSENT_TEXTS[purpose].version
    if granted and text_version != expected:
        raise ValidationError(
            f"Samtykketeksten er endret. Les den nye teksten (versjon {expected}) og samtykk på nytt.",
            field="textVersion",
        )
    person_id = actor_id
    case: Case | None = None
    if case_id is not None:
        case = await load_case(ctx, case_id, as_patient(ctx.actor, ctx.today))
        person_id = case.subject_id
    action = ConsentAction.GRANTED if granted else ConsentAction.WITHDRAWN
    text_version = text_version or expected
    operation = "grant_consent" if granted else "withdraw_consent"

    async def find() -> Consent | None:
        existing = await ctx.session.scalar(
            select(Consent).where(Consent.given_by_id == actor_id, Consent.idempotency_key == key)
        )
        if existing is None:
            return None
        asked = (purpose, action, text_version, case_id)
        if (existing.purpose, existing.action, existing.text_version, existing.case_id) != asked:
            raise idempotency.conflict(operation, "et annet samtykke")
        return existing

    async def create() -> Consent:
        consent = Consent(
            person_id=person_id,
            case_id=case_id,
            purpose=purpose,
            action=action,
            text_version=text_version,
            given_by_id=actor_id,
            idempotency_key=key,
            created_at=ctx.now,
        )
        ctx.session.add(consent)
        await ctx.session.flush()
        type = EventType.CONSENT_GRANTED if granted else EventType.CONSENT_WITHDRAWN
        await case_events.emit(ctx, type, case, consent_id=str(consent.id), purpose=purpose.value)
        await audit.log(
            ctx,
            person_id=person_id,
            object_type="consent",
            object_id=str(consent.id),
            action="grant" if granted else "withdraw",
            reason=purpose.value,
        )
        return consent

    return await idempotency.once(ctx.session, operation, key, find, create)
