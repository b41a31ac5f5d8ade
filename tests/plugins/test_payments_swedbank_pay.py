"""Swedbank Pay payment orders against a local payment order API (``tests/fakes/swedbank_pay.py``) over
HTTP: operations followed, never built; a unique payeeReference per operation that makes a retried
capture happen once; unsigned callbacks accepted only with our token and then re-fetched; Swedbank Pay
being down. The shared payment contract runs it as well."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from legetime.core.platform.errors import ErrorCode, PaymentStateError, ProviderError, ProviderUnavailable
from legetime.core.platform.money import Money
from legetime.core.platform.providers import Capability
from legetime.core.platform.providers.payment import PaymentStatus, ReserveRequest
from legetime.plugins.payments.swedbank_pay import ORDERS, SwedbankPayProvider, SwedbankPaySettings
from legetime.testing import build_provider
from tests.fakes.server import serve_fake
from tests.fakes.swedbank_pay import SwedbankPayFake
from tests.support import offered_specs, settings_for_fake

FEE = Money(35000, "NOK")
SPEC = next(spec for spec in offered_specs(Capability.PAYMENT) if spec.name == "swedbank-pay")
CALLBACKS = "https://legetime.example/webhooks/payments/swedbank-pay"


@pytest.fixture
def fake() -> Iterator[SwedbankPayFake]:
    with serve_fake(SwedbankPayFake()) as fake:
        yield fake


def settings_for(fake: SwedbankPayFake, **changes: Any) -> SwedbankPaySettings:
    settings: SwedbankPaySettings = settings_for_fake(SPEC, fake, **({"callback_url": CALLBACKS} | changes))
    return settings


@pytest.fixture
def swedbank(fake: SwedbankPayFake, tmp_path: Path) -> SwedbankPayProvider:
    provider: SwedbankPayProvider = build_provider(SPEC, tmp_path, settings_for(fake))
    return provider


def request(key: str, method: str | None = None) -> ReserveRequest:
    return ReserveRequest(
        amount=FEE,
        reference="LT-2026-000042",
        idempotency_key=key,
        return_url="https://legetime.example/betaling/ferdig",
        payment_method=method,
    )


async def paid(swedbank: SwedbankPayProvider, fake: SwedbankPayFake, key: str = "reserve-1") -> str:
    payment = await swedbank.reserve(request(key))
    fake.pay(payment.payment_id)
    return payment.payment_id


def created_order(fake: SwedbankPayFake) -> dict[str, Any]:
    return next(call for call in fake.calls if call["method"] == "POST" and call["path"] == ORDERS)


async def test_the_order_is_created_as_documented(
    swedbank: SwedbankPayProvider, fake: SwedbankPayFake
) -> None:
    payment = await swedbank.reserve(request("reserve-1"))
    assert payment.status is PaymentStatus.PENDING and payment.amounts.authorized == 0
    order = fake.order(payment.payment_id)
    assert (order.amount, order.currency) == (35000, "NOK")  # minor units
    assert payment.action_url and payment.action_url.endswith(f"/payment/menu/{order.guid}")
    assert order.complete_url == "https://legetime.example/betaling/ferdig"
    assert order.callback_url.startswith(f"{CALLBACKS}?order={order.order_reference}&token=")
    headers = created_order(fake)["headers"]
    assert headers["authorization"] == f"Bearer {fake.access_token}"
    assert headers["content-type"] == "application/json;version=3.1"


async def test_operations_are_followed_never_built(
    swedbank: SwedbankPayProvider, fake: SwedbankPayFake
) -> None:
    payment_id = await paid(swedbank, fake)
    await swedbank.capture(payment_id, Money(20000, "NOK"), "capture-1")
    await swedbank.refund(payment_id, Money(5000, "NOK"), "refund-1")
    released = await swedbank.release(payment_id, "release-1")
    assert (released.amounts.captured, released.amounts.refunded, released.amounts.released) == (
        20000,
        5000,
        15000,
    )
    secret = fake.order(payment_id).secret
    operations = [call for call in fake.calls if call["method"] != "GET" and call["path"] != ORDERS]
    assert len(operations) == 3
    assert all(
        f"/{secret}/" in call["path"] for call in operations
    )  # only the fake's operation links know it
    assert {call["headers"]["content-type"] for call in operations} == {"application/json;version=3.1"}


async def test_each_operation_has_its_own_payee_reference(
    swedbank: SwedbankPayProvider, fake: SwedbankPayFake
) -> None:
    payment_id = await paid(swedbank, fake)
    await swedbank.capture(payment_id, Money(10000, "NOK"), "capture-1")
    await swedbank.capture(payment_id, Money(10000, "NOK"), "capture-2")
    await swedbank.refund(payment_id, Money(10000, "NOK"), "refund-1")
    order = fake.order(payment_id)
    references = [order.payee_reference] + [t["payeeReference"] for t in order.transactions]
    assert len(references) == 4 and len(set(references)) == 4
    assert all(ref.isalnum() and len(ref) <= 30 for ref in references)


async def test_a_capture_whose_answer_was_lost_is_retried_without_capturing_twice(
    swedbank: SwedbankPayProvider, fake: SwedbankPayFake
) -> None:
    payment_id = await paid(swedbank, fake)
    fake.drop_next_answer = True
    with pytest.raises(ProviderUnavailable):
        await swedbank.capture(payment_id, FEE, "capture-1")
    assert fake.order(payment_id).total("Capture") == 35000  # it was made; we did not hear
    retried = await swedbank.capture(payment_id, FEE, "capture-1")
    assert retried.status is PaymentStatus.CAPTURED and retried.amounts.captured == 35000
    again = await swedbank.capture(payment_id, FEE, "capture-1")
    assert again.amounts.captured == 35000
    assert [t["type"] for t in fake.order(payment_id).transactions] == ["Capture"]


async def test_a_retry_with_another_amount_conflicts(
    swedbank: SwedbankPayProvider, fake: SwedbankPayFake
) -> None:
    payment_id = await paid(swedbank, fake)
    await swedbank.capture(payment_id, Money(10000, "NOK"), "capture-1")
    with pytest.raises(ProviderError) as conflict:
        await swedbank.capture(payment_id, Money(20000, "NOK"), "capture-1")
    assert conflict.value.code is ErrorCode.IDEMPOTENCY_CONFLICT
    assert fake.order(payment_id).total("Capture") == 10000


async def test_the_reservation_is_relied_on_for_seven_days(
    swedbank: SwedbankPayProvider, fake: SwedbankPayFake
) -> None:
    payment_id = await paid(swedbank, fake)
    order = fake.order(payment_id)
    fetched = await swedbank.get(payment_id)
    assert fetched.expires_at is not None
    assert (fetched.expires_at - order.created).days == 7
    fake.age(payment_id, days=8)
    assert (await swedbank.get(payment_id)).status is PaymentStatus.EXPIRED


async def test_swedbank_pay_down_is_unavailable_and_changes_nothing(
    swedbank: SwedbankPayProvider, fake: SwedbankPayFake
) -> None:
    payment_id = await paid(swedbank, fake)
    fake.down = True
    with pytest.raises(ProviderUnavailable) as down:
        await swedbank.capture(payment_id, FEE, "capture-1")
    assert down.value.code is ErrorCode.PROVIDER_UNAVAILABLE
    with pytest.raises(ProviderUnavailable):
        await swedbank.reserve(request("reserve-2"))
    fake.down = False
    assert fake.order(payment_id).transactions == [] and len(fake.orders) == 1
    assert (await swedbank.capture(payment_id, FEE, "capture-1")).amounts.captured == 35000


async def test_a_wrong_token_is_a_clear_error_not_an_outage(fake: SwedbankPayFake, tmp_path: Path) -> None:
    provider = build_provider(SPEC, tmp_path, settings_for(fake, access_token="wrong"))
    with pytest.raises(ProviderError) as refused:
        await provider.reserve(request("reserve-1"))
    assert not isinstance(refused.value, ProviderUnavailable)
    assert "payeeId" in refused.value.message


async def test_only_cards_are_offered(swedbank: SwedbankPayProvider) -> None:
    assert [(o.kind.value, o.method) for o in swedbank.payment_options] == [("card", "card")]
    with pytest.raises(ProviderError) as refused:
        await swedbank.reserve(request("reserve-1", method="WALLET"))
    assert refused.value.field == "paymentMethod"


async def test_a_callback_is_accepted_with_our_token_and_names_the_order(
    swedbank: SwedbankPayProvider, fake: SwedbankPayFake
) -> None:
    payment_id = await paid(swedbank, fake)
    headers, body, url = fake.callback(payment_id)
    event = await swedbank.parse_webhook(headers, body, url)
    assert event.payment_id == payment_id


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda body, url, other: (body, url.split("&token=")[0]), id="no token"),
        pytest.param(lambda body, url, other: (body, url[:-4] + "0000"), id="wrong token"),
        pytest.param(lambda body, url, other: (body.replace(b'"id"', b'"di"'), url), id="not an order"),
        pytest.param(lambda body, url, other: (b"<xml/>", url), id="not JSON"),
        pytest.param(
            lambda body, url, other: (body.replace(b"/psp/paymentorders/", b"/psp/paymentorders/0"), url),
            id="unknown order",
        ),
        pytest.param(lambda body, url, other: (other, url), id="another order"),
    ],
)
async def test_a_callback_that_is_not_ours_is_rejected(
    swedbank: SwedbankPayProvider, fake: SwedbankPayFake, spoil: Any
) -> None:
    payment_id = await paid(swedbank, fake)
    other_id = await paid(swedbank, fake, "reserve-2")
    headers, body, url = fake.callback(payment_id)
    other_body = fake.callback(other_id)[1]
    assert json.loads(other_body)["paymentOrder"]["id"] == other_id
    body, url = spoil(body, url, other_body)
    with pytest.raises(ProviderError) as rejected:
        await swedbank.parse_webhook(headers, body, url)
    assert rejected.value.code is ErrorCode.INVALID


async def test_refusals_are_typed(swedbank: SwedbankPayProvider, fake: SwedbankPayFake) -> None:
    pending = await swedbank.reserve(request("reserve-1"))
    with pytest.raises(PaymentStateError):  # not paid: no capture operation offered
        await swedbank.capture(pending.payment_id, FEE, "capture-1")
    with pytest.raises(PaymentStateError) as unknown:
        await swedbank.get(f"{ORDERS}/00000000-0000-0000-0000-000000000000")
    assert unknown.value.code is ErrorCode.NOT_FOUND


def test_secrets_are_masked(fake: SwedbankPayFake) -> None:
    settings = settings_for(fake)
    assert fake.access_token not in repr(settings) + str(settings.model_dump())


def test_plain_http_is_refused_outside_localhost() -> None:
    with pytest.raises(ValueError, match="https"):
        SwedbankPaySettings(base_url="http://api.payex.com", payee_id="p", access_token="t")
