"""The fake PSP's own behaviour: what the shared contract does not cover (3-D Secure, persistence across
processes, concurrency, settings, the simulated outage, the approve page, the plugin's registration)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from legetime.core.platform.config import Settings
from legetime.core.platform.errors import (
    ErrorCode,
    IdempotencyConflict,
    PaymentDeclined,
    PaymentExpired,
    PaymentStateError,
    ProviderError,
    ProviderUnavailable,
)
from legetime.core.platform.hooks import Hooks
from legetime.core.platform.money import Money
from legetime.core.platform.plugins import create_plugin_manager
from legetime.core.platform.providers import Capability, ProviderContext
from legetime.core.platform.providers.payment import Payment, PaymentAmounts, PaymentStatus, ReserveRequest
from legetime.plugins.payments import fake
from legetime.plugins.payments.fake import FakePaymentProvider, FakePaymentSettings
from legetime.testing import build_provider, plugin_database

FEE = Money(35000, "NOK")
REPO = Path(__file__).resolve().parents[2]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2024, 11, 5, 9, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture(autouse=True)
def _no_fake_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own LEGETIME_PAYMENTS_FAKE_* must not leak into these tests.
    for name in list(os.environ):
        if name.startswith("LEGETIME_PAYMENTS_FAKE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def provider(tmp_path: Path, clock: Clock) -> FakePaymentProvider:
    return make(tmp_path, clock)


def make(data_dir: Path, clock: Clock | None = None, **settings: object) -> FakePaymentProvider:
    """A provider built through the plugin's factory (as the platform does), with the test clock."""
    platform_settings = Settings(data_dir=data_dir)
    database = plugin_database(platform_settings.resolved_database_url)
    context = ProviderContext(
        settings=platform_settings, derive_key=lambda purpose: b"k" * 32, database=database
    )
    model = FakePaymentSettings(**settings)  # type: ignore[arg-type]
    if clock is None:
        return fake.create_provider(model, context)
    return fake.create_provider(model, context, now=clock)


def request(key: str, card: str | None = None, **changes: object) -> ReserveRequest:
    values: dict[str, object] = {
        "amount": FEE,
        "reference": "LT-2024-000123",
        "idempotency_key": key,
        "payment_method": card,
    }
    values.update(changes)
    return ReserveRequest(**values)  # type: ignore[arg-type]


async def authorized(provider: FakePaymentProvider, key: str = "reserve") -> Payment:
    return await provider.reserve(request(key))


# --- Test cards ------------------------------------------------------------------------------------


async def test_3ds_card_is_pending_until_approved(provider: FakePaymentProvider, clock: Clock) -> None:
    pending = await provider.reserve(request("reserve", "card_3ds"))
    assert pending.status is PaymentStatus.PENDING
    assert pending.action_url == f"/plugins/payments-fake/approve/{pending.payment_id}"
    assert pending.amounts.authorized == 0
    assert pending.expires_at is None
    with pytest.raises(PaymentStateError):
        await provider.capture(pending.payment_id, FEE, "capture-early")

    clock.advance(timedelta(minutes=2))
    approved = await provider.approve(pending.payment_id)
    assert approved.status is PaymentStatus.AUTHORIZED
    assert approved.amounts.authorized == 35000
    assert approved.action_url is None
    assert approved.expires_at == clock.now + timedelta(days=7)  # the authorization starts at approval
    assert (await provider.approve(pending.payment_id)).status is PaymentStatus.AUTHORIZED  # harmless twice

    captured = await provider.capture(pending.payment_id, FEE, "capture")
    assert captured.status is PaymentStatus.CAPTURED


