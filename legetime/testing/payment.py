"""The contract every payment provider keeps.

Its driver holds the provider-specific knobs: which card declines, how an authorization is made to lapse,
how the payer approves or refuses on the provider's page, how a webhook is signed or forged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from legetime.sdk import (
    ErrorCode,
    IdempotencyConflict,
    Money,
    Payment,
    PaymentDeclined,
    PaymentExpired,
    PaymentProvider,
    PaymentStateError,
    PaymentStatus,
    ProviderError,
    ProviderSpec,
    ReserveRequest,
)
from legetime.testing._common import BuildProvider, build_default, in_event_loop

FEE = Money(35000, "NOK")
WEBHOOK_URL = "https://legetime.example/plugins/webhook"
"""Where the suite says a webhook arrived, unless the driver's webhook names its own URL."""
Webhook = tuple[Mapping[str, str], bytes] | tuple[Mapping[str, str], bytes, str]
"""Headers and body, and the URL it was sent to when that is part of it (else ``WEBHOOK_URL``)."""


@dataclass(frozen=True)
class PaymentDriver:
    """How the suite makes one payment provider do what the contract needs."""

    approved_method: str | None
    """``payment_method`` that the payer approves: authorized at once, or after ``approve`` when the
    provider's reservations wait for the payer (Vipps app, a hosted card page)."""
    declined_method: str | None
    """``payment_method`` that the issuer declines at once (``reserve`` raises ``PaymentDeclined``); None for
    providers where the payer or issuer declines later, on the provider's page (see ``decline``)."""
    reserve_expired: Callable[[Any, ReserveRequest], Awaitable[Payment]]
    """Reserve so that the authorization has already lapsed."""
    signed_webhook: Callable[[Any, str, datetime], Webhook]
    """A genuine webhook about a payment, signed at the given moment."""
    forged_webhook: Callable[[Any, str], Webhook]
    """A webhook about a payment signed with the wrong key."""
    pending_method: str | None = None
    """``payment_method`` whose reservation waits for the payer (PENDING, with a ``next_action()``)."""
    approve: Callable[[Any, Payment], Awaitable[None]] | None = None
    """The payer approves a pending reservation (on the provider's page or in its app)."""
    decline: Callable[[Any, Payment], Awaitable[None]] | None = None
    """The payer refuses a pending reservation, or the issuer declines it (on the provider's page/app)."""
    build: BuildProvider = build_default
    """Builds the provider (and starts whatever fake it talks to) for one test."""
    dated_webhooks: bool = True
    """False for providers whose callbacks carry no time (unsigned "re-fetch the payment" notices): an
    old one only causes a harmless re-fetch, so there is no age to reject."""


class Keys:
    """Fresh idempotency keys per test, so a provider with shared state (a sandbox) is not confused."""

    def __init__(self, tmp_path: Path) -> None:
        self._prefix = hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]

    def __call__(self, name: str) -> str:
        return f"contract-{self._prefix}-{name}"


def reserve_request(driver: PaymentDriver, key: str, **changes: Any) -> ReserveRequest:
    request = ReserveRequest(
        amount=FEE,
        reference="LT-2024-000123",
        idempotency_key=key,
        return_url="https://legetime.example/betaling/ferdig",
        payment_method=driver.approved_method,
    )
    return replace(request, **changes)


async def authorize(provider: Any, driver: PaymentDriver, request: ReserveRequest) -> Payment:
    """Reserve, and let the payer approve when the provider waits for her; return the payment as it is."""
    payment: Payment = await provider.reserve(request)
    if payment.status is PaymentStatus.PENDING:
        assert driver.approve is not None, f"{provider.name}: a reservation waits; the driver cannot approve"
        assert payment.next_action(), "a pending reservation tells how the payer approves"
        await driver.approve(provider, payment)
        payment = await provider.get(payment.payment_id)
    return payment


async def reserved(provider: Any, driver: PaymentDriver, key: Keys) -> Payment:
    payment = await authorize(provider, driver, reserve_request(driver, key("reserve")))
    assert payment.status is PaymentStatus.AUTHORIZED
    return payment


async def deliver(provider: Any, webhook: Webhook) -> Any:
    headers, body, *sent_to = webhook
    return await provider.parse_webhook(headers, body, sent_to[0] if sent_to else WEBHOOK_URL)


