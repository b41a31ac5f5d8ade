"""Payment: reserve the fee when a case is submitted, capture it when the case closes.

Status is derived from the amounts (authorized/captured/released/refunded), never from a provider's
label. A webhook only says "something changed: re-fetch" (``parse_webhook`` returns the payment id).
Every modifying call carries an idempotency key: the same key with the same request returns the first
result; the same key with a different request raises ``IdempotencyConflict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from legetime.core.platform.errors import ErrorCode, ProviderError
from legetime.core.platform.money import Money


class PaymentStatus(StrEnum):
    PENDING = "pending"  # created, waiting for the payer (redirect/app)
    AUTHORIZED = "authorized"  # reserved on the card
    CAPTURED = "captured"  # charged (fully)
    PARTIALLY_CAPTURED = "partially_captured"
    RELEASED = "released"  # reservation cancelled, nothing charged
    REFUNDED = "refunded"  # charged, then (fully) refunded
    DECLINED = "declined"
    EXPIRED = "expired"  # the authorization ran out before capture


@dataclass(frozen=True)
class PaymentAmounts:
    """The provider's aggregate amounts in minor units: the source of truth for the status."""

    authorized: int = 0
    captured: int = 0
    released: int = 0
    refunded: int = 0


def derive_status(
    amounts: PaymentAmounts, *, declined: bool = False, expired: bool = False, pending: bool = False
) -> PaymentStatus:
    if declined:
        return PaymentStatus.DECLINED
    if amounts.refunded and amounts.refunded >= amounts.captured:
        return PaymentStatus.REFUNDED
    if amounts.captured:
        # A partial capture whose remainder was released is settled: nothing more can be captured.
        if amounts.captured + amounts.released >= amounts.authorized:
            return PaymentStatus.CAPTURED
        return PaymentStatus.PARTIALLY_CAPTURED
    if amounts.released and amounts.released >= amounts.authorized:
        return PaymentStatus.RELEASED
    if expired:
        return PaymentStatus.EXPIRED
    if amounts.authorized:
        return PaymentStatus.AUTHORIZED
    return PaymentStatus.PENDING if pending else PaymentStatus.DECLINED


def webhook_rejected(reason: str) -> ProviderError:
    """What ``parse_webhook`` raises for a notification that is not genuine (the route answers 400)."""
    return ProviderError(f"webhook rejected: {reason}", code=ErrorCode.INVALID)


class PaymentMethodKind(StrEnum):
    CARD = "card"
    WALLET = "wallet"  # Vipps and the like: the payer approves in an app


@dataclass(frozen=True)
class PaymentOption:
    """One way to pay that a provider offers, as the patient is shown it (``paymentMethods``)."""

    kind: PaymentMethodKind
    label: str
    """Shown to the patient, in Norwegian: "Vipps", "Betalingskort"."""
    method: str | None = None
    """Passed back as ``ReserveRequest.payment_method`` when the patient picks this option."""


CARD_ONLY = (PaymentOption(PaymentMethodKind.CARD, "Betalingskort"),)


def payment_options(provider: object) -> tuple[PaymentOption, ...]:
    """The options a provider offers: its ``payment_options`` attribute, or a card if it has none."""
    return tuple(getattr(provider, "payment_options", CARD_ONLY))


@dataclass(frozen=True)
class ReserveRequest:
    amount: Money
    reference: str
    """Our reference (the case number); shown to the payer by some providers."""
    idempotency_key: str
    return_url: str | None = None
    payment_method: str | None = None
    """A provider-specific token (the fake provider's test cards, a wallet phone number …)."""
    description: str = "Digital legetime"


class PaymentActionKind(StrEnum):
    REDIRECT = "redirect"
    """Send the payer to ``url`` (the provider's page, its app); she comes back to the ``return_url``."""
    CLIENT_SECRET = "client_secret"
    """The provider's own script confirms in the payer's browser (3-D Secure, wallets), with
    ``client_secret`` and the provider's ``publishable_key``."""


@dataclass(frozen=True)
class PaymentAction:
    """What the payer's client needs to approve a PENDING payment.

    A client secret lets its holder confirm the payment: it is never logged (hidden from ``repr``), never
    stored by the core, and shown only to the case's patient. The provider reads it afresh (``get``)."""

    kind: PaymentActionKind
    url: str | None = None
    """``REDIRECT``: where to send the payer. ``CLIENT_SECRET``: the provider's own page, if it has one."""
    client_secret: str | None = field(default=None, repr=False)
    publishable_key: str | None = None
    """The provider's public key for its script in the browser (not a secret)."""


@dataclass(frozen=True)
class Payment:
    provider: str
    payment_id: str
    amount: Money
    amounts: PaymentAmounts
    status: PaymentStatus
    expires_at: datetime | None = None
    """When the authorization lapses: capture or release before this."""
    action_url: str | None = None
    """Where to send the payer to approve (3-D Secure, Vipps app), while PENDING."""
    action: PaymentAction | None = None
    """What the payer's client needs while PENDING when a URL is not enough (a client secret for the
    provider's script). Providers that only redirect leave it None: ``next_action`` makes a ``REDIRECT``
    of ``action_url``."""

    def next_action(self) -> PaymentAction | None:
        """While PENDING: how the payer approves (``action``, else a redirect to ``action_url``)."""
        if self.status is not PaymentStatus.PENDING:
            return None
        if self.action is not None:
            return self.action
        if self.action_url:
            return PaymentAction(PaymentActionKind.REDIRECT, url=self.action_url)
        return None


@dataclass(frozen=True)
class WebhookEvent:
    payment_id: str
    event: str
    event_id: str | None = None
    """What identifies this event at the provider (Stripe's event id, Vipps' pspReference and event name,
    Swedbank Pay's transaction number): a delivery of the same event again enqueues nothing more. Without
    one, the body identifies it."""


@runtime_checkable
class PaymentProvider(Protocol):
    """Optionally also ``payment_options: Sequence[PaymentOption]`` (default: one card option)."""

    name: str

    async def reserve(self, request: ReserveRequest) -> Payment:
        """Authorize ``amount``. Raises ``PaymentDeclined`` when the card is refused. When the payer must
        approve first: PENDING, with ``action_url`` and/or ``action`` (see ``Payment.next_action``)."""
        ...

    async def get(self, payment_id: str) -> Payment: ...

    async def capture(self, payment_id: str, amount: Money, idempotency_key: str) -> Payment:
        """Charge (part of) the authorization. Raises ``PaymentExpired`` after the authorization lapsed."""
        ...

    async def release(self, payment_id: str, idempotency_key: str) -> Payment:
        """Cancel what is authorized and not captured."""
        ...

    async def refund(self, payment_id: str, amount: Money, idempotency_key: str) -> Payment: ...

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes, url: str) -> WebhookEvent:
        """Verify a webhook (signature, freshness) and say which payment to re-fetch."""
        ...
