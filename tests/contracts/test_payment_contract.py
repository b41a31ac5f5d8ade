"""The payment contract (``legetime.testing.PaymentContract``), run against every provider the plugins
offer.

Provider-specific knobs (which card declines, how an authorization is made to lapse, how a webhook is
signed or forged) live in ``DRIVERS``, keyed by provider name.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from legetime.core.platform.providers import Capability, ProviderSpec
from legetime.core.platform.providers.payment import Payment, ReserveRequest
from legetime.plugins.payments.vipps import vipps_signature
from legetime.testing import WEBHOOK_URL, PaymentContract, PaymentDriver, Webhook, build_default
from tests.contracts.builtin import check_against_driver, fixtures_for
from tests.fakes.stripe_api import StripeFake
from tests.fakes.swedbank_pay import SwedbankPayFake
from tests.fakes.vipps import SIGNED_HEADERS, VippsFake
from tests.support import ServedFake, offered_specs

# --- Drivers ---------------------------------------------------------------------------------------


async def _fake_reserve_expired(provider: Any, request: ReserveRequest) -> Payment:
    payment: Payment = await provider.reserve(replace(request, payment_method="card_expiring"))
    return payment


async def _fake_approve(provider: Any, payment: Payment) -> None:
    await provider.approve(payment.payment_id)


def _fake_signed_webhook(provider: Any, payment_id: str, at: datetime) -> Webhook:
    headers, body = provider.webhook_for(payment_id, "payment.captured", at=at)
    return headers, body


def _fake_forged_webhook(provider: Any, payment_id: str) -> Webhook:
    headers, body = provider.webhook_for(payment_id, "payment.captured")
    timestamp = headers["Fake-Signature"].split(",")[0].removeprefix("t=")
    forged = hmac.new(b"not-the-secret", f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {**headers, "Fake-Signature": f"t={timestamp},v1={forged}"}, body


class _Vipps(ServedFake[VippsFake]):
    """Vipps ePayment against its local fake over HTTP; the driver plays the payer in the Vipps app."""

    async def approve(self, provider: Any, payment: Payment) -> None:
        self.fake.approve(payment.payment_id)

    async def decline(self, provider: Any, payment: Payment) -> None:
        self.fake.reject(payment.payment_id)

    async def reserve_expired(self, provider: Any, request: ReserveRequest) -> Payment:
        payment: Payment = await provider.reserve(request)
        self.fake.approve(payment.payment_id)
        self.fake.age_reservation(payment.payment_id, days=8)
        return payment

    def signed_webhook(self, provider: Any, payment_id: str, at: datetime) -> Webhook:
        return self.fake.webhook(payment_id, "CAPTURED", WEBHOOK_URL, at)

    def forged_webhook(self, provider: Any, payment_id: str) -> Webhook:
        headers, body = self.fake.webhook(payment_id, "CAPTURED", WEBHOOK_URL)
        forged = vipps_signature(
            "not-the-secret",
            "/plugins/webhook",
            headers["x-ms-date"],
            headers["host"],
            headers["x-ms-content-sha256"],
        )
        return {**headers, "authorization": SIGNED_HEADERS + forged}, body


class _Stripe(ServedFake[StripeFake]):
    """Stripe (through its SDK) against a local Stripe API; the driver completes 3-D Secure for the payer."""

    async def approve(self, provider: Any, payment: Payment) -> None:
        self.fake.complete_3ds(payment.payment_id)

    async def reserve_expired(self, provider: Any, request: ReserveRequest) -> Payment:
        payment: Payment = await provider.reserve(request)
        self.fake.lapse(payment.payment_id)
        return payment

    def signed_webhook(self, provider: Any, payment_id: str, at: datetime) -> Webhook:
        return self.fake.webhook(payment_id, "payment_intent.amount_capturable_updated", int(at.timestamp()))

    def forged_webhook(self, provider: Any, payment_id: str) -> Webhook:
        _, body = self.fake.webhook(payment_id, "payment_intent.amount_capturable_updated")
        return {"Stripe-Signature": self.fake.sign(body, int(datetime.now(UTC).timestamp()), "whsec_x")}, body


class _SwedbankPay(ServedFake[SwedbankPayFake]):
    """Swedbank Pay payment orders against a local payment order API; the driver plays the payer on the
    payment page."""

    async def approve(self, provider: Any, payment: Payment) -> None:
        self.fake.pay(payment.payment_id)

    async def decline(self, provider: Any, payment: Payment) -> None:
        self.fake.fail(payment.payment_id)

    async def reserve_expired(self, provider: Any, request: ReserveRequest) -> Payment:
        payment: Payment = await provider.reserve(request)
        self.fake.pay(payment.payment_id)
        self.fake.age(payment.payment_id, days=8)
        return payment

    def signed_webhook(self, provider: Any, payment_id: str, at: datetime) -> Webhook:
        return self.fake.callback(payment_id)  # unsigned; its URL carries our token for the order

    def forged_webhook(self, provider: Any, payment_id: str) -> Webhook:
        headers, body, url = self.fake.callback(payment_id)
        token = url.split("token=")[1]
        return headers, body, url.replace(token, "0" * len(token))


_vipps, _stripe, _swedbank_pay = _Vipps(VippsFake), _Stripe(StripeFake), _SwedbankPay(SwedbankPayFake)

DRIVERS: dict[str, PaymentDriver] = {
    "fake": PaymentDriver(
        approved_method="card_ok",
        declined_method="card_declined",
        reserve_expired=_fake_reserve_expired,
        signed_webhook=_fake_signed_webhook,
        forged_webhook=_fake_forged_webhook,
        pending_method="card_3ds",
        approve=_fake_approve,
        build=build_default,
    ),
    "stripe": PaymentDriver(
        approved_method="pm_card_visa",
        declined_method="pm_card_chargeDeclined",
        reserve_expired=_stripe.reserve_expired,
        signed_webhook=_stripe.signed_webhook,
        forged_webhook=_stripe.forged_webhook,
        pending_method="pm_card_authenticationRequired",
        approve=_stripe.approve,
        build=_stripe.build,
    ),
    "vipps": PaymentDriver(
        approved_method="WALLET",
        declined_method=None,
        reserve_expired=_vipps.reserve_expired,
        signed_webhook=_vipps.signed_webhook,
        forged_webhook=_vipps.forged_webhook,
        pending_method="CARD",
        approve=_vipps.approve,
        decline=_vipps.decline,
        build=_vipps.build,
    ),
    "swedbank-pay": PaymentDriver(
        approved_method=None,
        declined_method=None,
        reserve_expired=_swedbank_pay.reserve_expired,
        signed_webhook=_swedbank_pay.signed_webhook,
        forged_webhook=_swedbank_pay.forged_webhook,
        pending_method="card",
        approve=_swedbank_pay.approve,
        decline=_swedbank_pay.decline,
        build=_swedbank_pay.build,
        dated_webhooks=False,
    ),
}

SPECS = offered_specs(Capability.PAYMENT)

legetime_spec, legetime_driver = fixtures_for(Capability.PAYMENT, DRIVERS, __file__)


def test_the_suite_has_providers_to_check() -> None:
    # An empty parameter set would silently skip the whole contract.
    assert SPECS, "no payment provider is offered by the default plugins"


def test_every_offered_provider_has_a_driver(legetime_spec: ProviderSpec) -> None:
    assert legetime_spec.name in DRIVERS, f"add a contract driver for payment provider {legetime_spec.name!r}"


class TestPaymentContract(PaymentContract):
    pass


async def test_the_check_is_ok_against_the_driver(
    legetime_spec: ProviderSpec, legetime_driver: Any, tmp_path: Path
) -> None:
    await check_against_driver(legetime_spec, legetime_driver, tmp_path)
