"""Vipps ePayment against its local fake (``tests/fakes/vipps.py``) over HTTP: the headers Vipps requires,
the access token, WALLET and CARD, status from the aggregate, webhook signatures (checked against the
example in Vipps' documentation), a capture whose answer was lost, and Vipps being down. The shared
payment contract runs it as well."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from legetime.core.platform.errors import ErrorCode, PaymentStateError, ProviderError, ProviderUnavailable
from legetime.core.platform.money import Money
from legetime.core.platform.providers import Capability
from legetime.core.platform.providers.payment import PaymentStatus, ReserveRequest
from legetime.plugins.payments.vipps import (
    VippsProvider,
    VippsSettings,
    content_hash,
    reference_for,
    vipps_signature,
)
from legetime.testing import build_provider
from tests.fakes.server import serve_fake
from tests.fakes.vipps import VippsFake
from tests.support import offered_specs, settings_for_fake

FEE = Money(35000, "NOK")
SPEC = next(spec for spec in offered_specs(Capability.PAYMENT) if spec.name == "vipps")


@pytest.fixture
def fake() -> Iterator[VippsFake]:
    with serve_fake(VippsFake()) as fake:
        yield fake


def settings_for(fake: VippsFake, **changes: Any) -> VippsSettings:
    settings: VippsSettings = settings_for_fake(SPEC, fake, **changes)
    return settings


@pytest.fixture
def vipps(fake: VippsFake, tmp_path: Path) -> VippsProvider:
    provider: VippsProvider = build_provider(SPEC, tmp_path, settings_for(fake))
    return provider


def request(key: str, method: str | None = "WALLET") -> ReserveRequest:
    return ReserveRequest(
        amount=FEE,
        reference="LT-2026-000042",
        idempotency_key=key,
        return_url="https://legetime.example/betaling/ferdig",
        payment_method=method,
    )


async def authorized(vipps: VippsProvider, fake: VippsFake, key: str = "reserve-1") -> str:
    payment = await vipps.reserve(request(key))
    fake.approve(payment.payment_id)
    return payment.payment_id


async def test_every_call_carries_the_headers_vipps_requires(vipps: VippsProvider, fake: VippsFake) -> None:
    reference = await authorized(vipps, fake)
    await vipps.capture(reference, FEE, "capture-1")
    api_calls = [call for call in fake.calls if call["path"] != "/accesstoken/get"]
    assert len(api_calls) >= 4
    for call in api_calls:
        headers = call["headers"]
        assert headers["authorization"].startswith("Bearer ")
        assert headers["ocp-apim-subscription-key"] == fake.subscription_key
        assert headers["merchant-serial-number"] == fake.msn
        assert headers["vipps-system-name"] == "legetime" and headers["vipps-system-plugin-name"]
        if call["method"] == "POST":
            assert headers["idempotency-key"] in ("reserve-1", "capture-1")


async def test_the_access_token_is_cached_and_renewed_when_refused(
    vipps: VippsProvider, fake: VippsFake
) -> None:
    reference = await authorized(vipps, fake)
    await vipps.get(reference)
    assert fake.tokens_issued == 1
    fake.revoke_tokens()  # Vipps no longer takes it (expired early, keys rotated)
    assert (await vipps.get(reference)).status is PaymentStatus.AUTHORIZED
    assert fake.tokens_issued == 2


async def test_wrong_keys_are_a_clear_error_not_an_outage(fake: VippsFake, tmp_path: Path) -> None:
    provider = build_provider(SPEC, tmp_path, settings_for(fake, client_secret="wrong"))
    with pytest.raises(ProviderError) as caught:
        await provider.reserve(request("reserve-1"))
    assert not isinstance(caught.value, ProviderUnavailable)
    assert "nøklene" in caught.value.message
    assert not fake.payments


@pytest.mark.parametrize(("method", "expected"), [("WALLET", "WALLET"), ("CARD", "CARD"), (None, "WALLET")])
async def test_wallet_and_card(
    vipps: VippsProvider, fake: VippsFake, method: str | None, expected: str
) -> None:
    payment = await vipps.reserve(request("reserve-1", method))
    assert payment.status is PaymentStatus.PENDING and payment.action_url
    assert fake.payments[payment.payment_id].method == expected
    assert payment.payment_id == reference_for("reserve-1")  # the reference follows from the key


async def test_a_phone_number_is_passed_and_a_bad_method_refused(
    vipps: VippsProvider, fake: VippsFake
) -> None:
    await vipps.reserve(request("reserve-1", "WALLET:4791234567"))
    create = next(call for call in fake.calls if call["path"] == "/epayment/v1/payments")
    assert create["headers"]["idempotency-key"] == "reserve-1"
    with pytest.raises(ProviderError) as caught:
        await vipps.reserve(request("reserve-2", "BITCOIN"))
    assert caught.value.code is ErrorCode.INVALID and caught.value.field == "paymentMethod"


async def test_status_comes_from_the_aggregate_while_the_state_stays_authorized(
    vipps: VippsProvider, fake: VippsFake
) -> None:
    reference = await authorized(vipps, fake)
    captured = await vipps.capture(reference, FEE, "capture-1")
    assert fake.payments[reference].state == "AUTHORIZED"  # Vipps' label does not move on capture
    assert captured.status is PaymentStatus.CAPTURED and captured.amounts.captured == 35000


async def test_the_reservation_is_relied_on_for_seven_days_from_approval(
    vipps: VippsProvider, fake: VippsFake
) -> None:
    before = datetime.now(UTC)
    payment = await vipps.get(await authorized(vipps, fake))
    assert payment.expires_at is not None
    assert before + timedelta(days=7) - timedelta(seconds=5) <= payment.expires_at
    assert payment.expires_at <= datetime.now(UTC) + timedelta(days=7)


async def test_a_capture_whose_answer_was_lost_is_retried_without_capturing_twice(
    vipps: VippsProvider, fake: VippsFake
) -> None:
    reference = await authorized(vipps, fake)
    fake.drop_next_answer = True
    with pytest.raises(ProviderUnavailable):
        await vipps.capture(reference, FEE, "capture-1")
    assert fake.payments[reference].captured == 35000  # it was made; we just did not hear
    retried = await vipps.capture(reference, FEE, "capture-1")
    assert retried.status is PaymentStatus.CAPTURED
    assert fake.payments[reference].captured == 35000
    with pytest.raises(PaymentStateError):  # and a capture under a new key finds nothing left
        await vipps.capture(reference, FEE, "capture-2")


async def test_vipps_down_is_unavailable_and_changes_nothing(vipps: VippsProvider, fake: VippsFake) -> None:
    reference = await authorized(vipps, fake)
    fake.down = True
    with pytest.raises(ProviderUnavailable):
        await vipps.reserve(request("reserve-2"))
    with pytest.raises(ProviderUnavailable):
        await vipps.capture(reference, FEE, "capture-1")
    fake.down = False
    assert len(fake.payments) == 1 and fake.payments[reference].captured == 0
    assert (await vipps.capture(reference, FEE, "capture-1")).amounts.captured == 35000  # retried later


def test_the_webhook_signature_matches_the_example_in_vipps_documentation() -> None:
    # From the Webhooks API's "Request authentication" page.
    body = b'{"some-unique-content":"ee6e441b-cc4a-46f8-895d-a5af79bcc233/hello-world"}'
    assert content_hash(body) == "lNlsp1XA03N34HrQsVzPgJKtC+r7l/RBF4V3JQUWMj4="
    secret = "A0+AeKBRG2KRGvnNwJpQlb6IJFk48CKXCIcrLoHncVJKDILsQSxS6NWCccwWm6r6FhGKhiHTBsG2wo/xU6FY/A=="
    signature = vipps_signature(
        secret,
        "/e2cee29b-012e-4f1d-8ef4-e95fd74a7a63",
        "Thu, 30 Mar 2023 08:38:32 GMT",
        "webhook.site",
        content_hash(body),
    )
    assert signature == "agAiSyogQbDHpeucoNwYz+yAr5nJ+v+zasdkSbqzv+U="


async def test_the_documented_example_webhook_passes_verification(tmp_path: Path) -> None:
    secret = "A0+AeKBRG2KRGvnNwJpQlb6IJFk48CKXCIcrLoHncVJKDILsQSxS6NWCccwWm6r6FhGKhiHTBsG2wo/xU6FY/A=="
    then = datetime(2023, 3, 30, 8, 38, 40, tzinfo=UTC)
    settings = VippsSettings(
        client_id="c",
        client_secret="s",
        subscription_key="k",
        merchant_serial_number="1",
        webhook_secret=secret,
    )
    provider = VippsProvider(settings, now=lambda: then)
    headers = {
        "Host": "webhook.site",
        "x-ms-date": "Thu, 30 Mar 2023 08:38:32 GMT",
        "x-ms-content-sha256": "lNlsp1XA03N34HrQsVzPgJKtC+r7l/RBF4V3JQUWMj4=",
        "Authorization": "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256"
        "&Signature=agAiSyogQbDHpeucoNwYz+yAr5nJ+v+zasdkSbqzv+U=",
    }
    body = b'{"some-unique-content":"ee6e441b-cc4a-46f8-895d-a5af79bcc233/hello-world"}'
    url = "https://webhook.site/e2cee29b-012e-4f1d-8ef4-e95fd74a7a63"
    with pytest.raises(ProviderError, match="not an ePayment event"):  # signature, hash and date all pass
        await provider.parse_webhook(headers, body, url)
    with pytest.raises(ProviderError, match="bad signature"):  # the same, to another address
        await provider.parse_webhook(headers, body, "https://webhook.site/another")


async def test_webhooks_are_refused_without_a_secret(fake: VippsFake, tmp_path: Path) -> None:
    provider = build_provider(SPEC, tmp_path, settings_for(fake, webhook_secret=None))
    reference = await authorized(provider, fake)
    headers, body = fake.webhook(reference, "AUTHORIZED", "https://legetime.example/webhooks/payments/vipps")
    with pytest.raises(ProviderError, match="no webhook secret"):
        await provider.parse_webhook(headers, body, "https://legetime.example/webhooks/payments/vipps")


def test_secrets_are_masked(fake: VippsFake) -> None:
    settings = settings_for(fake)
    shown = repr(settings) + str(settings.model_dump())
    for secret in (fake.client_secret, fake.subscription_key, fake.webhook_secret):
        assert secret not in shown


def test_plain_http_is_refused_outside_localhost() -> None:
    with pytest.raises(ValueError, match="https"):
        VippsSettings(
            base_url="http://api.vipps.no",
            client_id="c",
            client_secret="s",
            subscription_key="k",
            merchant_serial_number="1",
        )