async def test_declined_card_is_recorded(provider: FakePaymentProvider) -> None:
    with pytest.raises(PaymentDeclined) as declined:
        await provider.reserve(request("reserve", "card_declined"))
    assert declined.value.message == "Kortet ble avvist. Prøv et annet kort."
    assert isinstance(declined.value, fake.CardDeclined)
    payment = await provider.get(declined.value.payment_id)
    assert payment.status is PaymentStatus.DECLINED
    assert payment.amounts.authorized == 0
    with pytest.raises(fake.CardDeclined) as again:
        await provider.reserve(request("reserve", "card_declined"))
    assert again.value.payment_id == declined.value.payment_id  # replayed, not a second attempt
    with pytest.raises(PaymentStateError):
        await provider.approve(payment.payment_id)


async def test_expiring_card_is_already_lapsed(provider: FakePaymentProvider, clock: Clock) -> None:
    payment = await provider.reserve(request("reserve", "card_expiring"))
    assert payment.status is PaymentStatus.EXPIRED
    assert payment.amounts.authorized == 35000
    assert payment.expires_at is not None
    assert payment.expires_at < clock.now
    with pytest.raises(PaymentExpired):
        await provider.release(payment.payment_id, "release")


async def test_unavailable_card_stores_nothing(provider: FakePaymentProvider) -> None:
    with pytest.raises(ProviderUnavailable) as down:
        await provider.reserve(request("reserve", "card_unavailable"))
    assert down.value.retryable
    assert down.value.code is ErrorCode.PROVIDER_UNAVAILABLE
    async with provider._db.transaction() as session:
        for table in (fake.payments, fake.idempotency_keys):
            assert await session.scalar(select(func.count()).select_from(table)) == 0
    # Nothing was stored under the key, so the retry (with a working card) is a new request.
    assert (await provider.reserve(request("reserve", "card_ok"))).status is PaymentStatus.AUTHORIZED


async def test_unknown_card_is_invalid_input(provider: FakePaymentProvider) -> None:
    with pytest.raises(ProviderError) as invalid:
        await provider.reserve(request("reserve", "card_gold"))
    assert invalid.value.code is ErrorCode.INVALID
    assert invalid.value.field == "payment_method"


async def test_zero_amount_is_invalid_input(provider: FakePaymentProvider) -> None:
    with pytest.raises(ProviderError) as invalid:
        await provider.reserve(request("reserve", amount=Money(0, "NOK")))
    assert invalid.value.code is ErrorCode.INVALID


# --- Expiry by the clock ---------------------------------------------------------------------------


async def test_authorization_lapses_after_the_ttl(provider: FakePaymentProvider, clock: Clock) -> None:
    payment = await authorized(provider)
    assert payment.expires_at == clock.now + timedelta(hours=168)
    clock.advance(timedelta(hours=167, minutes=59))
    assert (await provider.get(payment.payment_id)).status is PaymentStatus.AUTHORIZED
    clock.advance(timedelta(minutes=1))
    assert (await provider.get(payment.payment_id)).status is PaymentStatus.EXPIRED
    with pytest.raises(PaymentExpired):
        await provider.capture(payment.payment_id, FEE, "capture")
    with pytest.raises(PaymentExpired):
        await provider.release(payment.payment_id, "release")


async def test_ttl_setting_is_used(tmp_path: Path, clock: Clock) -> None:
    provider = make(tmp_path, clock, authorization_ttl_hours=2)
    payment = await authorized(provider)
    assert payment.expires_at == clock.now + timedelta(hours=2)


async def test_captured_payment_is_not_expired_by_time(provider: FakePaymentProvider, clock: Clock) -> None:
    payment = await authorized(provider)
    await provider.capture(payment.payment_id, FEE, "capture")
    clock.advance(timedelta(days=30))
    assert (await provider.get(payment.payment_id)).status is PaymentStatus.CAPTURED
    refunded = await provider.refund(payment.payment_id, FEE, "refund")  # refunds do not depend on expiry
    assert refunded.status is PaymentStatus.REFUNDED


# --- The state machine by amounts ------------------------------------------------------------------


