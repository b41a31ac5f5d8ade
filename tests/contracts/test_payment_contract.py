"""The contract every payment provider keeps, run against every provider the plugins offer.

Provider-specific knobs (which card declines, how an authorization is made to lapse, how a webhook is
signed or forged) live in ``DRIVERS``, keyed by provider name. A provider without a driver fails the
suite: a new provider is held to the contract from the day it is registered.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.errors import (
    ErrorCode,
    IdempotencyConflict,
    PaymentDeclined,
    PaymentExpired,
    PaymentStateError,
    ProviderError,
)
from core.money import Money
from core.providers import Capability, PaymentProvider, ProviderSpec
from core.providers.payment import Payment, PaymentStatus, ReserveRequest
from tests.support import BuildProvider, build_default, offered_specs

FEE = Money(35000, "NOK")
Webhook = tuple[Mapping[str, str], bytes]


@dataclass(frozen=True)
class PaymentDriver:
    """How the suite makes one provider do what the contract needs."""

    approved_method: str | None
    """``payment_method`` that is authorized at once."""
    declined_method: str
    """``payment_method`` that the issuer declines."""
    reserve_expired: Callable[[Any, ReserveRequest], Awaitable[Payment]]
    """Reserve so that the authorization has already lapsed."""
    signed_webhook: Callable[[Any, str, datetime], Webhook]
    """A genuine webhook about a payment, signed at the given moment."""
    forged_webhook: Callable[[Any, str], Webhook]
    """A webhook about a payment signed with the wrong key."""
    build: BuildProvider = build_default
    """Builds the provider (and starts whatever fake it talks to) for one test."""


# --- Drivers ---------------------------------------------------------------------------------------


async def _fake_reserve_expired(provider: Any, request: ReserveRequest) -> Payment:
    payment: Payment = await provider.reserve(replace(request, payment_method="card_expiring"))
    return payment


def _fake_signed_webhook(provider: Any, payment_id: str, at: datetime) -> Webhook:
    headers, body = provider.webhook_for(payment_id, "payment.captured", at=at)
    return headers, body


def _fake_forged_webhook(provider: Any, payment_id: str) -> Webhook:
    headers, body = provider.webhook_for(payment_id, "payment.captured")
    timestamp = headers["Fake-Signature"].split(",")[0].removeprefix("t=")
    forged = hmac.new(b"not-the-secret", f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {**headers, "Fake-Signature": f"t={timestamp},v1={forged}"}, body


DRIVERS: dict[str, PaymentDriver] = {
    "fake": PaymentDriver(
        approved_method="card_ok",
        declined_method="card_declined",
        reserve_expired=_fake_reserve_expired,
        signed_webhook=_fake_signed_webhook,
        forged_webhook=_fake_forged_webhook,
    ),
}

SPECS = offered_specs(Capability.PAYMENT)


# --- Fixtures --------------------------------------------------------------------------------------


@pytest.fixture(params=SPECS, ids=[spec.name for spec in SPECS])
def spec(request: pytest.FixtureRequest) -> ProviderSpec:
    spec: ProviderSpec = request.param
    return spec


@pytest.fixture
def driver(spec: ProviderSpec) -> PaymentDriver:
    if spec.name not in DRIVERS:
        pytest.fail(
            f"payment provider {spec.name!r} has no contract driver: add one to DRIVERS in {__file__}",
            pytrace=False,
        )
    return DRIVERS[spec.name]


@pytest.fixture
def provider(spec: ProviderSpec, driver: PaymentDriver, tmp_path: Path) -> Iterator[Any]:
    with driver.build(spec, tmp_path) as provider:
        yield provider


class Keys:
    """Fresh idempotency keys per test, so a provider with shared state (a sandbox) is not confused."""

    def __init__(self, tmp_path: Path) -> None:
        self._prefix = hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]

    def __call__(self, name: str) -> str:
        return f"contract-{self._prefix}-{name}"


@pytest.fixture
def key(tmp_path: Path) -> Keys:
    return Keys(tmp_path)


def reserve_request(driver: PaymentDriver, key: str, **changes: Any) -> ReserveRequest:
    request = ReserveRequest(
        amount=FEE,
        reference="LT-2024-000123",
        idempotency_key=key,
        return_url="https://legetime.example/betaling/ferdig",
        payment_method=driver.approved_method,
    )
    return replace(request, **changes)


async def reserved(provider: Any, driver: PaymentDriver, key: Keys) -> Payment:
    payment: Payment = await provider.reserve(reserve_request(driver, key("reserve")))
    assert payment.status is PaymentStatus.AUTHORIZED
    return payment


# --- The contract ----------------------------------------------------------------------------------


def test_every_offered_provider_has_a_driver(spec: ProviderSpec) -> None:
    assert spec.name in DRIVERS, f"add a contract driver for payment provider {spec.name!r}"


def test_implements_the_protocol(provider: Any, spec: ProviderSpec) -> None:
    assert isinstance(provider, PaymentProvider)
    assert provider.name == spec.name


async def test_reserve_authorizes_in_minor_units(provider: Any, driver: PaymentDriver, key: Keys) -> None:
    payment = await provider.reserve(reserve_request(driver, key("reserve")))
    assert payment.status is PaymentStatus.AUTHORIZED
    assert payment.provider == provider.name
    assert payment.amount == Money(35000, "NOK")
    assert payment.amounts.authorized == 35000
    assert (payment.amounts.captured, payment.amounts.released, payment.amounts.refunded) == (0, 0, 0)
    assert payment.expires_at is not None
    assert payment.expires_at > datetime.now(UTC)


async def test_reserve_replay_returns_the_first_result(
    provider: Any, driver: PaymentDriver, key: Keys
) -> None:
    request = reserve_request(driver, key("reserve"))
    first = await provider.reserve(request)
    again = await provider.reserve(request)
    assert again.payment_id == first.payment_id
    assert again.amounts.authorized == 35000
    assert (await provider.get(first.payment_id)).amounts.authorized == 35000


async def test_reserve_key_reused_for_another_request_conflicts(
    provider: Any, driver: PaymentDriver, key: Keys
) -> None:
    await provider.reserve(reserve_request(driver, key("reserve")))
    with pytest.raises(IdempotencyConflict):
        await provider.reserve(reserve_request(driver, key("reserve"), amount=Money(50000, "NOK")))


async def test_full_capture_once_even_when_retried(provider: Any, driver: PaymentDriver, key: Keys) -> None:
    payment = await reserved(provider, driver, key)
    captured = await provider.capture(payment.payment_id, FEE, key("capture"))
    assert captured.status is PaymentStatus.CAPTURED
    assert captured.amounts.captured == 35000
    retried = await provider.capture(payment.payment_id, FEE, key("capture"))
    assert retried.amounts.captured == 35000
    assert (await provider.get(payment.payment_id)).amounts.captured == 35000


async def test_capture_key_reused_for_another_request_conflicts(
    provider: Any, driver: PaymentDriver, key: Keys
) -> None:
    payment = await reserved(provider, driver, key)
    await provider.capture(payment.payment_id, Money(10000, "NOK"), key("capture"))
    with pytest.raises(IdempotencyConflict):
        await provider.capture(payment.payment_id, Money(20000, "NOK"), key("capture"))


async def test_capture_more_than_authorized_is_refused(
    provider: Any, driver: PaymentDriver, key: Keys
) -> None:
    payment = await reserved(provider, driver, key)
    with pytest.raises(PaymentStateError):
        await provider.capture(payment.payment_id, Money(35001, "NOK"), key("capture"))
    assert (await provider.get(payment.payment_id)).amounts.captured == 0


async def test_capture_in_another_currency_is_refused(
    provider: Any, driver: PaymentDriver, key: Keys
) -> None:
    payment = await reserved(provider, driver, key)
    with pytest.raises(PaymentStateError):
        await provider.capture(payment.payment_id, Money(35000, "SEK"), key("capture"))


async def test_release_then_capture_is_refused(provider: Any, driver: PaymentDriver, key: Keys) -> None:
    payment = await reserved(provider, driver, key)
    released = await provider.release(payment.payment_id, key("release"))
    assert released.status is PaymentStatus.RELEASED
    assert released.amounts.released == 35000
    with pytest.raises(PaymentStateError):
        await provider.capture(payment.payment_id, FEE, key("capture"))
    fetched = await provider.get(payment.payment_id)
    assert fetched.status is PaymentStatus.RELEASED
    assert fetched.amounts.captured == 0


async def test_refund_up_to_what_was_captured(provider: Any, driver: PaymentDriver, key: Keys) -> None:
    payment = await reserved(provider, driver, key)
    await provider.capture(payment.payment_id, FEE, key("capture"))
    partly = await provider.refund(payment.payment_id, Money(10000, "NOK"), key("refund-1"))
    assert partly.amounts.refunded == 10000
    assert partly.status is not PaymentStatus.REFUNDED
    with pytest.raises(PaymentStateError):
        await provider.refund(payment.payment_id, Money(25001, "NOK"), key("refund-2"))
    refunded = await provider.refund(payment.payment_id, Money(25000, "NOK"), key("refund-3"))
    assert refunded.status is PaymentStatus.REFUNDED
    assert refunded.amounts.refunded == 35000
    assert (await provider.get(payment.payment_id)).status is PaymentStatus.REFUNDED


async def test_refund_before_capture_is_refused(provider: Any, driver: PaymentDriver, key: Keys) -> None:
    payment = await reserved(provider, driver, key)
    with pytest.raises(PaymentStateError):
        await provider.refund(payment.payment_id, Money(100, "NOK"), key("refund"))


async def test_declined_card_authorizes_nothing(provider: Any, driver: PaymentDriver, key: Keys) -> None:
    request = reserve_request(driver, key("declined"), payment_method=driver.declined_method)
    with pytest.raises(PaymentDeclined) as declined:
        await provider.reserve(request)
    assert declined.value.code is ErrorCode.PAYMENT_DECLINED
    assert declined.value.message  # shown to the patient
    with pytest.raises(PaymentDeclined):  # a retry replays the decline, it does not authorize
        await provider.reserve(request)
    payment_id = getattr(declined.value, "payment_id", None)
    if payment_id is not None:  # providers that record the attempt must show nothing authorized
        fetched = await provider.get(payment_id)
        assert fetched.status is PaymentStatus.DECLINED
        assert fetched.amounts.authorized == 0


async def test_lapsed_authorization_cannot_be_captured(
    provider: Any, driver: PaymentDriver, key: Keys
) -> None:
    payment = await driver.reserve_expired(provider, reserve_request(driver, key("reserve")))
    with pytest.raises(PaymentExpired):
        await provider.capture(payment.payment_id, FEE, key("capture"))
    fetched = await provider.get(payment.payment_id)
    assert fetched.status is PaymentStatus.EXPIRED
    assert fetched.amounts.captured == 0


async def test_unknown_payment_is_a_state_error(provider: Any, key: Keys) -> None:
    with pytest.raises(PaymentStateError):
        await provider.get("no-such-payment")
    with pytest.raises(PaymentStateError):
        await provider.capture("no-such-payment", FEE, key("capture"))


async def test_get_reflects_each_step(provider: Any, driver: PaymentDriver, key: Keys) -> None:
    payment = await reserved(provider, driver, key)
    assert (await provider.get(payment.payment_id)).status is PaymentStatus.AUTHORIZED
    await provider.capture(payment.payment_id, FEE, key("capture"))
    fetched = await provider.get(payment.payment_id)
    assert fetched.status is PaymentStatus.CAPTURED
    assert fetched.payment_id == payment.payment_id
    assert fetched.amount == FEE


async def test_valid_webhook_names_the_payment(provider: Any, driver: PaymentDriver, key: Keys) -> None:
    payment = await reserved(provider, driver, key)
    headers, body = driver.signed_webhook(provider, payment.payment_id, datetime.now(UTC))
    event = await provider.parse_webhook(headers, body, "https://legetime.example/plugins/webhook")
    assert event.payment_id == payment.payment_id
    assert event.event


async def test_forged_webhook_is_rejected(provider: Any, driver: PaymentDriver, key: Keys) -> None:
    payment = await reserved(provider, driver, key)
    headers, body = driver.forged_webhook(provider, payment.payment_id)
    with pytest.raises(ProviderError) as rejected:
        await provider.parse_webhook(headers, body, "https://legetime.example/plugins/webhook")
    assert rejected.value.code is ErrorCode.INVALID


async def test_old_webhook_is_rejected(provider: Any, driver: PaymentDriver, key: Keys) -> None:
    payment = await reserved(provider, driver, key)
    headers, body = driver.signed_webhook(
        provider, payment.payment_id, datetime.now(UTC) - timedelta(hours=1)
    )
    with pytest.raises(ProviderError) as rejected:
        await provider.parse_webhook(headers, body, "https://legetime.example/plugins/webhook")
    assert rejected.value.code is ErrorCode.INVALID


async def test_tampered_webhook_body_is_rejected(provider: Any, driver: PaymentDriver, key: Keys) -> None:
    payment = await reserved(provider, driver, key)
    other = await provider.reserve(reserve_request(driver, key("other")))
    headers, body = driver.signed_webhook(provider, payment.payment_id, datetime.now(UTC))
    tampered = body.replace(payment.payment_id.encode(), other.payment_id.encode())
    assert tampered != body
    with pytest.raises(ProviderError) as rejected:
        await provider.parse_webhook(headers, tampered, "https://legetime.example/plugins/webhook")
    assert rejected.value.code is ErrorCode.INVALID


def test_the_suite_has_providers_to_check() -> None:
    # An empty parameter set would silently skip the whole contract.
    assert SPECS, "no payment provider is offered by the default plugins"
