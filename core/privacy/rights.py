"""The patient's rights over her data (the privacy policy, docs/privacy.md): access and portability
(export), rectification, restriction of processing, erasure, withdrawal of consent — and what a guardian
may see.

Erasure, withdrawn storage consent and retention share one machinery (``protection.retention``). What the
law requires us to keep is kept, and the patient is told what and why (``KEPT``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import and_, false, or_, select
from sqlalchemy.sql import ColumnElement

from legetime.core.appointments import export as appointment_export
from legetime.core.appointments import retention as appointment_retention
from legetime.core.consultation import consents
from legetime.core.consultation.access import as_clinician, load_case, require_person
from legetime.core.consultation.attachments import image_url
from legetime.core.consultation.case_states import CaseEvent, next_status
from legetime.core.identity import auth, persons
from legetime.core.identity.ctx import Ctx
from legetime.core.identity.nationalid import age_on
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import (
    Attachment,
    AuditEvent,
    Case,
    CaseErasure,
    CaseStatus,
    Consent,
    ConsentPurpose,
    JournalNote,
    JournalNoteStatus,
    Message,
    PaymentReservation,
    Person,
    RequesterRole,
    RetentionRun,
)
from legetime.core.platform.errors import NotFound, ValidationError
from legetime.core.protection import audit, content
from legetime.core.protection.retention import (
    CONSENT_WITHDRAWN,
    ENDED,
    ERASURE_REQUEST,
    IMAGE_CONSENT_WITHDRAWN,
    Deleted,
    erase_by_rule,
)

MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class Kept:
    what: str
    why: str


# What an erasure does not delete, and the legal duty that keeps it (shown to the patient, in bokmål).
KEPT: tuple[Kept, ...] = (
    Kept(
        "Journalnotater",
        "Helsepersonell har plikt til å føre journal, og journalen skal oppbevares "
        "(helsepersonelloven § 39, pasientjournalloven).",
    ),
    Kept(
        "Betalingsopplysninger",
        "Regnskapsopplysninger skal oppbevares i fem år (bokføringsloven § 13).",
    ),
    Kept(
        "Tilgangsloggen",
        "Hvem som har lest eller endret helseopplysningene dine skal kunne dokumenteres "
        "(pasientjournalloven § 22, Normen).",
    ),
    Kept("Samtykkehistorikken", "Vi må kunne dokumentere hva du har samtykket til, og når."),
    Kept("Navn og fødselsnummer", "De knytter journalnotatene til deg, og journalen skal oppbevares."),
)
# When only the consent to storing images is withdrawn, the rest of the communication stays as agreed.
KEPT_WITHOUT_IMAGES: tuple[Kept, ...] = (
    Kept(
        "Svar og meldinger",
        "Du samtykker fortsatt til at de lagres. De slettes tre måneder etter at saken er avsluttet.",
    ),
    *KEPT,
)


@dataclass
class ErasureAccount:
    """What an erasure (or a withdrawn storage consent) deleted, what it kept and why."""

    rule: str
    cases: list[str] = field(default_factory=list)
    """Numbers of the cases whose communication was deleted now."""
    answers: int = 0
    messages: int = 0
    images: int = 0
    pending: list[str] = field(default_factory=list)
    """Numbers of cases still in progress: their communication is deleted as soon as they end."""
    kept: tuple[Kept, ...] = KEPT
    appointments: list[str] = field(default_factory=list)
    """Numbers of the appointments whose content (message, forms) was deleted now (an erasure request)."""
    pending_appointments: list[str] = field(default_factory=list)
    """Numbers of appointments still open: their content is deleted as soon as they end."""


# --- guardians -------------------------------------------------------------------------------------
#
# A guardian reaches her child only through the cases she opened: her guardianship may rest on nothing but
# her own declaration, and the child's person is shared by every case about the child, whoever opened it.
# So she sees what concerns her cases, and of the child's person only what follows from her own input.

WITHHELD_ACTIONS = ("withhold_from_guardian", "show_to_guardian")
"""Access-log actions about what the clinician keeps from the guardian: never in the guardian's view."""


@dataclass(frozen=True)
class PatientView:
    """What a reader is shown of a case's patient."""

    given_name: str
    family_name: str
    birth_date: date


def reads_as_guardian(case: Case, reader_id: uuid.UUID | None) -> bool:
    """Whether the reader reads the case as the guardian who opened it (not as its patient or clinician)."""
    return (
        case.requester_role is RequesterRole.GUARDIAN
        and reader_id is not None
        and reader_id == case.requester_id
        and reader_id != case.subject_id
    )