class PaymentContract:
    """The payment contract (see ``legetime.testing`` for how to run it against a provider)."""

    pytestmark = pytest.mark.legetime_contract

    @pytest.fixture
    def key(self, tmp_path: Path) -> Keys:
        return Keys(tmp_path)

    def test_implements_the_protocol(self, legetime_provider: Any, legetime_spec: ProviderSpec) -> None:
        assert isinstance(legetime_provider, PaymentProvider)
        assert legetime_provider.name == legetime_spec.name

    @in_event_loop
    async def test_reserve_authorizes_in_minor_units(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        payment = await authorize(
            legetime_provider, legetime_driver, reserve_request(legetime_driver, key("reserve"))
        )
        assert payment.status is PaymentStatus.AUTHORIZED
        assert payment.provider == legetime_provider.name
        assert payment.amount == Money(35000, "NOK")
        assert payment.amounts.authorized == 35000
        assert (payment.amounts.captured, payment.amounts.released, payment.amounts.refunded) == (0, 0, 0)
        assert payment.expires_at is not None
        assert payment.expires_at > datetime.now(UTC)

    @in_event_loop
    async def test_reserve_replay_returns_the_first_result(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        request = reserve_request(legetime_driver, key("reserve"))
        first = await authorize(legetime_provider, legetime_driver, request)
        again = await legetime_provider.reserve(request)
        assert again.payment_id == first.payment_id
        assert again.amounts.authorized == 35000
        assert (await legetime_provider.get(first.payment_id)).amounts.authorized == 35000

    @in_event_loop
    async def test_reserve_key_reused_for_another_request_conflicts(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        await legetime_provider.reserve(reserve_request(legetime_driver, key("reserve")))
        with pytest.raises(IdempotencyConflict):
            await legetime_provider.reserve(
                reserve_request(legetime_driver, key("reserve"), amount=Money(50000, "NOK"))
            )

    @in_event_loop
    async def test_full_capture_once_even_when_retried(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        payment = await reserved(legetime_provider, legetime_driver, key)
        captured = await legetime_provider.capture(payment.payment_id, FEE, key("capture"))
        assert captured.status is PaymentStatus.CAPTURED
        assert captured.amounts.captured == 35000
        retried = await legetime_provider.capture(payment.payment_id, FEE, key("capture"))
        assert retried.amounts.captured == 35000
        assert (await legetime_provider.get(payment.payment_id)).amounts.captured == 35000

    @in_event_loop
    async def test_capture_key_reused_for_another_request_conflicts(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        payment = await reserved(legetime_provider, legetime_driver, key)
        await legetime_provider.capture(payment.payment_id, Money(10000, "NOK"), key("capture"))
        with pytest.raises(IdempotencyConflict):
            await legetime_provider.capture(payment.payment_id, Money(20000, "NOK"), key("capture"))

    @in_event_loop
    async def test_capture_more_than_authorized_is_refused(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        payment = await reserved(legetime_provider, legetime_driver, key)
        with pytest.raises(PaymentStateError):
            await legetime_provider.capture(payment.payment_id, Money(35001, "NOK"), key("capture"))
        assert (await legetime_provider.get(payment.payment_id)).amounts.captured == 0

    @in_event_loop
    async def test_capture_in_another_currency_is_refused(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        payment = await reserved(legetime_provider, legetime_driver, key)
        with pytest.raises(PaymentStateError):
            await legetime_provider.capture(payment.payment_id, Money(35000, "SEK"), key("capture"))

    @in_event_loop
    async def test_release_then_capture_is_refused(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        payment = await reserved(legetime_provider, legetime_driver, key)
        released = await legetime_provider.release(payment.payment_id, key("release"))
        assert released.status is PaymentStatus.RELEASED
        assert released.amounts.released == 35000
        with pytest.raises(PaymentStateError):
            await legetime_provider.capture(payment.payment_id, FEE, key("capture"))
        fetched = await legetime_provider.get(payment.payment_id)
        assert fetched.status is PaymentStatus.RELEASED
        assert fetched.amounts.captured == 0

    @in_event_loop
    async def test_refund_up_to_what_was_captured(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        payment = await reserved(legetime_provider, legetime_driver, key)
        await legetime_provider.capture(payment.payment_id, FEE, key("capture"))
        partly = await legetime_provider.refund(payment.payment_id, Money(10000, "NOK"), key("refund-1"))
        assert partly.amounts.refunded == 10000
        assert partly.status is not PaymentStatus.REFUNDED
        with pytest.raises(PaymentStateError):
            await legetime_provider.refund(payment.payment_id, Money(25001, "NOK"), key("refund-2"))
        refunded = await legetime_provider.refund(payment.payment_id, Money(25000, "NOK"), key("refund-3"))
        assert refunded.status is PaymentStatus.REFUNDED
        assert refunded.amounts.refunded == 35000
        assert (await legetime_provider.get(payment.payment_id)).status is PaymentStatus.REFUNDED

    @in_event_loop
    async def test_refund_before_capture_is_refused(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        payment = await reserved(legetime_provider, legetime_driver, key)
        with pytest.raises(PaymentStateError):
            await legetime_provider.refund(payment.payment_id, Money(100, "NOK"), key("refund"))

    def test_the_driver_can_make_a_decline(self, legetime_driver: PaymentDriver) -> None:
        assert legetime_driver.declined_method or legetime_driver.decline, (
            "a driver says how a payment is declined"
        )

    @in_event_loop
    async def test_a_payment_declined_on_the_providers_page_authorizes_nothing(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        if legetime_driver.decline is None:
            pytest.skip(f"{legetime_provider.name} declines at once (see the test of declined_method)")
        request = reserve_request(
            legetime_driver, key("declined"), payment_method=legetime_driver.pending_method
        )
        pending = await legetime_provider.reserve(request)
        await legetime_driver.decline(legetime_provider, pending)
        declined = await legetime_provider.get(pending.payment_id)
        assert declined.status is PaymentStatus.DECLINED
        assert declined.amounts.authorized == 0 and declined.action_url is None
        with pytest.raises(PaymentStateError):
            await legetime_provider.capture(pending.payment_id, FEE, key("capture"))
        again = await legetime_provider.reserve(request)  # a retry names the same declined payment
        assert again.payment_id == pending.payment_id and again.status is PaymentStatus.DECLINED

    @in_event_loop
    async def test_declined_card_authorizes_nothing(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        if legetime_driver.declined_method is None:
            pytest.skip(
                f"{legetime_provider.name}: declines happen on the provider's page (see the test of decline)"
            )
        request = reserve_request(
            legetime_driver, key("declined"), payment_method=legetime_driver.declined_method
        )
        with pytest.raises(PaymentDeclined) as declined:
            await legetime_provider.reserve(request)
        assert declined.value.code is ErrorCode.PAYMENT_DECLINED
        assert declined.value.message  # shown to the patient
        with pytest.raises(PaymentDeclined):  # a retry replays the decline, it does not authorize
            await legetime_provider.reserve(request)
        payment_id = getattr(declined.value, "payment_id", None)
        if payment_id is not None:  # providers that record the attempt must show nothing authorized
            fetched = await legetime_provider.get(payment_id)
            assert fetched.status is PaymentStatus.DECLINED
            assert fetched.amounts.authorized == 0

    @in_event_loop
    async def test_lapsed_authorization_cannot_be_captured(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        payment = await legetime_driver.reserve_expired(
            legetime_provider, reserve_request(legetime_driver, key("reserve"))
        )
        with pytest.raises(PaymentExpired):
            await legetime_provider.capture(payment.payment_id, FEE, key("capture"))
        fetched = await legetime_provider.get(payment.payment_id)
        assert fetched.status is PaymentStatus.EXPIRED
        assert fetched.amounts.captured == 0

    @in_event_loop
    async def test_pending_reservation_holds_nothing_until_the_payer_approves(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        if legetime_driver.pending_method is None:
            pytest.skip(f"{legetime_provider.name} authorizes at once; no reservation waits for the payer")
        assert legetime_driver.approve is not None
        request = reserve_request(
            legetime_driver, key("reserve"), payment_method=legetime_driver.pending_method
        )
        pending = await legetime_provider.reserve(request)
        assert pending.status is PaymentStatus.PENDING
        action = pending.next_action()
        assert action is not None, "a pending reservation tells how the payer approves"
        assert action.url or action.client_secret
        assert action.client_secret is None or action.client_secret not in repr(pending)  # never logged
        assert pending.amounts.authorized == 0
        with pytest.raises(PaymentStateError):
            await legetime_provider.capture(pending.payment_id, FEE, key("capture"))
        await legetime_driver.approve(legetime_provider, pending)
        approved = await legetime_provider.get(pending.payment_id)
        assert approved.status is PaymentStatus.AUTHORIZED
        assert approved.amounts.authorized == 35000
        assert approved.action_url is None and approved.next_action() is None

    @in_event_loop
    async def test_abandoned_pending_reservation_can_be_cancelled(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        if legetime_driver.pending_method is None:
            pytest.skip(f"{legetime_provider.name} authorizes at once; no reservation waits for the payer")
        request = reserve_request(
            legetime_driver, key("reserve"), payment_method=legetime_driver.pending_method
        )
        pending = await legetime_provider.reserve(request)
        cancelled = await legetime_provider.release(pending.payment_id, key("release"))
        assert cancelled.amounts.authorized == 0
        assert cancelled.status in (PaymentStatus.DECLINED, PaymentStatus.RELEASED)
        fetched = await legetime_provider.get(pending.payment_id)
        assert fetched.status is cancelled.status and fetched.action_url is None

    @in_event_loop
    async def test_unknown_payment_is_a_state_error(self, legetime_provider: Any, key: Keys) -> None:
        with pytest.raises(PaymentStateError):
            await legetime_provider.get("no-such-payment")
        with pytest.raises(PaymentStateError):
            await legetime_provider.capture("no-such-payment", FEE, key("capture"))

    @in_event_loop
    async def test_get_reflects_each_step(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        payment = await reserved(legetime_provider, legetime_driver, key)
        assert (await legetime_provider.get(payment.payment_id)).status is PaymentStatus.AUTHORIZED
        await legetime_provider.capture(payment.payment_id, FEE, key("capture"))
        fetched = await legetime_provider.get(payment.payment_id)
        assert fetched.status is PaymentStatus.CAPTURED
        assert fetched.payment_id == payment.payment_id
        assert fetched.amount == FEE

    @in_event_loop
    async def test_valid_webhook_names_the_payment(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        payment = await reserved(legetime_provider, legetime_driver, key)
        webhook = legetime_driver.signed_webhook(legetime_provider, payment.payment_id, datetime.now(UTC))
        event = await deliver(legetime_provider, webhook)
        assert event.payment_id == payment.payment_id
        assert event.event
        # The same delivery names the same event, so the platform takes a redelivery once.
        assert (await deliver(legetime_provider, webhook)).event_id == event.event_id
        assert event.event_id is None or (isinstance(event.event_id, str) and event.event_id)

    @in_event_loop
    async def test_forged_webhook_is_rejected(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        payment = await reserved(legetime_provider, legetime_driver, key)
        with pytest.raises(ProviderError) as rejected:
            await deliver(
                legetime_provider, legetime_driver.forged_webhook(legetime_provider, payment.payment_id)
            )
        assert rejected.value.code is ErrorCode.INVALID

    @in_event_loop
    async def test_old_webhook_is_rejected(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        if not legetime_driver.dated_webhooks:
            pytest.skip(
                f"{legetime_provider.name}: callbacks carry no time; an old one only causes a re-fetch"
            )
        payment = await reserved(legetime_provider, legetime_driver, key)
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        with pytest.raises(ProviderError) as rejected:
            await deliver(
                legetime_provider,
                legetime_driver.signed_webhook(legetime_provider, payment.payment_id, an_hour_ago),
            )
        assert rejected.value.code is ErrorCode.INVALID

    @in_event_loop
    async def test_tampered_webhook_body_is_rejected(
        self, legetime_provider: Any, legetime_driver: PaymentDriver, key: Keys
    ) -> None:
        payment = await reserved(legetime_provider, legetime_driver, key)
        other = await authorize(
            legetime_provider, legetime_driver, reserve_request(legetime_driver, key("other"))
        )
        headers, body, *sent_to = legetime_driver.signed_webhook(
            legetime_provider, payment.payment_id, datetime.now(UTC)
        )
        tampered = body.replace(payment.payment_id.encode(), other.payment_id.encode())
        assert tampered != body
        with pytest.raises(ProviderError) as rejected:
            await deliver(legetime_provider, (headers, tampered, *sent_to))  # type: ignore[arg-type]
        assert rejected.value.code is ErrorCode.INVALID
