"""Integrator accounts: operators manage them; an account reads the narrow fields its scopes name, and
nothing else (docs/integrators.md). The rules live in ``legetime.core.protection.integrator_accounts``."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from sqlalchemy import select
from strawberry import relay

from legetime.core.consultation.sla import is_overdue
from legetime.core.identity.actors import require_operator
from legetime.core.identity.ctx import Ctx
from legetime.core.identity.integrators import SCOPES
from legetime.core.platform.db import models
from legetime.core.platform.errors import NotFound
from legetime.core.protection import content
from legetime.core.protection import integrator_accounts as accounts
from legetime.schema.case_types import CaseOutcome, CaseStatus
from legetime.schema.context import Info
from legetime.schema.errors import Error
from legetime.schema.mutation import global_uuid, mutate
from legetime.schema.operator_api import OperationFigures, operation_figures

IntegratorScope = strawberry.enum(
    models.IntegratorScope,
    name="IntegratorScope",
    description="What an integrator account may read: READ_OPERATIONS (`operationFigures`), "
    "READ_CASE_STATUS (`caseStatus`), READ_CLOSED_JOURNAL_NOTES (`closedCaseJournalNotes`).",
)


@strawberry.type(
    description="A machine's API credentials: a name and scopes. Its token is never shown again."
)
class IntegratorAccount:
    id: strawberry.ID
    name: str
    scopes: list[IntegratorScope]  # type: ignore[valid-type]
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: models.IntegratorAccount) -> IntegratorAccount:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            scopes=[models.IntegratorScope(s) for s in row.scopes if s in SCOPES],
            created_at=row.created_at,
            revoked_at=row.revoked_at,
        )


@strawberry.type(description="A case's status and times, for integrators: no names, answers or messages.")
class CaseStatusView:
    id: strawberry.ID = strawberry.field(description="The case's global id (as `Case.id` and in events).")
    number: str
    status: CaseStatus  # type: ignore[valid-type]
    outcome: CaseOutcome | None  # type: ignore[valid-type]
    for_child: bool
    created_at: datetime
    submitted_at: datetime | None
    sla_due_at: datetime | None
    answered_at: datetime | None
    closed_at: datetime | None
    cancelled_at: datetime | None
    overdue: bool
    payment_status: str | None = strawberry.field(description="The newest reservation's status, if any.")


@strawberry.type(description="An approved journal note of a closed case, for the clinic's journal system.")
class ClosedCaseJournalNote:
    id: strawberry.ID
    approved_at: datetime | None
    text: str


@strawberry.input
class CreateIntegratorAccountInput:
    name: str = strawberry.field(
        description="Who it is for, e.g. the journal system's name (1–100 characters)."
    )
    scopes: list[IntegratorScope]  # type: ignore[valid-type]


@strawberry.input
class RevokeIntegratorAccountInput:
    id: strawberry.ID


@strawberry.type
class IntegratorTokenPayload:
    account: IntegratorAccount | None = None
    token: str | None = strawberry.field(
        default=None, description="The bearer token (lgi_…): shown this once, store it now."
    )
    errors: list[Error]


@strawberry.type
class IntegratorAccountPayload:
    account: IntegratorAccount | None = None
    errors: list[Error]


def _case_global_id(case_id: uuid.UUID) -> strawberry.ID:
    return strawberry.ID(relay.to_base64("Case", str(case_id)))


@strawberry.type
class IntegratorQuery:
    @strawberry.field(description="Operators: the integrator accounts, oldest first.")
    async def integrator_accounts(self, info: Info) -> list[IntegratorAccount]:
        ctx = await info.context.read()
        return [IntegratorAccount.of(row) for row in await accounts.accounts(ctx)]

    @strawberry.field(
        description="Operators, and integrator accounts with READ_OPERATIONS: the operation's figures."
    )
    async def operation_figures(self, info: Info) -> OperationFigures:
        ctx = await info.context.read()
        if ctx.actor.integrator is not None:
            accounts.require_scope(ctx, models.IntegratorScope.READ_OPERATIONS)
        else:
            require_operator(ctx.actor)
        return await operation_figures(ctx.session, ctx.now)

    @strawberry.field(
        description="Integrator accounts with READ_CASE_STATUS: a case's status and times, by its id (from "
        "an event or a webhook). Each read is in the patient's access log."
    )
    async def case_status(self, info: Info, id: strawberry.ID) -> CaseStatusView:
        ctx = await info.context.read()
        accounts.require_scope(ctx, models.IntegratorScope.READ_CASE_STATUS)
        case = await _case(ctx, global_uuid(id, field="id"))
        payment = await ctx.session.scalar(
            select(models.PaymentReservation.status)
            .where(models.PaymentReservation.case_id == case.id)
            .order_by(models.PaymentReservation.created_at.desc())
            .limit(1)
        )
        await accounts.log_read(ctx, person_id=case.subject_id, object_type="case", object_id=str(case.id))
        return CaseStatusView(
            id=_case_global_id(case.id),
            number=case.number,
            status=case.status,
            outcome=case.outcome,
            for_child=case.subject_id != case.requester_id,
            created_at=case.created_at,
            submitted_at=case.submitted_at,
            sla_due_at=case.sla_due_at,
            answered_at=case.answered_at,
            closed_at=case.closed_at,
            cancelled_at=case.cancelled_at,
            overdue=_overdue(case, ctx.now),
            payment_status=payment,
        )

    @strawberry.field(
        description="Integrator accounts with READ_CLOSED_JOURNAL_NOTES: the approved journal notes of a "
        "closed case (not found until it is closed). Each note read is in the patient's access log."
    )
    async def closed_case_journal_notes(
        self, info: Info, case_id: strawberry.ID
    ) -> list[ClosedCaseJournalNote]:
        ctx = await info.context.read()
        accounts.require_scope(ctx, models.IntegratorScope.READ_CLOSED_JOURNAL_NOTES)
        case = await _case(ctx, global_uuid(case_id))
        if case.status is not models.CaseStatus.CLOSED:
            raise NotFound("Fant ikke en avsluttet sak.", field="caseId")
        notes = await ctx.session.scalars(
            select(models.JournalNote)
            .where(
                models.JournalNote.case_id == case.id,
                models.JournalNote.status == models.JournalNoteStatus.APPROVED,
            )
            .order_by(models.JournalNote.created_at)
        )
        out = []
        for note in notes:
            text, _ = content.note_content(ctx.platform.keyring, case, note)
            await accounts.log_read(
                ctx, person_id=case.subject_id, object_type="journal_note", object_id=str(note.id)
            )
            out.append(
                ClosedCaseJournalNote(
                    id=strawberry.ID(relay.to_base64("JournalNote", str(note.id))),
                    approved_at=note.approved_at,
                    text=text,
                )
            )
        return out


@strawberry.type
class IntegratorMutation:
    @strawberry.mutation(
        description="Operators: make an integrator account; its token is in the answer, this once."
    )
    async def create_integrator_account(
        self, info: Info, input: CreateIntegratorAccountInput
    ) -> IntegratorTokenPayload:
        async def work(ctx: Ctx) -> accounts.WithToken:
            return await accounts.create(ctx, name=input.name, scopes=list(input.scopes))

        made, errors = await mutate(info, work)
        if made is None:
            return IntegratorTokenPayload(errors=errors)
        return IntegratorTokenPayload(account=IntegratorAccount.of(made.account), token=made.token, errors=[])

    @strawberry.mutation(
        description="Operators: end an integrator account; its token stands for nobody from now on."
    )
    async def revoke_integrator_account(
        self, info: Info, input: RevokeIntegratorAccountInput
    ) -> IntegratorAccountPayload:
        async def work(ctx: Ctx) -> models.IntegratorAccount:
            try:
                account_id = uuid.UUID(str(input.id))
            except ValueError:
                raise NotFound("Fant ikke integrasjonskontoen.", field="id") from None
            return await accounts.revoke(ctx, account_id)

        account, errors = await mutate(info, work)
        return IntegratorAccountPayload(
            account=IntegratorAccount.of(account) if account else None, errors=errors
        )


async def _case(ctx: Ctx, case_id: uuid.UUID) -> models.Case:
    case = await ctx.session.get(models.Case, case_id)
    if case is None:
        raise NotFound("Fant ikke saken.", field="id")
    return case


def _overdue(case: models.Case, now: datetime) -> bool:
    if case.sla_due_at is None or case.answered_at is not None or case.cancelled_at is not None:
        return False
    return is_overdue(case.sla_due_at, now)