def patient_seen_by(case: Case, patient: Person, reader_id: uuid.UUID | None) -> PatientView:
    """The case's patient as the reader may see her. A case a guardian opened names the child as she gave
    it for that case (``Case.patient_given_name``), to her and to the clinician; the birth date follows
    from the national ID she typed. The name on the child's person was typed by whoever registered the
    child first (or comes from the child's own login): showing it would tell a guardian that someone else
    exists, and let whoever came first decide the name a clinician sees. The child herself sees her person.
    A guardian's case from before names were kept per case shows her no name."""
    if case.requester_role is RequesterRole.GUARDIAN and reader_id != case.subject_id:
        if case.patient_given_name is not None:
            return PatientView(case.patient_given_name, "", patient.birth_date)
        if reads_as_guardian(case, reader_id):
            return PatientView(given_name="", family_name="", birth_date=patient.birth_date)
    return PatientView(patient.given_name, patient.family_name, patient.birth_date)


async def set_withheld_from_guardian(
    ctx: Ctx, *, message_id: uuid.UUID | None, note_id: uuid.UUID | None, withheld: bool
) -> Case:
    """The assigned clinician keeps a message or journal note from the guardian of a patient in the ages her
    country's rules give (``countries``; Norway 12–15, pasient- og brukerrettighetsloven § 3-4: from 12 the
    child's own view counts; Sweden 12–17, by the child's maturity and the harm disclosure would do)."""
    if (message_id is None) == (note_id is None):
        raise ValidationError("Oppgi enten en melding eller et journalnotat.", field="messageId")
    require_person(ctx.actor)  # before any look-up: an anonymous caller learns nothing either way
    model: Any = Message if message_id is not None else JournalNote
    target: Any = await ctx.session.get(model, message_id or note_id)
    field_name = "messageId" if message_id is not None else "noteId"
    if target is None:
        raise NotFound("Fant ikke meldingen eller notatet.", field=field_name)
    try:
        case = await load_case(ctx, target.case_id, as_clinician(ctx.actor, write=True), for_update=True)
    except NotFound:
        raise NotFound("Fant ikke meldingen eller notatet.", field=field_name) from None
    subject = await ctx.session.get(Person, case.subject_id)
    assert subject is not None
    age = age_on(subject.birth_date, ctx.today)
    rules = persons.country(subject)  # the patient's country: the case's rules
    ages = rules.withhold_from_guardian.value
    if case.requester_role is not RequesterRole.GUARDIAN or age not in ages:
        raise ValidationError(rules.withhold_range_message(), field=field_name)
    target.withheld_from_guardian = withheld
    await audit.log(
        ctx,
        person_id=case.subject_id,
        object_type="message" if message_id is not None else "journal_note",
        object_id=str(target.id),
        action="withhold_from_guardian" if withheld else "show_to_guardian",
        reason="treatment",
    )
    return case


# --- rectification and restriction -----------------------------------------------------------------


async def rectify_name(ctx: Ctx, given_name: str, family_name: str) -> Person:
    person = await _me(ctx)
    given_name, family_name = given_name.strip(), family_name.strip()
    if not given_name or len(given_name) > MAX_NAME_LENGTH:
        raise ValidationError("Oppgi fornavn (høyst 200 tegn).", field="givenName")
    if not family_name or len(family_name) > MAX_NAME_LENGTH:
        raise ValidationError("Oppgi etternavn (høyst 200 tegn).", field="familyName")
    person.given_name, person.family_name, person.name_rectified_at = given_name, family_name, ctx.now
    await audit.log(
        ctx, person_id=person.id, object_type="person", object_id=str(person.id), action="rectify"
    )
    return person


async def restrict_processing(ctx: Ctx, restricted: bool) -> Person:
    """Restriction (GDPR art. 18): while set, only storage and legal duties — no new cases, no AI drafts.
    Cases already submitted are still answered: the duty of responsible care outlives the restriction."""
    person = await _me(ctx)
    person.restricted_at = ctx.now if restricted else None
    await audit.log(
        ctx,
        person_id=person.id,
        object_type="person",
        object_id=str(person.id),
        action="restrict" if restricted else "lift_restriction",
    )
    return person


async def _me(ctx: Ctx) -> Person:
    person = await ctx.session.get(Person, require_person(ctx.actor), with_for_update=True)
    assert person is not None
    return person


# --- erasure ---------------------------------------------------------------------------------------


