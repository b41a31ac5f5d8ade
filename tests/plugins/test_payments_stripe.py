"""Stripe PaymentIntents with manual capture, through Stripe's SDK, against a local Stripe API
(``tests/fakes/stripe_api.py``): manual capture and idempotency keys, partial capture, 3-D Secure, the
hold's ``capture_before``, a capture whose answer was lost, Stripe being down, and webhook events. The
shared payment contract runs it as well."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from legetime.core.platform.errors import (
    ErrorCode,
    PaymentDeclined,
    PaymentStateError,
    ProviderError,
    ProviderUnavailable,
)
from legetime.core.platform.money import Money
from legetime.core.platform.providers import Capability
from legetime.core.platform.providers.payment import PaymentActionKind, PaymentStatus, ReserveRequest
from legetime.plugins.payments.stripe_cards import StripeProvider, StripeSettings
from legetime.testing import build_provider
from tests.fakes.server import serve_fake
from tests.fakes.stripe_api import DECLINED, THREE_DS, THREE_DS_THEN_DECLINED, VISA, StripeFake
from tests.support import offered_specs, settings_for_fake

FEE = Money(35000, "NOK")
SPEC = next(spec for spec in offered_specs(Capability.PAYMENT) if spec.name == "stripe")
WEBHOOK_URL = "https://legetime.example/webhooks/payments/stripe"


@pytest.fixture
def fake() -> Iterator[StripeFake]:
    with serve_fake(StripeFake()) as fake:
        yield fake


def settings_for(fake: StripeFake, **changes: Any) -> StripeSettings:
    settings: StripeSettings = settings_for_fake(SPEC, fake, **changes)
    return settings


@pytest.fixture
def stripe_provider(fake: StripeFake, tmp_path: Path) -> StripeProvider:
    provider: StripeProvider = build_provider(SPEC, tmp_path, settings_for(fake))
    return provider


def request(key: str, method: str | None = VISA) -> ReserveRequest:
    return ReserveRequest(
        amount=FEE,
        reference="LT-2026-000042",
        idempotency_key=key,
        return_url="https://legetime.example/betaling/ferdig",
        payment_method=method,
    )


async def test_a_hold_with_manual_capture_and_an_idempotency_key(
    stripe_provider: StripeProvider, fake: StripeFake
) -> None:
    payment = await stripe_provider.reserve(request("reserve-1"))
    assert payment.status is PaymentStatus.AUTHORIZED and payment.amounts.authorized == 35000
    create = next(r for r in fake.requests if r["path"] == "/v1/payment_intents")
    assert create["headers"]["idempotency-key"] == "reserve-1"
    assert create["headers"]["authorization"] == f"Bearer {fake.secret_key}"
    assert fake.intents[payment.payment_id].metadata == {"reference": "LT-2026-000042"}


async def test_a_retried_reserve_is_replayed_by_stripe(
    stripe_provider: StripeProvider, fake: StripeFake
) -> None:
    first = await stripe_provider.reserve(request("reserve-1"))
    again = await stripe_provider.reserve(request("reserve-1"))
    assert again.payment_id == first.payment_id and len(fake.intents) == 1


async def test_the_hold_lasts_until_capture_before(stripe_provider: StripeProvider, fake: StripeFake) -> None:
    payment = await stripe_provider.reserve(request("reserve-1"))
    charge = fake.intents[payment.payment_id].charge
    assert charge is not None
    capture_before = charge["payment_method_details"]["card"]["capture_before"]
    assert payment.expires_at == datetime.fromtimestamp(capture_before, UTC)


async def test_a_partial_capture_releases_the_rest(stripe_provider: StripeProvider) -> None:
    payment = await stripe_provider.reserve(request("reserve-1"))
    captured = await stripe_provider.capture(payment.payment_id, Money(20000, "NOK"), "capture-1")
    assert captured.status is PaymentStatus.CAPTURED
    assert (captured.amounts.captured, captured.amounts.released) == (20000, 15000)


async def test_three_d_secure_waits_for_the_payer(stripe_provider: StripeProvider, fake: StripeFake) -> None:
    pending = await stripe_provider.reserve(request("reserve-1", THREE_DS))
    assert pending.status is PaymentStatus.PENDING
    assert pending.action_url == f"{fake.base_url}/3ds/{pending.payment_id}"
    action = pending.next_action()
    assert action is not None and action.kind is PaymentActionKind.CLIENT_SECRET
    assert action.client_secret == fake.intents[pending.payment_id].client_secret
    assert action.publishable_key == fake.publishable_key and action.url == pending.action_url
    fake.complete_3ds_at(pending.action_url)
    approved = await stripe_provider.get(pending.payment_id)
    assert approved.status is PaymentStatus.AUTHORIZED and approved.next_action() is None


async def test_a_decline_names_the_attempt(stripe_provider: StripeProvider) -> None:
    with pytest.raises(PaymentDeclined) as caught:
        await stripe_provider.reserve(request("reserve-1", DECLINED))
    assert caught.value.message == "Kortet ble avvist. Prøv et annet kort."
    assert getattr(caught.value, "payment_id", "").startswith("pi_")


async def test_without_a_card_or_a_publishable_key_nothing_is_sent(fake: StripeFake, tmp_path: Path) -> None:
    provider = build_provider(SPEC, tmp_path, settings_for(fake, publishable_key=None))
    with pytest.raises(ProviderError) as caught:
        await provider.reserve(request("reserve-1", None))
    assert caught.value.code is ErrorCode.REQUIRED and caught.value.field == "paymentMethod"
    assert not fake.requests


async def test_a_capture_whose_answer_was_lost_is_retried_without_capturing_twice(
    stripe_provider: StripeProvider, fake: StripeFake
) -> None:
    payment = await stripe_provider.reserve(request("reserve-1"))
    fake.drop_next_answer = True
    with pytest.raises(ProviderUnavailable):
        await stripe_provider.capture(payment.payment_id, FEE, "capture-1")
    charge = fake.intents[payment.payment_id].charge
    assert charge is not None and charge["amount_captured"] == 35000  # made; we did not hear
    retried = await stripe_provider.capture(payment.payment_id, FEE, "capture-1")
    assert retried.status is PaymentStatus.CAPTURED and charge["amount_captured"] == 35000
    replayed = [r for r in fake.requests if r["path"].endswith("/capture")]
    assert len(replayed) == 2
    with pytest.raises(PaymentStateError):
        await stripe_provider.capture(payment.payment_id, FEE, "capture-2")


async def test_stripe_down_is_unavailable_and_changes_nothing(
    stripe_provider: StripeProvider, fake: StripeFake
) -> None:
    payment = await stripe_provider.reserve(request("reserve-1"))
    fake.down = True
    with pytest.raises(ProviderUnavailable):
        await stripe_provider.reserve(request("reserve-2"))
    with pytest.raises(ProviderUnavailable):
        await stripe_provider.capture(payment.payment_id, FEE, "capture-1")
    fake.down = False
    assert len(fake.intents) == 1
    assert (await stripe_provider.get(payment.payment_id)).amounts.captured == 0
    assert (await stripe_provider.capture(payment.payment_id, FEE, "capture-1")).amounts.captured == 35000


async def test_a_wrong_key_is_a_clear_error_not_an_outage(fake: StripeFake, tmp_path: Path) -> None:
    provider = build_provider(SPEC, tmp_path, settings_for(fake, secret_key="sk_test_wrong"))
    with pytest.raises(ProviderError) as caught:
        await provider.reserve(request("reserve-1"))
    assert not isinstance(caught.value, ProviderUnavailable) and "nøkkelen" in caught.value.message


@pytest.mark.parametrize("event_type", ["payment_intent.succeeded", "charge.captured", "charge.refunded"])
async def test_payment_intent_and_charge_events_name_the_payment(
    stripe_provider: StripeProvider, fake: StripeFake, event_type: str
) -> None:
    payment = await stripe_provider.reserve(request("reserve-1"))
    headers, body = fake.webhook(payment.payment_id, event_type)
    event = await stripe_provider.parse_webhook(headers, body, WEBHOOK_URL)
    assert (event.payment_id, event.event) == (payment.payment_id, event_type)


async def test_webhooks_are_refused_without_a_secret(fake: StripeFake, tmp_path: Path) -> None:
    provider = build_provider(SPEC, tmp_path, settings_for(fake, webhook_secret=None))
    payment = await provider.reserve(request("reserve-1"))
    headers, body = fake.webhook(payment.payment_id, "payment_intent.succeeded")
    with pytest.raises(ProviderError, match="no webhook secret"):
        await provider.parse_webhook(headers, body, WEBHOOK_URL)


def test_secrets_are_masked_and_a_publishable_key_refused(fake: StripeFake) -> None:
    settings = settings_for(fake)
    shown = repr(settings) + str(settings.model_dump())
    assert fake.secret_key not in shown and fake.webhook_secret not in shown
    with pytest.raises(ValueError, match="publishable"):
        StripeSettings(secret_key="pk_test_123")


async def test_without_a_card_the_payment_element_gets_the_client_secret(
    stripe_provider: StripeProvider, fake: StripeFake
) -> None:
    pending = await stripe_provider.reserve(request("reserve-1", None))
    intent = fake.intents[pending.payment_id]
    assert pending.status is PaymentStatus.PENDING and pending.action_url is None
    assert intent.status == "requires_payment_method" and not intent.payment_method  # not confirmed
    action = pending.next_action()
    assert action is not None and action.kind is PaymentActionKind.CLIENT_SECRET
    assert action.client_secret == intent.client_secret and action.client_secret.startswith(
        f"{pending.payment_id}_secret_"
    )
    assert action.publishable_key == fake.publishable_key
    assert intent.client_secret not in repr(pending) + str(pending)  # never in a log line
    fetched = await stripe_provider.get(pending.payment_id)
    assert fetched.next_action() == action  # read again from Stripe whenever it is needed


async def test_a_confirmation_without_a_return_url_turns_redirects_off(
    stripe_provider: StripeProvider, fake: StripeFake
) -> None:
    pending = await stripe_provider.reserve(replace(request("reserve-1", THREE_DS), return_url=None))
    action = pending.next_action()
    assert action is not None and action.kind is PaymentActionKind.CLIENT_SECRET and action.url is None
    assert fake.intents[pending.payment_id].allow_redirects is False  # 3-D Secure through Stripe.js


async def test_a_decline_after_authentication_is_declined(
    stripe_provider: StripeProvider, fake: StripeFake
) -> None:
    pending = await stripe_provider.reserve(request("reserve-1", THREE_DS_THEN_DECLINED))
    assert pending.status is PaymentStatus.PENDING
    fake.complete_3ds(pending.payment_id)  # authenticated; then the issuer declines
    declined = await stripe_provider.get(pending.payment_id)
    assert declined.status is PaymentStatus.DECLINED and declined.amounts.authorized == 0
    assert declined.next_action() is None


@pytest.mark.parametrize(
    ("secret_key", "publishable_key", "error"),
    [
        ("sk_test_1", "sk_test_2", "publishable key"),
        ("sk_test_1", "pk_1", "publishable key"),
        ("sk_live_1", "pk_test_2", "both test keys"),
        ("rk_test_1", "pk_live_2", "both test keys"),
    ],
)
def test_the_publishable_key_is_checked(secret_key: str, publishable_key: str, error: str) -> None:
    with pytest.raises(ValueError, match=error) as caught:
        StripeSettings(secret_key=secret_key, publishable_key=publishable_key)  # type: ignore[arg-type]
    assert secret_key not in str(caught.value)  # the error never shows a secret key
    assert publishable_key not in str(caught.value) or publishable_key.startswith("pk_")
    ok = StripeSettings(secret_key="rk_live_1", publishable_key="pk_live_2")  # type: ignore[arg-type]
    assert ok.publishable_key == "pk_live_2" and "pk_live_2" in str(ok.model_dump())  # not a secret
