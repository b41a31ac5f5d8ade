"""Queries and mutations of the consultation: cases, the questionnaire, consents, images, messages,
answers, journal notes. The rules live in core; this file maps GraphQL to them."""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any, cast

import strawberry
from sqlalchemy import Select, select
from strawberry import relay
from strawberry.file_uploads import Upload
from strawberry.scalars import JSON
from strawberry.types.nodes import SelectedField

from legetime.core.consultation import attachments, cases, consents, journal, submission
from legetime.core.consultation.access import AS_PATIENT, as_clinician, patient_parameters, require_person
from legetime.core.consultation.consents import CONSENT_TEXTS
from legetime.core.consultation.questionnaire import load_questionnaire
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db import models
from legetime.core.platform.errors import LegetimeError, NotFound
from legetime.core.privacy import rights as privacy
from legetime.schema.case_rows import ROW_FIELDS, CaseRow, as_rows, cases_of_rows, logged_page
from legetime.schema.case_types import (
    Attachment,
    Case,
    CaseOutcome,
    CaseStatus,
    JournalNote,
    Message,
    load_readable,
)
from legetime.schema.context import Info
from legetime.schema.erasure_types import ErasureAccount
from legetime.schema.errors import Error
from legetime.schema.login import ConsentPurpose
from legetime.schema.mutation import global_uuid, mutate
from legetime.schema.pagination import keyset_page
from legetime.schema.payment_types import SubmitCasePayload, submit_payload

MAX_UPLOAD_BYTES = 10 * 1024 * 1024


# --- questionnaire ---------------------------------------------------------------------------------


@strawberry.type
class Choice:
    value: str
    label: str


@strawberry.type
class ShownIf:
    question: str
    equals: JSON | None
    any_of: list[str] | None


@strawberry.type(description="One question. `audience` says whether it is asked for adults, children or all.")
class Question:
    id: str
    type: str
    text: str
    help: str | None
    required: bool
    audience: str
    choices: list[Choice]
    shown_if: ShownIf | None
    min: float | None
    max: float | None


@strawberry.type(description="The health questions a patient answers, versioned.")
class Questionnaire:
    key: str
    version: int
    title: str
    questions: list[Question]


def _questionnaire(key: str, version: int | None) -> Questionnaire:
    definition = load_questionnaire(key, version)
    return Questionnaire(
        key=definition.key,
        version=definition.version,
        title=definition.title,
        questions=[
            Question(
                id=q.id,
                type=q.type.value,
                text=q.text,
                help=q.help,
                required=q.required,
                audience=q.audience,
                choices=[Choice(value=c.value, label=c.label) for c in q.choices],
                shown_if=ShownIf(
                    question=q.shown_if.question,
                    equals=cast(JSON, q.shown_if.equals),
                    any_of=q.shown_if.any_of,
                )
                if q.shown_if
                else None,
                min=getattr(q, "min", None),
                max=getattr(q, "max", None),
            )
            for q in definition.questions
        ],
    )


@strawberry.type
class ConsentText:
    purpose: ConsentPurpose  # type: ignore[valid-type]
    version: str
    text: str


# --- queries ---------------------------------------------------------------------------------------


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


_MY_CASES = select(models.Case).where(AS_PATIENT)
"""A patient's cases, with the reader as a parameter: made once (see ``keyset_page``'s ``reusable``)."""
_NEWEST_FIRST = (models.Case.__table__.c.created_at, models.Case.__table__.c.id)
_rows_of_reusable = functools.cache(as_rows)
"""``as_rows`` of a query made once, made once too."""


