"""What a submit or a payment confirmation answers: the case, and while the payment waits for the payer,
how she approves it (``PaymentAction``: a page to go to, or a client secret for the provider's script)."""

from __future__ import annotations

from typing import Annotated, TypedDict

import strawberry

from legetime.core.consultation.submission import PaymentStep
from legetime.core.platform.providers.payment import PaymentAction as CorePaymentAction
from legetime.core.platform.providers.payment import PaymentActionKind
from legetime.schema.case_types import Case
from legetime.schema.errors import Error


@strawberry.type(
    description="Send the payer to `url` (3-D Secure, the Vipps app, Swedbank Pay's page); she comes back "
    "to the `returnUrl` given to submitCase, and the client calls confirmPayment."
)
class PaymentRedirect:
    url: str


@strawberry.type(
    description="The payer approves in the provider's own script in her browser (for `stripe`: Stripe.js, "
    "with the Payment Element or `handleNextAction`): 3-D Secure, wallets. Load the script with "
    "`publishableKey` and confirm with `clientSecret`; then call confirmPayment (a webhook may come first). "
    "The secret is for this payer only: never store or log it."
)
class PaymentClientSecret:
    provider: str = strawberry.field(description="Whose script to load (`stripe`).")
    client_secret: str
    publishable_key: str


PaymentAction = Annotated[
    PaymentRedirect | PaymentClientSecret,
    strawberry.union("PaymentAction", description="How the payer approves a payment that waits for her."),
]


def payment_action(provider: str, action: CorePaymentAction | None) -> PaymentAction | None:
    if action is None:
        return None
    if action.kind is PaymentActionKind.CLIENT_SECRET and action.client_secret and action.publishable_key:
        return PaymentClientSecret(
            provider=provider, client_secret=action.client_secret, publishable_key=action.publishable_key
        )
    return PaymentRedirect(url=action.url) if action.url else None


PAYMENT_ACTION = (
    "While the payment waits for the payer (the case is still a DRAFT): how she approves it. Null once "
    "the case is submitted. Only the case's patient (or her guardian) gets it."
)


@strawberry.type
class SubmitCasePayload:
    case: Case | None = None
    payment_action: PaymentAction | None = strawberry.field(default=None, description=PAYMENT_ACTION)
    errors: list[Error]


@strawberry.type
class ConfirmPaymentPayload:
    case: Case | None = None
    payment_action: PaymentAction | None = strawberry.field(default=None, description=PAYMENT_ACTION)
    errors: list[Error] = strawberry.field(
        description="PAYMENT_DECLINED when the approval failed: the case stays a DRAFT (it is returned too); "
        "submit again with a new idempotency key to try another card."
    )


def submit_payload(step: PaymentStep | None, errors: list[Error]) -> SubmitCasePayload:
    return SubmitCasePayload(**_fields(step, errors))


def confirm_payload(step: PaymentStep | None, errors: list[Error]) -> ConfirmPaymentPayload:
    return ConfirmPaymentPayload(**_fields(step, errors))


def _fields(step: PaymentStep | None, errors: list[Error]) -> _Fields:
    if step is None:
        return {"case": None, "payment_action": None, "errors": errors}
    if step.error is not None:
        errors = [*errors, Error.from_exception(step.error)]
    action = payment_action(step.provider or "", step.action)
    return {"case": Case.of(step.case), "payment_action": action, "errors": errors}


class _Fields(TypedDict):
    case: Case | None
    payment_action: PaymentAction | None
    errors: list[Error]
