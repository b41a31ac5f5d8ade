"""Operators: the on-duty number that SLA alerts are texted to. The rules live in
``legetime.core.consultation.sla_alerts``; docs/operations.md, "SLA alerts", describes the alerts."""

from __future__ import annotations

from datetime import datetime

import strawberry

from legetime.core.consultation import sla_alerts
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db import models
from legetime.schema.context import Info
from legetime.schema.errors import Error
from legetime.schema.mutation import mutate


@strawberry.type(description="The number texted when a case nears its deadline (SLA alerts).")
class OnDutyPhone:
    phone: str = strawberry.field(description="E.164, e.g. +4791234567.")
    changed_at: datetime

    @classmethod
    def of(cls, row: models.OnDutyPhone | None) -> OnDutyPhone | None:
        return None if row is None else cls(phone=row.phone, changed_at=row.changed_at)


@strawberry.input
class SetOnDutyPhoneInput:
    phone: str | None = strawberry.field(
        default=None,
        description="A mobile number (without a country code: of the platform's default country, "
        "LEGETIME_DEFAULT_PHONE_REGION); null or empty clears it.",
    )


@strawberry.type
class SetOnDutyPhonePayload:
    on_duty_phone: OnDutyPhone | None = strawberry.field(
        default=None, description="The number now set; null when cleared (or refused: see errors)."
    )
    errors: list[Error]


@strawberry.type
class SlaAlertQuery:
    @strawberry.field(description="Operators: the on-duty number for SLA alerts; null when none is set.")
    async def on_duty_phone(self, info: Info) -> OnDutyPhone | None:
        ctx = await info.context.read()
        return OnDutyPhone.of(await sla_alerts.on_duty_phone(ctx))


@strawberry.type
class SlaAlertMutation:
    @strawberry.mutation(
        description="Operators: set the number texted when a case nears its deadline, or clear it (null)."
    )
    async def set_on_duty_phone(self, info: Info, input: SetOnDutyPhoneInput) -> SetOnDutyPhonePayload:
        async def work(ctx: Ctx) -> OnDutyPhone | None:
            return OnDutyPhone.of(await sla_alerts.set_on_duty_phone(ctx, input.phone))

        row, errors = await mutate(info, work)
        return SetOnDutyPhonePayload(on_duty_phone=row, errors=errors)