@strawberry.type
class CaseQuery:
    @strawberry.field(description="A case you may read (yours, your child's, or one in your care).")
    async def case(self, info: Info, id: strawberry.ID) -> Case | None:
        require_person(info.context.actor)  # anonymous: the same answer whatever the id
        try:
            case_id = global_uuid(id)
        except NotFound:
            return None
        return await load_readable(info, str(case_id))

    @strawberry.field(description="Your cases and your children's, newest first.")
    async def my_cases(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> relay.Connection[Case]:
        ctx = await info.context.read()
        require_person(ctx.actor)
        parameters = patient_parameters(ctx.actor, ctx.today)
        return await _page(info, ctx, _MY_CASES, _NEWEST_FIRST, True, first, after, parameters)

    @strawberry.field(description="Clinicians: the queue and your cases, by SLA deadline.")
    async def case_queue(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        status: list[CaseStatus] | None = None,  # type: ignore[valid-type]
        overdue: bool | None = None,
    ) -> relay.Connection[Case]:
        ctx = await info.context.read()
        cases.require_clinician(ctx)
        query = select(models.Case).where(
            as_clinician(ctx.actor, write=False), models.Case.sla_due_at.is_not(None)
        )
        if status:
            query = query.where(models.Case.status.in_(status))
        if overdue is not None:
            late = (models.Case.sla_due_at < ctx.now) & models.Case.answered_at.is_(None)
            query = query.where(late if overdue else ~late)
        return await _page(
            info, ctx, query, (models.Case.sla_due_at, models.Case.id), False, first, after, None
        )

    @strawberry.field(description="The questionnaire a patient must answer (latest version by default).")
    def questionnaire(self, key: str = "general", version: int | None = None) -> Questionnaire:
        return _questionnaire(key, version)

    @strawberry.field(description="The consent texts a frontend shows; grant with the version shown.")
    def consent_texts(self) -> list[ConsentText]:
        return [
            ConsentText(purpose=t.purpose, version=t.version, text=t.text) for t in CONSENT_TEXTS.values()
        ]


async def _page(
    info: Info,
    ctx: Ctx,
    query: Select[Any],
    keys: tuple[Any, ...],
    descending: bool,
    first: int | None,
    after: str | None,
    parameters: dict[str, Any] | None,
) -> relay.Connection[Case]:
    """A page of ``query``'s cases. With ``parameters``, ``query`` is one made once (``_MY_CASES``) and
    the parameters are its values; without, it was made for this request."""
    selected = info.selected_fields
    fields = _fields_at(selected, ("edges", "node"))
    plain = fields <= ROW_FIELDS  # no field needs the mapped case: rows, with patient and payment joined
    reusable = parameters is not None
    statement = query
    if plain:
        statement = _rows_of_reusable(query) if reusable else as_rows(query)
    # On PostgreSQL the rows' statement logs them itself: no INSERT of its own, no round trip.
    logged = logged_page if plain and not ctx.platform.db.is_sqlite else None
    if logged is not None:
        parameters = {**(parameters or {}), **cases.list_log_parameters(ctx)}
    rows, has_next, cursors = await keyset_page(
        ctx.session,
        statement,
        keys,
        descending=descending,
        first=first,
        after=after,
        settings=ctx.platform.settings,
        parse=(_parse_time, uuid.UUID),
        scalars=not plain,
        parameters=parameters,
        reusable=reusable,
        row_type=CaseRow._make if plain else None,
        every_cursor="cursor" in _fields_at(selected, ("edges",)),
        logged=logged,
    )
    if logged is None:
        await cases.log_reads(ctx, rows)
    if plain:
        nodes = cases_of_rows(rows, ctx.actor.person_id, ctx.today)
    else:
        nodes = await Case.page(info, rows, fields)
    edges = [relay.Edge(node=node, cursor=cursor) for node, cursor in zip(nodes, cursors, strict=True)]
    return relay.Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=has_next,
            has_previous_page=after is not None,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        ),
    )


def _fields_at(selected: list[Any], path: tuple[str, ...]) -> set[str]:
    """The names of the fields a connection's query selects at ``path`` (``("edges", "node")``: of its
    nodes), through fragments too; directives are not looked at (a field skipped by ``@skip`` is counted)."""
    names: set[str] = set()

    def walk(selections: list[Any], path: tuple[str, ...]) -> None:
        for selection in selections:
            if isinstance(selection, SelectedField):
                if not path:
                    names.add(selection.name)
                elif selection.name == path[0]:
                    walk(selection.selections, path[1:])
            else:  # a fragment, inline or spread: its selections are the parent's
                walk(selection.selections, path)

    for field in selected:
        walk(field.selections, path)
    return names


# --- mutations: the patient ------------------------------------------------------------------------


@strawberry.input
class ChildInput:
    national_id: str
    given_name: str | None = None
    guardian_declared: bool = strawberry.field(description="I have parental responsibility for the child.")


RETRY_KEY = "At most 100 printable characters; yours alone (another person's same key is another request)."


@strawberry.input
class StartCaseInput:
    child: ChildInput | None = strawberry.field(default=None, description="Leave out for yourself.")
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retrying with the same key returns the same case and never opens a second; the same "
        f"key with other input is IDEMPOTENCY_CONFLICT. {RETRY_KEY}",
    )


@strawberry.type
class CasePayload:
    case: Case | None = None
    errors: list[Error]