async def test_partial_captures_then_release_of_the_rest(provider: FakePaymentProvider) -> None:
    payment = await authorized(provider)
    first = await provider.capture(payment.payment_id, Money(10000, "NOK"), "capture-1")
    assert first.status is PaymentStatus.PARTIALLY_CAPTURED
    second = await provider.capture(payment.payment_id, Money(5000, "NOK"), "capture-2")
    assert second.amounts.captured == 15000
    with pytest.raises(PaymentStateError):
        await provider.capture(payment.payment_id, Money(20001, "NOK"), "capture-3")
    released = await provider.release(payment.payment_id, "release")
    assert released.amounts.released == 20000
    assert released.status is PaymentStatus.CAPTURED  # settled: 150 kr charged, the rest given back
    with pytest.raises(PaymentStateError):
        await provider.capture(payment.payment_id, Money(100, "NOK"), "capture-4")


async def test_release_after_full_capture_is_refused(provider: FakePaymentProvider) -> None:
    payment = await authorized(provider)
    await provider.capture(payment.payment_id, FEE, "capture")
    with pytest.raises(PaymentStateError):
        await provider.release(payment.payment_id, "release")


async def test_release_is_idempotent_by_key_only(provider: FakePaymentProvider) -> None:
    payment = await authorized(provider)
    first = await provider.release(payment.payment_id, "release")
    assert await provider.release(payment.payment_id, "release") == first
    with pytest.raises(PaymentStateError):
        await provider.release(payment.payment_id, "release-again")


async def test_release_of_a_pending_payment_cancels_it(provider: FakePaymentProvider) -> None:
    pending = await provider.reserve(request("reserve", "card_3ds"))
    cancelled = await provider.release(pending.payment_id, "release")
    assert cancelled.status is PaymentStatus.DECLINED and cancelled.action_url is None
    assert cancelled.amounts == PaymentAmounts()
    with pytest.raises(PaymentStateError):  # the payer comes back too late
        await provider.approve(pending.payment_id)
    assert (await provider.get(pending.payment_id)).status is PaymentStatus.DECLINED


async def test_refund_in_another_currency_is_refused(provider: FakePaymentProvider) -> None:
    payment = await authorized(provider)
    await provider.capture(payment.payment_id, FEE, "capture")
    with pytest.raises(PaymentStateError) as wrong:
        await provider.refund(payment.payment_id, Money(35000, "EUR"), "refund")
    assert wrong.value.field == "currency"


async def test_unknown_payment_says_not_found(provider: FakePaymentProvider) -> None:
    with pytest.raises(PaymentStateError) as missing:
        await provider.get("fakepay_nope")
    assert missing.value.code is ErrorCode.NOT_FOUND


# --- Idempotency -----------------------------------------------------------------------------------


async def test_replay_returns_the_stored_first_result(provider: FakePaymentProvider) -> None:
    request_ = request("reserve")
    first = await provider.reserve(request_)
    await provider.capture(first.payment_id, FEE, "capture")
    replayed = await provider.reserve(request_)
    assert replayed == first  # the first response, as a real PSP replays it; `get` has the news
    assert replayed.status is PaymentStatus.AUTHORIZED
    assert (await provider.get(first.payment_id)).status is PaymentStatus.CAPTURED


async def test_keys_are_global_across_operations(provider: FakePaymentProvider) -> None:
    payment = await authorized(provider, key="shared")
    with pytest.raises(IdempotencyConflict):
        await provider.capture(payment.payment_id, FEE, "shared")
    other = await authorized(provider, key="reserve-2")
    await provider.capture(payment.payment_id, FEE, "capture")
    with pytest.raises(IdempotencyConflict):
        await provider.capture(other.payment_id, FEE, "capture")