async def erase(ctx: Ctx, *, rule: str, case_id: uuid.UUID | None = None) -> ErasureAccount:
    """Delete the communication of her cases (and of the cases she opened for her children): at once for
    ended cases and drafts (which are cancelled), as soon as they end for cases in progress."""
    account = ErasureAccount(rule=rule)
    now_ids = []
    for case in await _her_cases(ctx, case_id):
        if case.status is CaseStatus.DRAFT:
            case.status = next_status(case.status, CaseEvent.CANCEL)
            case.cancelled_at = ctx.now
        if case.status in ENDED:
            case.retention_until = ctx.now
            now_ids.append(case.id)
            account.cases.append(case.number)
            account.answers += int(case.answers_sealed is not None)
        else:
            account.pending.append(case.number)
    deleted = await _erase_recorded(ctx, rule, now_ids)
    account.messages, account.images = deleted.messages, deleted.images
    return account


async def withdraw_consent(
    ctx: Ctx, purpose: ConsentPurpose, case_id: uuid.UUID | None
) -> tuple[Consent, ErasureAccount | None]:
    """Withdraw a consent. Withdrawing storage of the communication deletes it (``erase``), of images
    deletes those (``erase_my_images``); withdrawing AI assistance stops pending drafts (the draft job
    checks the consent when it runs)."""
    consent = await consents.record(ctx, purpose=purpose, granted=False, text_version="", case_id=case_id)
    if purpose is ConsentPurpose.COMMUNICATION_STORAGE:
        return consent, await erase(ctx, rule=CONSENT_WITHDRAWN, case_id=case_id)
    if purpose is ConsentPurpose.IMAGE_STORAGE:
        return consent, await erase_my_images(ctx, case_id=case_id)
    return consent, None


async def erase_my_images(ctx: Ctx, *, case_id: uuid.UUID | None) -> ErasureAccount:
    """Delete her images (and those of the cases she opened for her children): at once for drafts and
    ended cases, as soon as they end for cases in progress (the clinician may be looking at them)."""
    cases = await _her_cases(ctx, case_id)
    with_images = set(
        (
            await ctx.session.scalars(
                select(Attachment.case_id).where(Attachment.case_id.in_([c.id for c in cases])).distinct()
            )
        ).all()
    )
    account = ErasureAccount(rule=IMAGE_CONSENT_WITHDRAWN, kept=KEPT_WITHOUT_IMAGES)
    now_ids = []
    for case in (c for c in cases if c.id in with_images):
        if case.status is CaseStatus.DRAFT or case.status in ENDED:
            now_ids.append(case.id)
            account.cases.append(case.number)
        else:
            account.pending.append(case.number)
    account.images = (await _erase_recorded(ctx, IMAGE_CONSENT_WITHDRAWN, now_ids)).images
    return account


async def _her_cases(ctx: Ctx, case_id: uuid.UUID | None) -> list[Case]:
    """Her cases and those she opened for her children (or the one named) whose communication is not yet
    purged, locked for the erasure."""
    query = select(Case).where(_mine(require_person(ctx.actor)), Case.purged_at.is_(None))
    if case_id is not None:
        query = query.where(Case.id == case_id)
    cases = list((await ctx.session.scalars(query.order_by(Case.created_at).with_for_update())).all())
    if case_id is not None and not cases:
        raise NotFound("Fant ikke saken.", field="caseId")
    return cases


async def _erase_recorded(ctx: Ctx, rule: str, case_ids: list[uuid.UUID]) -> Deleted:
    """Erase these cases' communication (or only their images, by that rule) now, as a retention run
    started by the patient; their storage objects are deleted by a job once this commits."""
    run = RetentionRun(rule=rule, trigger="patient", actor_id=require_person(ctx.actor), started_at=ctx.now)
    ctx.session.add(run)
    await ctx.session.flush()
    deleted = await erase_by_rule(
        ctx.session, ctx.platform, case_ids, rule=rule, actor=ctx.actor, now=ctx.now, run_id=run.id
    )
    run.cases, run.messages, run.images, run.finished_at = (
        len(case_ids),
        deleted.messages,
        deleted.images,
        utcnow(),
    )
    return deleted


async def request_erasure(ctx: Ctx) -> ErasureAccount:
    """Erase what no legal duty keeps: the communication of every case, the content of her appointments
    (message, forms), her phone number; storage consent is withdrawn so cases in progress are erased when
    they end, and open appointments are marked to be erased when they end; her sessions end."""
    me = await _me(ctx)
    me.phone = None
    # Every session of hers ends with it (all devices, not only this request's): a token that outlives
    # the erasure would go on reading what is kept. She may log in again to exercise her remaining rights.
    await auth.end_sessions(ctx.session, me.id, at=ctx.now)
    for purpose in (ConsentPurpose.COMMUNICATION_STORAGE, ConsentPurpose.IMAGE_STORAGE):
        await consents.record(ctx, purpose=purpose, granted=False, text_version="", case_id=None)
    account = await erase(ctx, rule=ERASURE_REQUEST)
    appointments = await appointment_retention.erase_for_patient(ctx)  # like cases: ended now, open later
    account.appointments, account.pending_appointments = appointments.erased, appointments.pending
    return account