@strawberry.input
class AnswerInput:
    question_id: str
    value: JSON | None = strawberry.field(default=None, description="null removes the answer.")


@strawberry.input
class AnswerQuestionnaireInput:
    case_id: strawberry.ID
    answers: list[AnswerInput]


@strawberry.input
class AttachImageInput:
    case_id: strawberry.ID
    image: Upload
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retrying with the same key and file returns the same attachment; the image is stored "
        f"once. Another file with the key is IDEMPOTENCY_CONFLICT. Per case. {RETRY_KEY}",
    )


@strawberry.type
class AttachImagePayload:
    attachment: Attachment | None = None
    errors: list[Error]


@strawberry.input
class GrantConsentInput:
    purpose: ConsentPurpose  # type: ignore[valid-type]
    text_version: str
    case_id: strawberry.ID | None = strawberry.field(default=None, description="For a case (a child's).")
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retrying with the same key and input returns the consent recorded first and records "
        f"nothing twice; the same key with other input is IDEMPOTENCY_CONFLICT. {RETRY_KEY}",
    )


@strawberry.input
class WithdrawConsentInput:
    purpose: ConsentPurpose  # type: ignore[valid-type]
    case_id: strawberry.ID | None = None


@strawberry.type
class ConsentRecord:
    purpose: ConsentPurpose  # type: ignore[valid-type]
    granted: bool
    text_version: str
    created_at: datetime


@strawberry.type
class ConsentPayload:
    consent: ConsentRecord | None = None
    erasure: ErasureAccount | None = strawberry.field(
        default=None,
        description="Withdrawing consent to storing the communication or the images: what was deleted, "
        "what waits for its case to end and what is kept (and why).",
    )
    errors: list[Error]


@strawberry.input
class SubmitCaseInput:
    case_id: strawberry.ID
    idempotency_key: str = strawberry.field(description="Retrying with the same key never reserves twice.")
    payment_provider: str | None = None
    payment_method: str | None = strawberry.field(
        default=None,
        description="The provider's token: a test card (fake), a PaymentMethod pm_… (stripe). Null: the "
        "provider's default (stripe: the payer enters her card in the Payment Element; see paymentAction).",
    )
    return_url: str | None = strawberry.field(
        default=None, description="Where the provider sends the payer back after approving (a redirect)."
    )


@strawberry.input
class CancelCaseInput:
    case_id: strawberry.ID


@strawberry.input
class CloseCaseInput:
    case_id: strawberry.ID


@strawberry.input
class ClaimCaseInput:
    case_id: strawberry.ID


@strawberry.input
class DraftJournalNoteInput:
    case_id: strawberry.ID
    idempotency_key: str | None = strawberry.field(
        default=None, description=f"Retrying with the same key asks for one draft only. Per case. {RETRY_KEY}"
    )


def _case_payload(result: models.Case | None, errors: list[Error]) -> CasePayload:
    return CasePayload(case=Case.of(result) if result is not None else None, errors=errors)


def _consent_payload(result: models.Consent | None, errors: list[Error]) -> ConsentPayload:
    if result is None:
        return ConsentPayload(errors=errors)
    record = ConsentRecord(
        purpose=result.purpose,
        granted=result.action is models.ConsentAction.GRANTED,
        text_version=result.text_version,
        created_at=result.created_at,
    )
    return ConsentPayload(consent=record, errors=errors)