async def test_refused_request_is_not_stored_under_its_key(provider: FakePaymentProvider) -> None:
    pending = await provider.reserve(request("reserve", "card_3ds"))
    with pytest.raises(PaymentStateError):
        await provider.capture(pending.payment_id, FEE, "capture")
    await provider.approve(pending.payment_id)
    # Retrying with the same key now succeeds: only executed outcomes are stored.
    assert (await provider.capture(pending.payment_id, FEE, "capture")).status is PaymentStatus.CAPTURED


async def test_empty_key_is_required(provider: FakePaymentProvider) -> None:
    with pytest.raises(ProviderError) as missing:
        await provider.reserve(request(""))
    assert missing.value.code is ErrorCode.REQUIRED


# --- Persistence and concurrency -------------------------------------------------------------------


async def test_state_survives_a_new_provider_on_the_same_data_dir(tmp_path: Path) -> None:
    payment = await authorized(make(tmp_path))
    other = make(tmp_path)  # what the worker process builds
    assert (await other.get(payment.payment_id)).status is PaymentStatus.AUTHORIZED
    captured = await other.capture(payment.payment_id, FEE, "capture")
    assert captured.status is PaymentStatus.CAPTURED
    assert (await other.reserve(request("reserve"))).payment_id == payment.payment_id  # keys shared too
    assert not list(tmp_path.glob("fake-psp*"))  # noqa: ASYNC240 - no file of its own, the platform's database


async def test_state_is_shared_with_another_process(tmp_path: Path) -> None:
    payment = await authorized(make(tmp_path))
    script = (
        "import asyncio, sys\n"
        "from legetime.core.platform.config import Settings\n"
        "from legetime.core.platform.db.plugin_tables import PluginDatabase\n"
        "from legetime.core.platform.money import Money\n"
        "from legetime.plugins.payments.fake import FakePaymentProvider\n"
        "url = Settings(data_dir=sys.argv[1]).resolved_database_url\n"
        "p = FakePaymentProvider(PluginDatabase(url), b'k' * 32)\n"
        "asyncio.run(p.capture(sys.argv[2], Money(35000, 'NOK'), 'capture-in-worker'))\n"
    )
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(tmp_path),
        payment.payment_id,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert await asyncio.wait_for(worker.wait(), timeout=60) == 0
    assert (await make(tmp_path).get(payment.payment_id)).amounts.captured == 35000


async def test_concurrent_captures_never_over_capture(tmp_path: Path) -> None:
    payment = await authorized(make(tmp_path))
    providers = [make(tmp_path) for _ in range(2)]  # two "processes" on one PSP store

    async def capture(i: int) -> Payment | PaymentStateError:
        try:
            return await providers[i % 2].capture(payment.payment_id, Money(5000, "NOK"), f"capture-{i}")
        except PaymentStateError as exc:
            return exc

    results = await asyncio.gather(*(capture(i) for i in range(12)))
    succeeded = [r for r in results if isinstance(r, Payment)]
    assert len(succeeded) == 7  # 7 x 50 kr = 350 kr; the other 5 are refused
    assert sorted(r.amounts.captured for r in succeeded) == list(range(5000, 35001, 5000))
    assert (await make(tmp_path).get(payment.payment_id)).amounts.captured == 35000


async def test_concurrent_retries_of_one_key_capture_once(tmp_path: Path) -> None:
    payment = await authorized(make(tmp_path))
    providers = [make(tmp_path) for _ in range(2)]
    results = await asyncio.gather(
        *(providers[i % 2].capture(payment.payment_id, Money(10000, "NOK"), "same-key") for i in range(8))
    )
    assert {r.amounts.captured for r in results} == {10000}
    assert (await providers[0].get(payment.payment_id)).amounts.captured == 10000


async def test_latency_is_simulated(tmp_path: Path) -> None:
    provider = make(tmp_path, latency_ms=50)
    started = time.monotonic()
    await authorized(provider)
    assert time.monotonic() - started >= 0.05


# --- Webhooks --------------------------------------------------------------------------------------