# --- access and portability ------------------------------------------------------------------------


async def export_my_data(ctx: Ctx) -> dict[str, Any]:
    """Everything held about her: her person, her cases and those she opened for her children (with the
    content a guardian may see), consent history, what was erased, and the access log about her and
    about those cases."""
    me = require_person(ctx.actor)
    ring = ctx.platform.keyring
    person = await ctx.session.get(Person, me)
    assert person is not None
    cases = list((await ctx.session.scalars(select(Case).where(_mine(me)).order_by(Case.created_at))).all())
    ids = [case.id for case in cases]
    by_case: dict[str, dict[uuid.UUID, list[Any]]] = {}
    per_case: tuple[tuple[str, Any], ...] = (
        ("messages", Message),
        ("attachments", Attachment),
        ("notes", JournalNote),
        ("payments", PaymentReservation),
        ("erasures", CaseErasure),
    )
    for name, model in per_case:
        rows = (await ctx.session.scalars(select(model).where(model.case_id.in_(ids)))).all()
        grouped: dict[uuid.UUID, list[Any]] = {}
        for row in rows:
            grouped.setdefault(row.case_id, []).append(row)
        by_case[name] = grouped
    subjects = {
        p.id: p
        for p in (
            await ctx.session.scalars(select(Person).where(Person.id.in_({c.subject_id for c in cases})))
        ).all()
    }

    urls = {a.id: await image_url(ctx, a) for rows in by_case["attachments"].values() for a in rows}

    def case_export(case: Case) -> dict[str, Any]:
        as_guardian = reads_as_guardian(case, me)
        patient = patient_seen_by(case, subjects[case.subject_id], me)
        messages = [
            m for m in by_case["messages"].get(case.id, []) if not (as_guardian and m.withheld_from_guardian)
        ]
        notes = [
            n
            for n in by_case["notes"].get(case.id, [])
            if n.status is JournalNoteStatus.APPROVED and not (as_guardian and n.withheld_from_guardian)
        ]
        return {
            "number": case.number,
            "status": case.status.value,
            "outcome": case.outcome.value if case.outcome else None,
            "patient": {
                "givenName": patient.given_name,
                "familyName": patient.family_name,
                "birthDate": patient.birth_date.isoformat(),
            },
            "openedBy": "guardian" if case.requester_role is RequesterRole.GUARDIAN else "self",
            "createdAt": _iso(case.created_at),
            "submittedAt": _iso(case.submitted_at),
            "answeredAt": _iso(case.answered_at),
            "closedAt": _iso(case.closed_at),
            "cancelledAt": _iso(case.cancelled_at),
            "communicationDeletedAt": _iso(case.purged_at),
            "answers": content.answers(ring, case),
            "messages": [
                {
                    "kind": m.kind.value,
                    "authorRole": m.author_role.value,
                    "body": content.message_body(ring, case, m),
                    "createdAt": _iso(m.created_at),
                }
                for m in sorted(messages, key=lambda m: m.created_at)
            ],
            "images": [
                {
                    "contentType": a.content_type,
                    "width": a.width,
                    "height": a.height,
                    "sha256": a.sha256,
                    "url": urls[a.id],  # signed, short-lived: download the image itself
                }
                for a in by_case["attachments"].get(case.id, [])
            ],
            "journalNotes": [
                {"text": content.note_content(ring, case, n)[0], "approvedAt": _iso(n.approved_at)}
                for n in notes
            ],
            "payments": [
                {
                    "provider": p.provider,
                    "currency": p.currency,
                    "amount": p.amount,
                    "authorized": p.authorized_amount,
                    "captured": p.captured_amount,
                    "released": p.released_amount,
                    "refunded": p.refunded_amount,
                    "status": p.status,
                }
                for p in by_case["payments"].get(case.id, [])
            ],
            "erasures": [
                {"rule": e.rule, "deleted": e.deleted, "erasedAt": _iso(e.erased_at)}
                for e in by_case["erasures"].get(case.id, [])
            ],
        }

    consent_rows = (
        await ctx.session.scalars(
            select(Consent)
            .where(or_(Consent.person_id == me, Consent.given_by_id == me))
            .order_by(Consent.created_at)
        )
    ).all()
    # Her own access log, and for the cases she opened for a child still under her country's guardian age
    # (Norway 16, Sweden 18) the entries about those cases (she exercises the child's rights there) — not
    # the child's other cases nor the child's own doings. Her child is always of her own country.
    rules = persons.country(person)
    guarded = [
        c
        for c in cases
        if reads_as_guardian(c, me)
        and rules.guardian_may_act_for(age_on(subjects[c.subject_id].birth_date, ctx.today))
    ]
    case_of = await _objects_of(ctx, me, cases, by_case)
    appointments = await appointment_export.of_patient(ctx)
    log_rows = (
        await ctx.session.scalars(
            select(AuditEvent)
            .where(
                or_(AuditEvent.person_id == me, _about_cases(guarded, case_of), appointments.about_children)
            )
            .order_by(AuditEvent.id)
        )
    ).all()
    export = {
        "format": "legetime.export.v1",
        "exportedAt": _iso(ctx.now),
        "person": {
            "nationalId": persons.national_id(ring, person),
            "givenName": person.given_name,
            "familyName": person.family_name,
            "birthDate": person.birth_date.isoformat(),
            "phone": person.phone,
            "restrictedSince": _iso(person.restricted_at),
            "createdAt": _iso(person.created_at),
        },
        "cases": [case_export(case) for case in cases],
        "appointments": appointments.rows,
        "consents": [
            {
                "purpose": c.purpose.value,
                "action": c.action.value,
                "textVersion": c.text_version,
                "forCase": next((case.number for case in cases if case.id == c.case_id), None),
                "givenByMe": c.given_by_id == me,
                "at": _iso(c.created_at),
            }
            for c in consent_rows
        ],
        "accessLog": [
            {
                "at": _iso(e.occurred_at),
                "about": "me" if e.person_id == me else "child",
                "case": case_of.get((e.object_type, e.object_id)),
                "appointment": appointments.numbers.get((e.object_type, e.object_id)),
                "actorRole": e.actor_role,
                "object": e.object_type,
                "action": e.action,
                "reason": e.reason,
            }
            for e in log_rows
        ],
    }
    await audit.log(ctx, person_id=me, object_type="person", object_id=str(me), action="export")
    return export