@strawberry.type
class PatientMutation:
    @strawberry.mutation(description="Open a draft case for yourself or for your child under 16.")
    async def start_case(self, info: Info, input: StartCaseInput) -> CasePayload:
        child = input.child

        async def work(ctx: Ctx) -> models.Case:
            if child is None:
                return await cases.start_case(ctx, idempotency_key=input.idempotency_key)
            return await cases.start_case(
                ctx,
                child_national_id=child.national_id,
                child_given_name=child.given_name,
                guardian_declared=child.guardian_declared,
                idempotency_key=input.idempotency_key,
            )

        return _case_payload(*await mutate(info, work))

    @strawberry.mutation(description="Save answers (any subset); all are checked when you submit.")
    async def answer_questionnaire(self, info: Info, input: AnswerQuestionnaireInput) -> CasePayload:
        answers = {a.question_id: a.value for a in input.answers}

        async def work(ctx: Ctx) -> models.Case:
            return await cases.answer_questionnaire(ctx, global_uuid(input.case_id), answers)

        return _case_payload(*await mutate(info, work))

    @strawberry.mutation(description="Attach a photo (JPEG, PNG or WebP; metadata is removed).")
    async def attach_image(self, info: Info, input: AttachImageInput) -> AttachImagePayload:
        data = await input.image.read(MAX_UPLOAD_BYTES + 1)  # type: ignore[attr-defined]
        try:  # decoded before the transaction (see prepare_image)
            image = await attachments.prepare_image(
                info.context.platform,
                info.context.actor,
                global_uuid(input.case_id),
                data,
                idempotency_key=input.idempotency_key,
            )
        except LegetimeError as exc:
            return AttachImagePayload(errors=[Error.from_exception(exc)])

        async def work(ctx: Ctx) -> models.Attachment:
            return await attachments.attach_image(
                ctx, global_uuid(input.case_id), image, idempotency_key=input.idempotency_key
            )

        row, errors = await mutate(info, work)
        if row is None:
            return AttachImagePayload(errors=errors)
        attachment = Attachment(
            id=strawberry.ID(str(row.id)),
            content_type=row.content_type,
            width=row.width,
            height=row.height,
            size_bytes=row.size_bytes,
            created_at=row.created_at,
            _model=row,
        )
        return AttachImagePayload(attachment=attachment, errors=[])

    @strawberry.mutation(description="Give consent (for yourself, or for your child's case).")
    async def grant_consent(self, info: Info, input: GrantConsentInput) -> ConsentPayload:
        async def work(ctx: Ctx) -> models.Consent:
            case_id = global_uuid(input.case_id) if input.case_id else None
            return await consents.record(
                ctx,
                purpose=input.purpose,
                granted=True,
                text_version=input.text_version,
                case_id=case_id,
                idempotency_key=input.idempotency_key,
            )

        return _consent_payload(*await mutate(info, work))

    @strawberry.mutation(
        description="Withdraw a consent. COMMUNICATION_STORAGE deletes the communication of ended cases and "
        "drafts at once (others when they end); IMAGE_STORAGE does the same for the images only; AI_JOURNAL "
        "stops drafts not yet made."
    )
    async def withdraw_consent(self, info: Info, input: WithdrawConsentInput) -> ConsentPayload:
        async def work(ctx: Ctx) -> tuple[models.Consent, privacy.ErasureAccount | None]:
            case_id = global_uuid(input.case_id) if input.case_id else None
            return await privacy.withdraw_consent(ctx, input.purpose, case_id)

        result, errors = await mutate(info, work)
        if result is None:
            return ConsentPayload(errors=errors)
        payload = _consent_payload(result[0], errors)
        if result[1] is not None:
            payload.erasure = ErasureAccount.of(result[1])
        return payload

    @strawberry.mutation(description="Send the case to a doctor; reserves the fee on your card.")
    async def submit_case(self, info: Info, input: SubmitCaseInput) -> SubmitCasePayload:
        async def work(ctx: Ctx) -> submission.PaymentStep:
            return await submission.submit_case(
                ctx,
                global_uuid(input.case_id),
                idempotency_key=input.idempotency_key,
                provider=input.payment_provider,
                payment_method=input.payment_method,
                return_url=input.return_url,
            )

        return submit_payload(*await mutate(info, work))

    @strawberry.mutation(description="Cancel before the doctor has answered; the reservation is released.")
    async def cancel_case(self, info: Info, input: CancelCaseInput) -> CasePayload:
        async def work(ctx: Ctx) -> models.Case:
            return await cases.cancel_case(ctx, global_uuid(input.case_id))

        return _case_payload(*await mutate(info, work))

    @strawberry.mutation(description="Close after reading the answer; the fee is charged.")
    async def close_case(self, info: Info, input: CloseCaseInput) -> CasePayload:
        async def work(ctx: Ctx) -> models.Case:
            return await cases.close_case(ctx, global_uuid(input.case_id))

        return _case_payload(*await mutate(info, work))


# --- mutations: messages and the clinician ---------------------------------------------------------


@strawberry.input
class SendMessageInput:
    case_id: strawberry.ID
    body: str
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retrying with the same key returns the same message and never sends twice; another "
        f"body with the key is IDEMPOTENCY_CONFLICT. Per case. {RETRY_KEY}",
    )


@strawberry.type
class MessagePayload:
    message: Message | None = None
    case: Case | None = None
    errors: list[Error]


PrescriptionGroupEnum = strawberry.enum(cases.PrescriptionGroup, name="PrescriptionGroup")


