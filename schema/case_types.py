"""The consultation as clients see it: cases, messages, images, payment, journal notes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Iterable, Sequence
from datetime import date, datetime
from typing import cast

import strawberry
from sqlalchemy import select
from strawberry import relay
from strawberry.scalars import JSON

from legetime.core.consultation import cases as core_cases
from legetime.core.consultation import journal as core_journal
from legetime.core.consultation.access import require_person
from legetime.core.consultation.attachments import image_url
from legetime.core.consultation.case_states import allowed_events
from legetime.core.consultation.sla import is_overdue
from legetime.core.consultation.sms_texts import SLA_WARNING
from legetime.core.identity.nationalid import age_on
from legetime.core.platform.db import models
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.errors import Forbidden, NotFound
from legetime.core.privacy.rights import patient_seen_by, reads_as_guardian
from legetime.core.protection import content
from legetime.schema import loaders
from legetime.schema.context import Info
from legetime.schema.errors import Error
from legetime.schema.execution import NOT_LOADED, PRELOADED
from legetime.schema.platform_types import Money

CaseStatus = strawberry.enum(models.CaseStatus, name="CaseStatus")
CaseOutcome = strawberry.enum(models.CaseOutcome, name="CaseOutcome")
MessageKind = strawberry.enum(models.MessageKind, name="MessageKind")
ParticipantRole = strawberry.enum(models.ParticipantRole, name="ParticipantRole")
JournalNoteStatus = strawberry.enum(models.JournalNoteStatus, name="JournalNoteStatus")
JournalDraftStatus = strawberry.enum(core_journal.DraftStatus, name="JournalDraftStatus")


@strawberry.type(description="A person on a case, as much as the reader needs.")
class CasePerson:
    given_name: str
    family_name: str
    birth_date: date
    age: int


def case_person(
    case: models.Case, person: models.Person, reader_id: uuid.UUID | None, today: date
) -> CasePerson:
    seen = patient_seen_by(case, person, reader_id)  # a guardian: only what her own input gave
    return CasePerson(
        given_name=seen.given_name,
        family_name=seen.family_name,
        birth_date=seen.birth_date,
        age=age_on(seen.birth_date, today),
    )


@strawberry.type
class Message:
    id: strawberry.ID
    kind: MessageKind  # type: ignore[valid-type]
    author_role: ParticipantRole  # type: ignore[valid-type]
    created_at: datetime
    withheld_from_guardian: bool = strawberry.field(
        description="Hidden from the guardian (a patient aged 12–16 may keep things from her parents)."
    )
    _model: strawberry.Private[models.Message]
    _case: strawberry.Private[models.Case]

    @strawberry.field
    def body(self, info: Info) -> str:
        return content.message_body(info.context.platform.keyring, self._case, self._model)

    @classmethod
    def of(cls, message: models.Message, case: models.Case) -> Message:
        return cls(
            id=strawberry.ID(str(message.id)),
            kind=message.kind,
            author_role=message.author_role,
            created_at=message.created_at,
            withheld_from_guardian=message.withheld_from_guardian,
            _model=message,
            _case=case,
        )


@strawberry.type(description="An attached image (metadata stripped). `url` is signed and short-lived.")
class Attachment:
    id: strawberry.ID
    content_type: str
    width: int
    height: int
    size_bytes: int
    created_at: datetime
    _model: strawberry.Private[models.Attachment]

    @strawberry.field
    async def url(self, info: Info) -> str:
        return await image_url(await info.context.read(), self._model)


@strawberry.type(description="The fee as the payment provider last reported it.")
class Payment:
    provider: str
    status: str
    amount: Money
    authorized: int
    captured: int
    released: int
    expires_at: datetime | None
    action_url: str | None = strawberry.field(
        description="While pending: where the payer approves (3-D Secure, Vipps); then confirmPayment."
    )


@strawberry.type(description="An SMS the patient was sent about the case: how it went, never its text.")
class TextNotice:
    event: str
    status: str = strawberry.field(
        description="pending, sent, delivered, failed (no provider could deliver it), or why it was not "
        "sent (no_phone, skipped_…)."
    )
    failure_reason: str | None
    sent_at: datetime | None
    status_at: datetime | None


@strawberry.type(
    description="The newest request for a journal draft: PENDING, DONE (the draft is among journalNotes, "
    "unless the AI consent was withdrawn first) or FAILED (ask again, or write the note yourself)."
)
class JournalDraftRequest:
    status: JournalDraftStatus  # type: ignore[valid-type]
    requested_at: datetime
    error: Error | None = strawberry.field(
        description="Why it failed (PROVIDER_UNAVAILABLE), with a message for the clinician."
    )


@strawberry.type(description="Who approved a journal note: her name and HPR number (helsepersonellnummer).")
class NoteApprover:
    name: str
    hpr_number: str | None


@strawberry.type(description="A journal note: a draft until a clinician approves it; then immutable.")
class JournalNote(relay.Node):
    note_id: relay.NodeID[str]
    status: JournalNoteStatus  # type: ignore[valid-type]
    drafter: str | None
    drafter_version: str | None
    model: str | None
    prompt_version: str | None
    approved_at: datetime | None
    created_at: datetime
    withheld_from_guardian: bool
    _model: strawberry.Private[models.JournalNote]
    _case: strawberry.Private[models.Case]

    @strawberry.field
    def text(self, info: Info) -> str:
        return content.note_content(info.context.platform.keyring, self._case, self._model)[0]

    @strawberry.field(description="The clinician who approved it, with her HPR number (provenance).")
    async def approved_by(self, info: Info) -> NoteApprover | None:
        approver_id = self._model.approved_by_id
        if approver_id is None:
            return None
        person = await info.context.loader("persons", loaders.persons).load(approver_id)
        hpr = await info.context.loader("hpr_numbers", loaders.hpr_numbers).load(approver_id)
        name = f"{person.given_name} {person.family_name}".strip() if person is not None else ""
        return NoteApprover(name=name, hpr_number=hpr)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[JournalNote | None]:
        """Notes of cases the actor may read: drafts for the assigned clinician, approved notes for all."""
        out: list[JournalNote | None] = []
        for node_id in node_ids:
            found = await _readable_note(info, node_id)
            out.append(JournalNote.of(*found) if found is not None else None)
        return out

    @classmethod
    def of(cls, note: models.JournalNote, case: models.Case) -> JournalNote:
        return cls(
            note_id=str(note.id),
            status=note.status,
            withheld_from_guardian=note.withheld_from_guardian,
            _model=note,
            _case=case,
            drafter=note.drafter,
            drafter_version=note.drafter_version,
            model=note.model,
            prompt_version=note.prompt_version,
            approved_at=note.approved_at,
            created_at=note.created_at,
        )


@strawberry.type(description="One consultation.")
class Case(relay.Node):
    case_id: relay.NodeID[str]
    number: str
    status: CaseStatus  # type: ignore[valid-type]
    outcome: CaseOutcome | None  # type: ignore[valid-type]
    for_child: bool
    questionnaire_key: str | None
    questionnaire_version: int | None
    price: Money
    sla_due_at: datetime | None
    submitted_at: datetime | None
    answered_at: datetime | None
    closed_at: datetime | None
    cancelled_at: datetime | None
    created_at: datetime
    retention_until: datetime | None = strawberry.field(
        description="When the communication (answers, messages, images) is deleted."
    )
    communication_deleted_at: datetime | None = strawberry.field(
        description="When the communication was deleted (a journal note and the payment stay)."
    )
    overdue: bool = strawberry.field(description="Whether the SLA deadline has passed without an answer.")
    _model: strawberry.Private[models.Case]
    _patient: strawberry.Private[CasePerson] = NOT_LOADED
    """Loaded with the page (``Case.page``); else (``NOT_LOADED``) ``patient`` loads it."""
    _payment: strawberry.Private[Payment | None] = NOT_LOADED
    """Loaded with the page: the payment or None; else (``NOT_LOADED``) ``payment`` loads it."""

    @classmethod
    def of(cls, case: models.Case, *, now: datetime | None = None) -> Case:
        """The case as clients see it. Plain values are set here, once, so that they are read as attributes
        (no resolver, no per-field work) however many cases a page holds."""
        return cls(
            case_id=str(case.id),
            number=case.number,
            status=case.status,
            outcome=case.outcome,
            for_child=case.requester_role is models.RequesterRole.GUARDIAN,
            questionnaire_key=case.questionnaire_key,
            questionnaire_version=case.questionnaire_version,
            price=Money(amount=case.price_amount, currency=case.price_currency),
            sla_due_at=case.sla_due_at,
            submitted_at=case.submitted_at,
            answered_at=case.answered_at,
            closed_at=case.closed_at,
            cancelled_at=case.cancelled_at,
            created_at=case.created_at,
            retention_until=case.retention_until,
            communication_deleted_at=case.purged_at,
            overdue=_overdue(case, utcnow() if now is None else now),
            _model=case,
        )

    @classmethod
    async def page(cls, info: Info, rows: Sequence[models.Case], relations: set[str]) -> list[Case]:
        """Cases of a page; the ``relations`` asked for (``patient``, ``payment``) loaded for the whole
        page at once (one query each, as their DataLoaders would), so that each case's field is a value,
        not one awaitable per case."""
        now = utcnow()
        out = [cls.of(row, now=now) for row in rows]
        wanted = relations & {"patient", "payment"}
        if not rows or not wanted:
            return out
        context = info.context
        ctx = await context.read()
        if "patient" in wanted:
            persons = await loaders.persons_by_id(ctx.session, (row.subject_id for row in rows))
            reader = context.actor.person_id
            for case in out:
                model = case._model
                case._patient = case_person(model, persons[model.subject_id], reader, ctx.today)
        if "payment" in wanted:
            grouped = await loaders.rows_by_key(ctx.session, *loaders.RESERVATIONS, (row.id for row in rows))
            for case in out:
                case._payment = _payment(grouped.get(case._model.id, ()))
        return out

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Case | None]:
        out: list[Case | None] = []
        for node_id in node_ids:
            out.append(await load_readable(info, node_id))
        return out

    @strawberry.field(description="The questionnaire answers (empty once the communication is deleted).")
    def answers(self, info: Info) -> JSON:
        return cast(JSON, content.answers(info.context.platform.keyring, self._model))

    @strawberry.field(description="What may happen next (the state machine's events from here).")
    def allowed_actions(self) -> list[str]:
        return sorted(event.value for event in allowed_events(self._model.status))

    @strawberry.field(description="Whether the signed-in clinician is assigned to this case.")
    def assigned_to_me(self, info: Info) -> bool:
        actor = info.context.actor
        return actor.person_id is not None and self._model.assigned_clinician_id == actor.person_id

    @strawberry.field(
        description="The case's clinician: the texts the patient was sent and whether they arrived (a failed "
        "one means she may not know of the answer)."
    )
    async def text_notices(self, info: Info) -> list[TextNotice]:
        actor = info.context.actor
        if not (actor.is_clinician and self._model.assigned_clinician_id == actor.person_id):
            raise Forbidden("Bare behandleren av saken ser varslene.")
        ctx = await info.context.read()
        rows = await ctx.session.scalars(
            select(models.Notification)
            .where(
                models.Notification.case_id == self._model.id,
                models.Notification.event != SLA_WARNING,  # to the staff on duty, not to the patient
            )
            .order_by(models.Notification.created_at)
        )
        return [
            TextNotice(
                event=n.event,
                status=n.status,
                failure_reason=n.failure_reason,
                sent_at=n.sent_at,
                status_at=n.status_at,
            )
            for n in rows
        ]

    @strawberry.field(graphql_type=CasePerson, metadata={PRELOADED: "_patient"})
    def patient(self, info: Info) -> CasePerson | Awaitable[CasePerson]:
        if self._patient is not NOT_LOADED:
            return self._patient
        return self._load_patient(info)

    async def _load_patient(self, info: Info) -> CasePerson:
        person = await info.context.loader("persons", loaders.persons).load(self._model.subject_id)
        today = (await info.context.read()).today
        return case_person(self._model, person, info.context.actor.person_id, today)

    @strawberry.field
    async def messages(self, info: Info) -> list[Message]:
        rows = await info.context.loader("messages", loaders.messages).load(self._model.id)
        hidden = _guardian_view(info, self._model)
        return [Message.of(row, self._model) for row in rows if not (hidden and row.withheld_from_guardian)]

    @strawberry.field
    async def attachments(self, info: Info) -> list[Attachment]:
        rows = await info.context.loader("attachments", loaders.attachments).load(self._model.id)
        return [
            Attachment(
                id=strawberry.ID(str(row.id)),
                content_type=row.content_type,
                width=row.width,
                height=row.height,
                size_bytes=row.size_bytes,
                created_at=row.created_at,
                _model=row,
            )
            for row in rows
        ]

    @strawberry.field(graphql_type=Payment | None, metadata={PRELOADED: "_payment"})
    def payment(self, info: Info) -> Payment | Awaitable[Payment | None] | None:
        if self._payment is not NOT_LOADED:
            return self._payment
        return self._load_payment(info)

    async def _load_payment(self, info: Info) -> Payment | None:
        return _payment(await info.context.loader("reservations", loaders.reservations).load(self._model.id))

    @strawberry.field(description="Journal notes: clinicians see drafts; patients see approved notes.")
    async def journal_notes(self, info: Info) -> list[JournalNote]:
        rows = await info.context.loader("journal_notes", loaders.journal_notes).load(self._model.id)
        staff = (
            info.context.actor.is_clinician
            and self._model.assigned_clinician_id == info.context.actor.person_id
        )
        hidden = _guardian_view(info, self._model)
        return [
            JournalNote.of(row, self._model)
            for row in rows
            if (staff or row.status is models.JournalNoteStatus.APPROVED)
            and not (hidden and row.withheld_from_guardian)
        ]

    @strawberry.field(
        description="The case's clinician: the newest journal draft request and how it went; null for "
        "others, or when none was asked for. FAILED: ask again (draftJournalNote) or write the note "
        "(writeJournalNote)."
    )
    async def journal_draft(self, info: Info) -> JournalDraftRequest | None:
        actor = info.context.actor
        if not (actor.is_clinician and self._model.assigned_clinician_id == actor.person_id):
            return None
        ctx = await info.context.read()
        request = await core_journal.draft_request_of(ctx.session, self._model.id)
        if request is None:
            return None
        return JournalDraftRequest(
            status=request.status,
            requested_at=request.requested_at,
            error=Error.from_exception(request.error) if request.error else None,
        )


def _overdue(case: models.Case, now: datetime) -> bool:
    if case.sla_due_at is None or case.answered_at is not None or case.cancelled_at is not None:
        return False
    return is_overdue(case.sla_due_at, now)


def _payment(rows: Sequence[models.PaymentReservation]) -> Payment | None:
    """The fee as last reserved (the newest reservation of the case)."""
    if not rows:
        return None
    row = rows[-1]
    return Payment(
        provider=row.provider,
        status=row.status,
        amount=Money(amount=row.amount, currency=row.currency),
        authorized=row.authorized_amount,
        captured=row.captured_amount,
        released=row.released_amount,
        expires_at=row.expires_at,
        action_url=row.action_url,
    )


def _guardian_view(info: Info, case: models.Case) -> bool:
    """Whether the actor reads this case as the child's guardian (not as the patient or her clinician)."""
    return reads_as_guardian(case, info.context.actor.person_id)


async def _readable_note(info: Info, node_id: str) -> tuple[models.JournalNote, models.Case] | None:
    require_person(info.context.actor)  # before any look-up: anonymous callers learn nothing either way
    try:
        note_id = uuid.UUID(node_id)
    except ValueError:
        return None
    ctx = await info.context.read()
    note = await ctx.session.get(models.JournalNote, note_id)
    if note is None or await load_readable(info, str(note.case_id)) is None:
        return None
    actor = info.context.actor
    case = await ctx.session.get(models.Case, note.case_id)
    if case is None or (note.withheld_from_guardian and _guardian_view(info, case)):
        return None
    drafts_visible = actor.is_clinician and case.assigned_clinician_id == actor.person_id
    return (note, case) if drafts_visible or note.status is models.JournalNoteStatus.APPROVED else None


async def load_readable(info: Info, node_id: str) -> Case | None:
    """A case the actor may read (the read is logged); None when it is not there for her."""
    try:
        case_id = uuid.UUID(node_id)
    except ValueError:
        return None
    ctx = await info.context.read()
    try:
        return Case.of(await core_cases.read_case(ctx, case_id))
    except NotFound:
        return None
