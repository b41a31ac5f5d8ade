"""Paying: which payment methods are offered, and confirming a payment the payer approved elsewhere
(3-D Secure, the Vipps app). Webhooks arrive at ``/webhooks/payments/<provider>`` (``schema/app.py``)."""

from __future__ import annotations

import strawberry

from legetime.core.consultation import submission
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.providers import Capability
from legetime.core.platform.providers.payment import PaymentMethodKind as CorePaymentMethodKind
from legetime.core.platform.providers.payment import payment_options
from legetime.schema.context import Info
from legetime.schema.mutation import global_uuid, mutate
from legetime.schema.payment_types import ConfirmPaymentPayload, confirm_payload

PaymentMethodKind = strawberry.enum(
    CorePaymentMethodKind, name="PaymentMethodKind", description="Card, or a wallet app such as Vipps."
)


@strawberry.type(
    description="A way to pay the fee. Pass `provider` as `paymentProvider` and `method` as `paymentMethod` "
    "to submitCase."
)
class PaymentMethod:
    provider: str
    method: str | None = strawberry.field(description="The provider's own name for it; null: its default.")
    kind: PaymentMethodKind  # type: ignore[valid-type]
    label: str = strawberry.field(description="What to show the patient (Norwegian): Vipps, Betalingskort.")
    description: str = strawberry.field(description="The provider, for operators.")
    is_default: bool


@strawberry.input
class ConfirmPaymentInput:
    case_id: strawberry.ID


@strawberry.type
class PaymentQuery:
    @strawberry.field(description="The payment methods the patient can choose between (card, Vipps …).")
    def payment_methods(self, info: Info) -> list[PaymentMethod]:
        enabled = info.context.platform.providers.enabled.get(Capability.PAYMENT, [])
        methods = [
            PaymentMethod(
                provider=p.spec.name,
                method=option.method,
                kind=option.kind,
                label=option.label,
                description=p.spec.description,
                is_default=False,
            )
            for p in enabled
            for option in payment_options(p.instance)
        ]
        if methods:
            methods[0].is_default = True
        return methods


@strawberry.type
class PaymentMutation:
    @strawberry.mutation(
        description="Back from approving the payment (3-D Secure, the Vipps app, the provider's script): the "
        "case is submitted when the provider confirms the reservation. While it still waits, "
        "`paymentAction` says again how the payer approves."
    )
    async def confirm_payment(self, info: Info, input: ConfirmPaymentInput) -> ConfirmPaymentPayload:
        async def work(ctx: Ctx) -> submission.PaymentStep:
            return await submission.confirm_payment(ctx, global_uuid(input.case_id))

        return confirm_payload(*await mutate(info, work))