async def test_webhook_round_trip(provider: FakePaymentProvider) -> None:
    headers, body = provider.webhook_for("fakepay_1", "payment.captured")
    assert headers["Fake-Signature"].startswith("t=")
    event = await provider.parse_webhook(headers, body, "https://x.example/hook")
    assert (event.payment_id, event.event) == ("fakepay_1", "payment.captured")
    lower = {name.lower(): value for name, value in headers.items()}
    assert (await provider.parse_webhook(lower, body, "https://x.example/hook")) == event


@pytest.mark.parametrize(
    "header",
    ["", "garbage", "t=abc,v1=00", "v1=00", "t=1700000000", "t=1,t=2,v1=00", "t=1700000000,v1"],
)
async def test_malformed_signature_header_is_rejected(provider: FakePaymentProvider, header: str) -> None:
    _, body = provider.webhook_for("fakepay_1", "payment.captured")
    with pytest.raises(ProviderError) as rejected:
        await provider.parse_webhook({"Fake-Signature": header}, body, "https://x.example/hook")
    assert rejected.value.code is ErrorCode.INVALID
    assert rejected.value.field is None


async def test_webhook_without_signature_is_rejected(provider: FakePaymentProvider) -> None:
    _, body = provider.webhook_for("fakepay_1", "payment.captured")
    with pytest.raises(ProviderError):
        await provider.parse_webhook({}, body, "https://x.example/hook")


async def test_webhook_freshness_window(provider: FakePaymentProvider, clock: Clock) -> None:
    for offset, accepted in [(-300, True), (-301, False), (300, True), (301, False)]:
        headers, body = provider.webhook_for(
            "fakepay_1", "payment.captured", at=clock.now + timedelta(seconds=offset)
        )
        if accepted:
            await provider.parse_webhook(headers, body, "https://x.example/hook")
        else:
            with pytest.raises(ProviderError):
                await provider.parse_webhook(headers, body, "https://x.example/hook")


async def test_webhook_from_a_provider_with_another_secret_is_rejected(tmp_path: Path) -> None:
    ours = make(tmp_path / "a", webhook_secret="ours")
    theirs = make(tmp_path / "b", webhook_secret="theirs")
    headers, body = theirs.webhook_for("fakepay_1", "payment.captured")
    with pytest.raises(ProviderError):
        await ours.parse_webhook(headers, body, "https://x.example/hook")


async def test_signed_body_that_is_not_an_event_is_rejected(
    provider: FakePaymentProvider, clock: Clock
) -> None:
    body = b'{"type": "payment.captured"}'
    timestamp = int(clock.now.timestamp())
    headers = {"Fake-Signature": f"t={timestamp},v1={provider._sign(timestamp, body)}"}
    with pytest.raises(ProviderError):
        await provider.parse_webhook(headers, body, "https://x.example/hook")


# --- Settings --------------------------------------------------------------------------------------


def test_settings_from_env_with_the_secret_masked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LEGETIME_PAYMENTS_FAKE_AUTHORIZATION_TTL_HOURS", "24")
    monkeypatch.setenv("LEGETIME_PAYMENTS_FAKE_WEBHOOK_SECRET", "s3cret-webhook-key")
    monkeypatch.setenv("LEGETIME_PAYMENTS_FAKE_LATENCY_MS", "5")
    settings = FakePaymentSettings()
    assert settings.authorization_ttl_hours == 24
    assert settings.latency_ms == 5
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == "s3cret-webhook-key"
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in settings.model_dump_json()


def test_settings_defaults() -> None:
    settings = FakePaymentSettings()
    assert settings.authorization_ttl_hours == 168
    assert settings.webhook_secret is None
    assert settings.latency_ms == 0
    assert settings.webhook_tolerance_seconds == 300


def test_invalid_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGETIME_PAYMENTS_FAKE_AUTHORIZATION_TTL_HOURS", "0")
    with pytest.raises(ValueError):
        FakePaymentSettings()


