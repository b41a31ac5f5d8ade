"""The patient's rights (export, rectification, restriction, erasure), what a guardian may see, and the
operators' purge. The rules live in ``legetime.core.privacy`` and ``legetime.core.protection.retention``."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import strawberry
from sqlalchemy import select
from strawberry.scalars import JSON

from legetime.core.appointments.retention import run_appointment_retention
from legetime.core.consultation.access import require_person
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db import models
from legetime.core.platform.errors import ErrorCode, Forbidden
from legetime.core.privacy import rights as privacy
from legetime.core.protection.retention import PurgeSummary, run_retention
from legetime.schema.case_api import CasePayload
from legetime.schema.case_types import Case
from legetime.schema.context import Info
from legetime.schema.erasure_types import ErasureAccount
from legetime.schema.errors import Error
from legetime.schema.login import Me, load_me
from legetime.schema.mutation import global_uuid, mutate
from legetime.schema.pagination import check_page_size


@strawberry.type
class ErasurePayload:
    erasure: ErasureAccount | None = None
    errors: list[Error]


@strawberry.type
class MePayload:
    me: Me | None = None
    errors: list[Error]


@strawberry.input
class RectifyMyNameInput:
    given_name: str
    family_name: str


@strawberry.input
class RestrictProcessingInput:
    restricted: bool


@strawberry.input
class SetWithheldFromGuardianInput:
    message_id: strawberry.ID | None = None
    note_id: strawberry.ID | None = None
    withheld: bool = True


@strawberry.input
class RunPurgeInput:
    dry_run: bool = strawberry.field(default=True, description="Count only (the default), or delete.")


@strawberry.type(description="One run of the purge: retention, withdrawn consent or erasure.")
class RetentionRun:
    id: strawberry.ID
    rule: str
    trigger: str
    dry_run: bool
    cases: int
    messages: int
    images: int
    storage_failures: int = strawberry.field(
        description="Stored images it could not delete at once (unreadable already: their key is gone); "
        "a `storage.delete` job retries them, see `operatorOverview { jobs }`."
    )
    appointments: int = strawberry.field(
        description="Appointments whose message and forms it deleted (rule `appointment_retention`, or a "
        "patient's `erasure_request`)."
    )
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: models.RetentionRun) -> RetentionRun:
        return cls(
            id=strawberry.ID(str(row.id)),
            rule=row.rule,
            trigger=row.trigger,
            dry_run=row.dry_run,
            cases=row.cases,
            messages=row.messages,
            images=row.images,
            storage_failures=row.storage_failures,
            appointments=row.appointments,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )


@strawberry.type
class RunPurgePayload:
    cases: int = 0
    messages: int = 0
    images: int = 0
    appointments: int = strawberry.field(default=0, description="Appointments whose content was deleted.")
    dry_run: bool = True
    errors: list[Error]


@strawberry.type
class PrivacyQuery:
    @strawberry.field(
        description="Everything held about you (access and portability): your data, your cases and those "
        "you opened for your children, your appointments and those you booked for your children, consent "
        "history and access log, as one JSON document (logged)."
    )
    async def export_my_data(self, info: Info) -> JSON:
        ctx = await info.context.read()
        return cast(JSON, await privacy.export_my_data(ctx))

    @strawberry.field(description="Operators: the latest purge runs, newest first.")
    async def retention_runs(self, info: Info, first: int = 20) -> list[RetentionRun]:
        ctx = await info.context.read()
        _require_operator(ctx)
        check_page_size(first, None, ctx.platform.settings.max_page_size)
        rows = await ctx.session.scalars(
            select(models.RetentionRun).order_by(models.RetentionRun.started_at.desc()).limit(first)
        )
        return [RetentionRun.of(row) for row in rows]


def _require_operator(ctx: Ctx) -> None:
    require_person(ctx.actor)
    if not ctx.actor.is_operator:
        raise Forbidden("Bare driftsoperatører har tilgang.")


@strawberry.type
class PrivacyMutation:
    @strawberry.mutation(description="Correct your name (a later BankID login no longer overwrites it).")
    async def rectify_my_name(self, info: Info, input: RectifyMyNameInput) -> MePayload:
        async def work(ctx: Ctx) -> Me | None:
            await privacy.rectify_name(ctx, input.given_name, input.family_name)
            return await load_me(info, ctx)

        me, errors = await mutate(info, work)
        return MePayload(me=me, errors=errors)

    @strawberry.mutation(
        description="Restrict processing of your data to storage and legal duties, or lift it."
    )
    async def restrict_processing(self, info: Info, input: RestrictProcessingInput) -> MePayload:
        async def work(ctx: Ctx) -> Me | None:
            await privacy.restrict_processing(ctx, input.restricted)
            return await load_me(info, ctx)

        me, errors = await mutate(info, work)
        return MePayload(me=me, errors=errors)

    @strawberry.mutation(
        description="Erase what no legal duty keeps (the communication of your cases, your phone number); "
        "the answer lists what is kept and why."
    )
    async def request_erasure(self, info: Info) -> ErasurePayload:
        account, errors = await mutate(info, privacy.request_erasure)
        if account is not None:  # committed: her sockets close too, in every process
            info.context.platform.live.end_sessions(person_id=info.context.actor.person_id)
        return ErasurePayload(erasure=ErasureAccount.of(account) if account else None, errors=errors)

    @strawberry.mutation(
        description="Clinicians: keep a message or journal note from the guardian of a patient aged 12–15."
    )
    async def set_withheld_from_guardian(
        self, info: Info, input: SetWithheldFromGuardianInput
    ) -> CasePayload:
        async def work(ctx: Ctx) -> models.Case:
            message_id = global_uuid(input.message_id, field="messageId") if input.message_id else None
            note_id = global_uuid(input.note_id, field="noteId") if input.note_id else None
            return await privacy.set_withheld_from_guardian(
                ctx, message_id=message_id, note_id=note_id, withheld=input.withheld
            )

        case, errors = await mutate(info, work)
        return CasePayload(case=Case.of(case) if case else None, errors=errors)

    @strawberry.mutation(
        description="Operators: delete the communication of cases and the content of appointments past their "
        "retention time (or count them)."
    )
    async def run_purge(self, info: Info, input: RunPurgeInput) -> RunPurgePayload:
        actor = info.context.actor
        if not actor.is_operator:
            code = ErrorCode.UNAUTHENTICATED if actor.is_anonymous else ErrorCode.FORBIDDEN
            message = "Du må logge inn." if actor.is_anonymous else "Bare driftsoperatører har tilgang."
            return RunPurgePayload(errors=[Error(field=None, code=code, message=message)])
        platform = info.context.platform
        summary: PurgeSummary = await run_retention(
            platform, actor=actor, trigger="graphql", dry_run=input.dry_run
        )
        appointments = await run_appointment_retention(
            platform, actor=actor, trigger="graphql", dry_run=input.dry_run
        )
        return RunPurgePayload(
            cases=summary.cases,
            messages=summary.messages,
            images=summary.images,
            appointments=appointments.appointments,
            dry_run=summary.dry_run,
            errors=[],
        )
