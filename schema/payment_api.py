"""Paying: which payment methods are offered, and confirming a payment the payer approved elsewhere
(3-D Secure, the Vipps app). Webhooks arrive at ``/webhooks/payments/<provider>`` (``schema/app.py``)."""

from __future__ import annotations

import strawberry

from core import payments
from core.ctx import Ctx
from core.db import models
from core.providers import Capability
from schema.case_api import CasePayload
from schema.case_types import Case
from schema.context import Info
from schema.mutation import global_uuid, mutate


@strawberry.type(description="A way to pay the fee: pass `provider` as `paymentProvider` to submitCase.")
class PaymentMethod:
    provider: str
    description: str
    is_default: bool


@strawberry.input
class ConfirmPaymentInput:
    case_id: strawberry.ID


@strawberry.type
class PaymentQuery:
    @strawberry.field(description="The payment methods the patient can choose between (card, Vipps …).")
    def payment_methods(self, info: Info) -> list[PaymentMethod]:
        registry = info.context.platform.providers
        enabled = registry.enabled.get(Capability.PAYMENT, [])
        return [
            PaymentMethod(provider=p.spec.name, description=p.spec.description, is_default=index == 0)
            for index, p in enumerate(enabled)
        ]


@strawberry.type
class PaymentMutation:
    @strawberry.mutation(
        description="Back from approving the payment (3-D Secure, the Vipps app): the case is submitted when "
        "the provider confirms the reservation."
    )
    async def confirm_payment(self, info: Info, input: ConfirmPaymentInput) -> CasePayload:
        async def work(ctx: Ctx) -> models.Case:
            return await payments.confirm_payment(ctx, global_uuid(input.case_id))

        case, errors = await mutate(info, work)
        return CasePayload(case=Case.of(case) if case else None, errors=errors)