@strawberry.input
class PrescriptionInput:
    medication: str
    group: PrescriptionGroupEnum  # type: ignore[valid-type]


@strawberry.input
class AnswerCaseInput:
    case_id: strawberry.ID
    body: str
    outcome: CaseOutcome  # type: ignore[valid-type]
    prescription: PrescriptionInput | None = None


@strawberry.input
class ApproveJournalNoteInput:
    note_id: strawberry.ID
    text: str | None = strawberry.field(default=None, description="The edited text; default: as drafted.")


@strawberry.input
class WriteJournalNoteInput:
    case_id: strawberry.ID
    text: str
    idempotency_key: str | None = strawberry.field(
        default=None, description=f"Retrying with the same key returns the note written first. {RETRY_KEY}"
    )


@strawberry.type
class JournalNotePayload:
    note: JournalNote | None = None
    errors: list[Error]


async def _message_payload(info: Info, work: object) -> MessagePayload:
    message, errors = await mutate(info, work)  # type: ignore[arg-type]
    if message is None:
        return MessagePayload(errors=errors)
    async with info.context.platform.db.transaction() as session:
        case = await session.get(models.Case, message.case_id)
    if case is None:
        return MessagePayload(errors=errors)
    return MessagePayload(message=Message.of(message, case), case=Case.of(case), errors=[])


@strawberry.type
class ClinicianMutation:
    @strawberry.mutation(description="Clinicians: take a case from the queue.")
    async def claim_case(self, info: Info, input: ClaimCaseInput) -> CasePayload:
        async def work(ctx: Ctx) -> models.Case:
            return await cases.claim_case(ctx, global_uuid(input.case_id))

        return _case_payload(*await mutate(info, work))

    @strawberry.mutation(description="A message on the case: a follow-up question, or the patient's reply.")
    async def send_message(self, info: Info, input: SendMessageInput) -> MessagePayload:
        async def work(ctx: Ctx) -> models.Message:
            return await cases.send_message(
                ctx, global_uuid(input.case_id), input.body, input.idempotency_key
            )

        return await _message_payload(info, work)

    @strawberry.mutation(description="Clinicians: the written answer with its outcome.")
    async def answer_case(self, info: Info, input: AnswerCaseInput) -> MessagePayload:
        prescription = (
            cases.Prescription(
                medication=input.prescription.medication,
                group=input.prescription.group,
            )
            if input.prescription
            else None
        )

        async def work(ctx: Ctx) -> models.Message:
            return await cases.answer_case(
                ctx,
                global_uuid(input.case_id),
                body=input.body,
                outcome=input.outcome,
                prescription=prescription,
            )

        return await _message_payload(info, work)

    @strawberry.mutation(
        description="Clinicians: ask the journal drafter for a draft (needs the AI consent)."
    )
    async def draft_journal_note(self, info: Info, input: DraftJournalNoteInput) -> CasePayload:
        async def work(ctx: Ctx) -> models.Case:
            return await journal.request_draft(
                ctx, global_uuid(input.case_id), idempotency_key=input.idempotency_key
            )

        return _case_payload(*await mutate(info, work))

    @strawberry.mutation(
        description="Clinicians: approve a journal note (with your edits); it is then final."
    )
    async def approve_journal_note(self, info: Info, input: ApproveJournalNoteInput) -> JournalNotePayload:
        async def work(ctx: Ctx) -> models.JournalNote:
            return await journal.approve(ctx, global_uuid(input.note_id, field="noteId"), input.text)

        note, errors = await mutate(info, work)
        if note is None:
            return JournalNotePayload(errors=errors)
        async with info.context.platform.db.transaction() as session:
            case = await session.get(models.Case, note.case_id)
        assert case is not None
        return JournalNotePayload(note=JournalNote.of(note, case), errors=errors)

    @strawberry.mutation(
        description="Clinicians: write the journal note yourself (when no draft is wanted, or drafting "
        "failed); no AI consent needed. A draft until approved with approveJournalNote."
    )
    async def write_journal_note(self, info: Info, input: WriteJournalNoteInput) -> JournalNotePayload:
        async def work(ctx: Ctx) -> tuple[models.JournalNote, models.Case]:
            return await journal.write_note(
                ctx, global_uuid(input.case_id), input.text, idempotency_key=input.idempotency_key
            )

        written, errors = await mutate(info, work)
        if written is None:
            return JournalNotePayload(errors=errors)
        return JournalNotePayload(note=JournalNote.of(*written), errors=errors)