async def _objects_of(
    ctx: Ctx, me: uuid.UUID, cases: list[Case], by_case: dict[str, dict[uuid.UUID, list[Any]]]
) -> dict[tuple[str, str], str]:
    """The access-log objects (type, id) of these cases and what belongs to them, with the case's number.
    Messages and notes kept from the guardian are left out: she is not to learn they exist."""
    numbers = {case.id: case.number for case in cases}
    hidden = {case.id for case in cases if reads_as_guardian(case, me)}
    out = {("case", str(case.id)): case.number for case in cases}
    for attachment in (a for rows in by_case["attachments"].values() for a in rows):
        out[("attachment", str(attachment.id))] = numbers[attachment.case_id]
    for kind, name in (("journal_note", "notes"), ("message", "messages")):
        for row in (r for rows in by_case[name].values() for r in rows):
            if not (row.case_id in hidden and row.withheld_from_guardian):
                out[(kind, str(row.id))] = numbers[row.case_id]
    consents = await ctx.session.execute(
        select(Consent.id, Consent.case_id).where(Consent.case_id.in_(list(numbers)))
    )
    out |= {("consent", str(consent_id)): numbers[case_id] for consent_id, case_id in consents if case_id}
    return out


def _about_cases(cases: Iterable[Case], case_of: dict[tuple[str, str], str]) -> ColumnElement[bool]:
    """Access-log entries about these cases (the case, its images, notes, messages and consents)."""
    numbers = {case.number for case in cases}
    children = {case.subject_id for case in cases}
    ids: dict[str, list[str]] = {}
    for (kind, object_id), number in case_of.items():
        if number in numbers:
            ids.setdefault(kind, []).append(object_id)
    if not ids:
        return false()
    return and_(
        AuditEvent.person_id.in_(children),
        AuditEvent.action.not_in(WITHHELD_ACTIONS),
        or_(*(and_(AuditEvent.object_type == kind, AuditEvent.object_id.in_(v)) for kind, v in ids.items())),
    )


def _mine(person_id: uuid.UUID) -> ColumnElement[bool]:
    """Her own cases and those she opened as a guardian."""
    as_guardian = (Case.requester_id == person_id) & (Case.requester_role == RequesterRole.GUARDIAN)
    return or_(Case.subject_id == person_id, as_guardian)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