def test_webhook_secret_is_derived_when_unset(tmp_path: Path) -> None:
    spec = next(iter(fake.register_providers()))
    one, two = build_provider(spec, tmp_path), build_provider(spec, tmp_path)
    headers, body = one.webhook_for("fakepay_1", "payment.captured")
    asyncio.run(two.parse_webhook(headers, body, "https://x.example/hook"))  # same master secret, same key


# --- The approve page ------------------------------------------------------------------------------


def app() -> httpx.AsyncClient:
    starlette = Starlette(routes=list(fake.register_routes()))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=starlette), base_url="http://legetime.test")


async def test_approve_page_authorizes_and_redirects(provider: FakePaymentProvider) -> None:
    pending = await provider.reserve(
        request("reserve", "card_3ds", return_url="https://legetime.example/betaling/ferdig")
    )
    assert pending.action_url is not None
    async with app() as client:
        response = await client.post(pending.action_url)
    assert response.status_code == 303
    assert response.headers["location"] == "https://legetime.example/betaling/ferdig"
    assert (await provider.get(pending.payment_id)).status is PaymentStatus.AUTHORIZED


async def test_approve_page_approves_on_post_only(provider: FakePaymentProvider) -> None:
    """A GET (a link prefetcher, a preview) only shows the button; the button's POST approves."""
    pending = await provider.reserve(request("reserve", "card_3ds"))
    assert pending.action_url is not None
    async with app() as client:
        for _ in range(2):
            page = await client.get(pending.action_url)
            assert page.status_code == 200 and '<form method="post">' in page.text
            assert "Godkjenn betalingen" in page.text and 'lang="nb"' in page.text
            assert page.headers["cache-control"] == "no-store"
        assert (await provider.get(pending.payment_id)).status is PaymentStatus.PENDING
        approved = await client.post(pending.action_url)
        assert approved.status_code == 200
        assert (await provider.get(pending.payment_id)).status is PaymentStatus.AUTHORIZED
        after = await client.get(pending.action_url)
    assert after.status_code == 409 and "venter ikke" in after.text


async def test_approve_page_without_return_url_says_so_in_norwegian(provider: FakePaymentProvider) -> None:
    pending = await provider.reserve(request("reserve", "card_3ds"))
    assert pending.action_url is not None
    async with app() as client:
        response = await client.post(pending.action_url)
    assert response.status_code == 200
    assert "Betalingen er godkjent" in response.text
    assert 'lang="nb"' in response.text


async def test_approve_page_for_unknown_or_declined_payment(provider: FakePaymentProvider) -> None:
    with pytest.raises(fake.CardDeclined) as declined:
        await provider.reserve(request("reserve", "card_declined"))
    async with app() as client:
        missing = await client.get("/plugins/payments-fake/approve/fakepay_nope")
        refused = await client.get(f"/plugins/payments-fake/approve/{declined.value.payment_id}")
        missing_post = await client.post("/plugins/payments-fake/approve/fakepay_nope")
        refused_post = await client.post(f"/plugins/payments-fake/approve/{declined.value.payment_id}")
    assert missing.status_code == missing_post.status_code == 404
    assert "Fant ikke betalingen" in missing.text
    assert refused.status_code == refused_post.status_code == 409


# --- Registration ----------------------------------------------------------------------------------


def test_registered_as_a_test_only_payment_provider() -> None:
    hooks = Hooks(create_plugin_manager(load_entry_points=False))
    [spec] = [s for s in hooks.providers() if s.capability is Capability.PAYMENT and s.name == "fake"]
    assert spec.test_only
    assert spec.settings_model is FakePaymentSettings
    assert spec.description
    assert any(route.path == "/plugins/payments-fake/approve/{payment_id}" for route in hooks.routes())
    assert hooks.plugin_info()["plugins.payments.fake"]["description"]


def test_provider_name_is_fake(provider: FakePaymentProvider) -> None:
    assert provider.name == "fake"
