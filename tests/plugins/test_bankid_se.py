"""Swedish BankID (``bankid-se``) beyond the identity contract: mutual TLS, the animated QR code (BankID's
published example), hint codes → messages, personal numbers (Luhn, samordningsnummer), error responses
mapped to typed errors, settings and registration. Runs against tests/fakes/bankid_se.py on a real
local HTTPS port that demands a client certificate."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest

from legetime.core.identity.swedish_personal_number import (
    InvalidSwedishPersonalNumber,
    is_valid_swedish_personal_number,
    luhn_ok,
    parse_swedish_personal_number,
)
from legetime.core.platform.errors import (
    ConfigError,
    ErrorCode,
    IdentityRejected,
    ProviderError,
    ProviderUnavailable,
)
from legetime.core.platform.hooks import Hooks
from legetime.core.platform.plugins import create_plugin_manager
from legetime.core.platform.providers import Capability
from legetime.core.platform.providers.identity import (
    AssuranceLevel,
    LoginPending,
    LoginRequest,
    VerifiedIdentity,
)
from legetime.plugins.bankid.swedish import (
    FAILED_HINTS,
    MESSAGES,
    PENDING_HINTS,
    BankIdSeSettings,
    SwedishBankId,
    build_ssl_context,
    failed_message,
    pending_message,
    qr_data,
)
from tests.fakes.bankid_se import BankIdSeFake, FakeUser
from tests.fakes.certificates import P12_PASSWORD, Pki, make_pki
from tests.fakes.server import Tls, serve

# BankID's QR code guide (developers.bankid.com/how-to-guides/qr-code), its worked example.
QR_START_TOKEN = "67df3917-fa0d-44e5-b327-edcc928297f8"
QR_START_SECRET = "d28db9a7-4cde-429e-a983-359be676944c"
QR_AT_0 = f"bankid.{QR_START_TOKEN}.0.dc69358e712458a66a7525beef148ae8526b1c71610eff2c16cdffb4cdac9bf8"
QR_AT_1 = f"bankid.{QR_START_TOKEN}.1.949d559bf23403952a94d103e67743126381eda00f0b3cbddbf7c96b1adcbce2"

SKATTEVERKET_EXAMPLE = "198112289874"  # Skatteverket's example personnummer, 28 Dec 1981
TOLVAN = "191212121212"  # the classic Swedish test person, 12 Dec 1912
COORDINATION = "199001612382"  # samordningsnummer: day 61 = 1 Jan 1990


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def fake() -> BankIdSeFake:
    return BankIdSeFake()


@pytest.fixture
def url(fake: BankIdSeFake, pki: Pki) -> Iterator[str]:
    with serve(fake.app, tls=Tls(pki.server_cert, pki.server_key, client_ca=pki.ca_cert)) as base:
        yield base


def settings_for(url: str, pki: Pki, **overrides: Any) -> BankIdSeSettings:
    values: dict[str, Any] = {
        "base_url": f"{url}/rp/v6.0",
        "ca_cert": pki.ca_cert,
        "client_cert": pki.client_cert,
        "client_key": pki.client_key,
        "end_user_ip": "192.0.2.10",
    } | overrides
    return BankIdSeSettings(**values)


class Clock:
    def __init__(self) -> None:
        self.now = 1_760_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def provider(url: str, pki: Pki, clock: Clock) -> SwedishBankId:
    return SwedishBankId(settings_for(url, pki), clock=clock)


def client_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


# --- the animated QR code ---------------------------------------------------------------------------


def test_qr_code_matches_bankids_published_example() -> None:
    assert qr_data(QR_START_TOKEN, QR_START_SECRET, 0) == QR_AT_0
    assert qr_data(QR_START_TOKEN, QR_START_SECRET, 1) == QR_AT_1


async def test_the_qr_code_changes_every_second_and_never_carries_the_secret(
    provider: SwedishBankId, fake: BankIdSeFake, clock: Clock
) -> None:
    start = await provider.start(LoginRequest())
    seen = [start.challenge.qr_data]
    for _ in range(3):
        clock.now += 1
        pending = await provider.complete(start.state, {})
        assert isinstance(pending, LoginPending)
        assert pending.hint_code == "outstandingTransaction"
        seen.append(pending.qr_data)
    token, secret = start.state["qr_start_token"], start.state["qr_start_secret"]
    assert seen == [qr_data(token, secret, seconds) for seconds in range(4)]
    assert len(set(seen)) == 4
    clock.now += 0.5  # same whole second: same code
    again = await provider.complete(start.state, {})
    assert isinstance(again, LoginPending) and again.qr_data == seen[-1]
    frontend = repr(start.challenge) + repr(again) + repr(seen)
    assert secret not in frontend and not fake.qr_secret_seen(frontend)


async def test_the_fake_accepts_the_qr_code_the_provider_draws(
    url: str, pki: Pki, fake: BankIdSeFake
) -> None:
    provider = SwedishBankId(settings_for(url, pki))  # real clock, as the fake checks the time
    start = await provider.start(LoginRequest())
    pending = await provider.complete(start.state, {})
    assert isinstance(pending, LoginPending) and pending.qr_data
    assert fake.scan(pending.qr_data)
    signing = await provider.complete(start.state, {})
    assert isinstance(signing, LoginPending)
    assert signing.hint_code == "userSign" and signing.message == MESSAGES["RFA9"]
    assert signing.qr_data is None  # scanned: stop showing the QR code
    identity = await provider.complete(start.state, {})
    assert isinstance(identity, VerifiedIdentity)


async def test_a_qr_code_with_the_wrong_key_fails_the_order(url: str, pki: Pki, fake: BankIdSeFake) -> None:
    provider = SwedishBankId(settings_for(url, pki))
    start = await provider.start(LoginRequest())
    forged = qr_data(start.state["qr_start_token"], "not-the-secret", 0)
    assert not fake.scan(forged)
    with pytest.raises(IdentityRejected) as caught:
        await provider.complete(start.state, {})
    assert caught.value.message == MESSAGES["RFA17B"]


# --- a login to its end -----------------------------------------------------------------------------


async def test_a_completed_login_is_a_swedish_identity(provider: SwedishBankId, fake: BankIdSeFake) -> None:
    fake.user = FakeUser(COORDINATION, "Elsa", "Berg")
    start = await provider.start(LoginRequest())
    assert start.challenge.autostart_token and start.challenge.poll_interval_seconds == 1.0
    fake.approve(start.state["order_ref"], after_collects=0)
    identity = await provider.complete(start.state, {})
    assert isinstance(identity, VerifiedIdentity)
    assert (identity.national_id, identity.country, identity.provider) == (COORDINATION, "SE", "bankid-se")
    assert (identity.given_name, identity.family_name) == ("Elsa", "Berg")
    assert identity.birth_date == date(1990, 1, 1)
    assert identity.assurance_level is AssuranceLevel.HIGH
    assert identity.extra["order_ref"] == start.state["order_ref"]
    assert identity.extra["bankid_issue_date"] == "2024-01-15"
    assert {"signature", "ocsp_response"} <= set(identity.extra)
    request = next(body for operation, body in fake.calls if operation == "auth")
    assert request == {"endUserIp": "192.0.2.10"}


async def test_an_invalid_personal_number_from_bankid_is_rejected(
    provider: SwedishBankId, fake: BankIdSeFake
) -> None:
    fake.user = FakeUser("198112289875", "Bad", "Luhn")
    start = await provider.start(LoginRequest())
    fake.approve(start.state["order_ref"], after_collects=0)
    with pytest.raises(IdentityRejected) as caught:
        await provider.complete(start.state, {})
    assert "198112289875" not in caught.value.message


async def test_a_login_hint_is_validated_and_sent_as_the_requirement(
    url: str, pki: Pki, fake: BankIdSeFake
) -> None:
    provider = SwedishBankId(
        settings_for(url, pki, pin_code=True, user_visible_data="Logg inn hos **Legetime**")
    )
    with pytest.raises(InvalidSwedishPersonalNumber) as caught:
        await provider.start(LoginRequest(login_hint="19811228-9875"))
    assert caught.value.field == "loginHint" and caught.value.reason == "check_digit"
    assert fake.calls == []  # refused before calling BankID
    start = await provider.start(LoginRequest(login_hint="19811228-9874"))
    body = fake.calls[-1][1]
    assert body["requirement"] == {"personalNumber": SKATTEVERKET_EXAMPLE, "pinCode": True}
    assert body["userVisibleDataFormat"] == "simpleMarkdownV1"
    fake.approve(start.state["order_ref"], after_collects=0)
    identity = await provider.complete(start.state, {})
    assert isinstance(identity, VerifiedIdentity) and identity.national_id == SKATTEVERKET_EXAMPLE


async def test_one_login_at_a_time_per_personal_number(provider: SwedishBankId) -> None:
    first = await provider.start(LoginRequest(login_hint=TOLVAN))
    with pytest.raises(IdentityRejected) as caught:
        await provider.start(LoginRequest(login_hint=TOLVAN))
    assert caught.value.message == MESSAGES["RFA4"]
    with pytest.raises(IdentityRejected) as cancelled:  # BankID aborts the order in progress, too
        await provider.complete(first.state, {})
    assert cancelled.value.message == MESSAGES["RFA3"]


async def test_cancel_ends_the_order_and_may_be_repeated(provider: SwedishBankId, fake: BankIdSeFake) -> None:
    start = await provider.start(LoginRequest())
    await provider.cancel(start.state)
    assert start.state["order_ref"] not in fake.orders
    await provider.cancel(start.state)  # already gone: no error
    with pytest.raises(IdentityRejected):
        await provider.complete(start.state, {})


# --- hint codes → messages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hint", "launch", "rfa"),
    [
        ("outstandingTransaction", "qr", "RFA1"),
        ("outstandingTransaction", "autostart", "RFA13"),
        ("started", "qr", "RFA15"),
        ("userMrtd", "qr", "RFA23"),
        ("userSign", "qr", "RFA9"),
    ],
)
async def test_pending_hint_codes_show_the_recommended_message(
    provider: SwedishBankId, fake: BankIdSeFake, hint: str, launch: str, rfa: str
) -> None:
    start = await provider.start(LoginRequest())
    fake.set_hint(start.state["order_ref"], hint)
    pending = await provider.complete(start.state, {"launch": launch})
    assert isinstance(pending, LoginPending)
    assert (pending.hint_code, pending.message) == (hint, MESSAGES[rfa])


@pytest.mark.parametrize(
    ("hint", "launch", "rfa"),
    [
        ("userCancel", "qr", "RFA6"),
        ("expiredTransaction", "qr", "RFA8"),
        ("certificateErr", "qr", "RFA16"),
        ("cancelled", "qr", "RFA3"),
        ("startFailed", "qr", "RFA17B"),
        ("startFailed", "autostart", "RFA17A"),
        ("somethingNew", "qr", "RFA22"),
    ],
)
async def test_failed_hint_codes_are_rejections_with_the_recommended_message(
    provider: SwedishBankId, fake: BankIdSeFake, hint: str, launch: str, rfa: str
) -> None:
    start = await provider.start(LoginRequest())
    fake.fail(start.state["order_ref"], hint)
    with pytest.raises(IdentityRejected) as caught:
        await provider.complete(start.state, {"launch": launch})
    assert caught.value.message == MESSAGES[rfa]
    assert caught.value.code is ErrorCode.IDENTITY_REJECTED


def test_every_documented_hint_code_has_a_norwegian_message() -> None:
    pending = {"outstandingTransaction", "noClient", "started", "userMrtd", "userCallConfirm", "userSign"}
    failed = {
        "expiredTransaction", "certificateErr", "userCancel", "cancelled", "startFailed",
        "userDeclinedCall", "notSupportedByUserApp", "transactionRiskBlocked",
    }  # fmt: skip
    assert set(PENDING_HINTS) == pending and set(FAILED_HINTS) == failed
    for table in (PENDING_HINTS, FAILED_HINTS):
        for variants in table.values():
            assert set(variants) == {"qr", "autostart"} and all(v in MESSAGES for v in variants.values())
    assert pending_message("anUnknownCode") == MESSAGES["RFA21"]
    assert failed_message(None) == MESSAGES["RFA22"]
    assert all("BankID" in m or "Prøv" in m or "avbrutt" in m or "pågår" in m for m in MESSAGES.values())


# --- personal numbers (core.swedish_personal_number) --------------------------------------------------


@pytest.mark.parametrize(
    ("value", "born", "coordination"),
    [
        (SKATTEVERKET_EXAMPLE, date(1981, 12, 28), False),
        ("19811228-9874", date(1981, 12, 28), False),
        (TOLVAN, date(1912, 12, 12), False),
        (COORDINATION, date(1990, 1, 1), True),
    ],
)
def test_valid_personal_numbers(value: str, born: date, coordination: bool) -> None:
    number = parse_swedish_personal_number(value)
    assert number.value == value.replace("-", "")
    assert (number.birth_date, number.coordination_number) == (born, coordination)
    assert value.replace("-", "") not in repr(number)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("198112289875", "check_digit"),  # one digit off
        ("198112829874", "check_digit"),  # two digits swapped
        ("8112289874", "format"),  # 10 digits: century unknown
        ("19811228987a", "format"),
        ("199013012381", "date"),  # month 13 (Luhn-valid)
        ("199002302389", "date"),  # 30 February (Luhn-valid)
        ("209901012386", "date"),  # born in the future (Luhn-valid)
    ],
)
def test_invalid_personal_numbers(value: str, reason: str) -> None:
    if reason == "date":
        assert luhn_ok(value[2:])  # only the date is wrong
    with pytest.raises(InvalidSwedishPersonalNumber) as caught:
        parse_swedish_personal_number(value)
    assert caught.value.reason == reason
    assert caught.value.code is ErrorCode.INVALID_NATIONAL_ID
    assert value not in caught.value.message
    assert not is_valid_swedish_personal_number(value)


# --- mutual TLS -----------------------------------------------------------------------------------------


async def test_the_rp_certificate_from_a_pkcs12_file_works(url: str, pki: Pki) -> None:
    settings = settings_for(
        url,
        pki,
        client_cert=None,
        client_key=None,
        client_p12=pki.client_p12,
        client_p12_password=P12_PASSWORD,
    )
    start = await SwedishBankId(settings).start(LoginRequest())
    assert start.state["order_ref"]


def test_a_wrong_pkcs12_password_names_the_setting(url: str, pki: Pki) -> None:
    settings = settings_for(
        url, pki, client_cert=None, client_key=None, client_p12=pki.client_p12, client_p12_password="wrong"
    )
    with pytest.raises(ConfigError) as caught:
        build_ssl_context(settings)
    assert caught.value.setting == "LEGETIME_BANKID_SE_CLIENT_P12_PASSWORD"


async def test_without_a_client_certificate_the_server_refuses(url: str, pki: Pki) -> None:
    no_client_cert = ssl.create_default_context(cafile=str(pki.ca_cert))
    provider = SwedishBankId(settings_for(url, pki), ssl_context=no_client_cert)
    with pytest.raises(ProviderError) as caught:
        await provider.start(LoginRequest())
    assert caught.value.code is ErrorCode.PROVIDER_UNAVAILABLE


async def test_a_client_certificate_from_another_ca_is_refused(
    url: str, pki: Pki, fake: BankIdSeFake
) -> None:
    settings = settings_for(url, pki, client_cert=pki.other_client_cert, client_key=pki.other_client_key)
    with pytest.raises(ProviderError):
        await SwedishBankId(settings).start(LoginRequest())
    assert fake.calls == []  # the request never reached the API


async def test_a_server_not_signed_by_the_configured_ca_is_refused(pki: Pki) -> None:
    impostor = BankIdSeFake()
    tls = Tls(pki.other_server_cert, pki.other_server_key, client_ca=pki.ca_cert)
    with serve(impostor.app, tls=tls) as url:
        provider = SwedishBankId(settings_for(url, pki))
        with pytest.raises(ProviderError) as caught:
            await provider.start(LoginRequest())
    assert not caught.value.retryable  # a configuration or security problem: retrying will not help
    assert impostor.calls == []


# --- error responses → typed errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_code"),
    [(503, "maintenance"), (500, "internalError"), (408, "requestTimeout"), (502, "somethingElse")],
)
async def test_bankid_being_down_is_retryable(
    provider: SwedishBankId, fake: BankIdSeFake, status: int, error_code: str
) -> None:
    fake.fail_next(status, error_code)
    with pytest.raises(ProviderUnavailable) as caught:
        await provider.start(LoginRequest())
    assert caught.value.retryable


@pytest.mark.parametrize(
    ("status", "error_code"),
    [(401, "unauthorized"), (403, "unauthorized"), (400, "invalidParameters"), (415, "unsupportedMediaType")],
)
async def test_our_own_mistakes_are_not_retryable(
    provider: SwedishBankId, fake: BankIdSeFake, status: int, error_code: str
) -> None:
    fake.fail_next(status, error_code)
    with pytest.raises(ProviderError) as caught:
        await provider.start(LoginRequest())
    assert not caught.value.retryable and not isinstance(caught.value, ProviderUnavailable)
    assert getattr(caught.value, "error_code", None) == error_code


async def test_a_wrong_base_path_is_not_found(url: str, pki: Pki) -> None:
    settings = settings_for(url, pki)
    settings = settings.model_copy(update={"base_url": f"{url}/rp/v5.1"})
    with pytest.raises(ProviderError) as caught:
        await SwedishBankId(settings).start(LoginRequest())
    assert getattr(caught.value, "error_code", None) == "notFound"


async def test_an_unknown_order_is_a_rejected_login(provider: SwedishBankId) -> None:
    start = await provider.start(LoginRequest())
    state = {**start.state, "order_ref": "4f2a9c1e-0000-4000-8000-000000000000"}
    with pytest.raises(IdentityRejected):
        await provider.complete(state, {})
    with pytest.raises(IdentityRejected):
        await provider.complete({"v": 1}, {})  # not a state this provider wrote


async def test_an_unreachable_server_is_retryable(pki: Pki) -> None:
    with serve(BankIdSeFake().app) as url:  # started and stopped: nothing listens there any more
        pass
    provider = SwedishBankId(settings_for(url.replace("http://", "https://"), pki, timeout_seconds=2))
    with pytest.raises(ProviderUnavailable):
        await provider.start(LoginRequest())


# --- the fake enforces the contract -------------------------------------------------------------------


def test_the_fake_refuses_what_bankid_refuses(url: str, pki: Pki) -> None:
    with httpx.Client(base_url=f"{url}/rp/v6.0", verify=client_context(pki)) as client:
        assert client.post("/auth", content=b'{"endUserIp": "127.0.0.1"}').json()["errorCode"] == (
            "unsupportedMediaType"
        )
        assert client.get("/auth").json()["errorCode"] == "methodNotAllowed"
        assert client.post("/auth", json={}).json()["errorCode"] == "invalidParameters"
        v5_style = {"endUserIp": "127.0.0.1", "personalNumber": SKATTEVERKET_EXAMPLE}
        assert client.post("/auth", json=v5_style).json()["errorCode"] == "invalidParameters"
        bad_number = {"endUserIp": "127.0.0.1", "requirement": {"personalNumber": "198112289875"}}
        assert client.post("/auth", json=bad_number).status_code == 400
        assert client.post("/collect", json={"orderRef": "nope"}).json()["errorCode"] == "invalidParameters"
        assert client.post("/sign-in", json={}).status_code == 404


# --- settings and registration -----------------------------------------------------------------------


def test_settings_name_what_is_missing(pki: Pki) -> None:
    with pytest.raises(pydantic.ValidationError, match="LEGETIME_BANKID_SE_CLIENT_P12"):
        BankIdSeSettings(ca_cert=pki.ca_cert)
    with pytest.raises(pydantic.ValidationError, match="not both"):
        BankIdSeSettings(
            ca_cert=pki.ca_cert,
            client_p12=pki.client_p12,
            client_cert=pki.client_cert,
            client_key=pki.client_key,
        )
    with pytest.raises(pydantic.ValidationError, match="https"):
        BankIdSeSettings(
            base_url="http://appapi2.test.bankid.com/rp/v6.0",
            ca_cert=pki.ca_cert,
            client_cert=pki.client_cert,
            client_key=pki.client_key,
        )
    with pytest.raises(pydantic.ValidationError, match="ca_cert"):
        BankIdSeSettings(client_cert=pki.client_cert, client_key=pki.client_key)


def test_settings_come_from_the_environment(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGETIME_BANKID_SE_CA_CERT", str(pki.ca_cert))
    monkeypatch.setenv("LEGETIME_BANKID_SE_CLIENT_P12", str(pki.client_p12))
    monkeypatch.setenv("LEGETIME_BANKID_SE_CLIENT_P12_PASSWORD", P12_PASSWORD)
    settings = BankIdSeSettings()
    assert settings.base_url == "https://appapi2.test.bankid.com/rp/v6.0"
    assert P12_PASSWORD not in repr(settings)  # a secret, masked


def test_registered_as_a_real_provider_that_is_not_enabled_by_default(tmp_path: Path) -> None:
    from legetime.core.platform.config import Settings

    spec = next(
        spec
        for spec in Hooks(create_plugin_manager(load_entry_points=False)).providers()
        if spec.name == "bankid-se"
    )
    assert spec.capability is Capability.IDENTITY and not spec.test_only
    assert "bankid-se" not in Settings(data_dir=tmp_path).identity_providers
    assert dataclasses.is_dataclass(spec)


# --- through GraphQL ------------------------------------------------------------------------------------

START = """mutation($provider: String) { startLogin(input: {provider: $provider}) {
  handle qrData autostartToken pollIntervalSeconds errors { code message } } }"""
COMPLETE = """mutation($handle: String!) { completeLogin(input: {handle: $handle, params: {launch: "qr"}}) {
  token pending message qrData errors { code message } } }"""


def test_graphql_hands_out_a_fresh_qr_code_per_poll_and_never_the_secret(
    url: str, pki: Pki, fake: BankIdSeFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    from legetime.core.platform.config import Settings
    from legetime.core.platform.db.migrate import upgrade
    from legetime.core.platform.runtime import Platform
    from legetime.schema.app import create_app
    from tests.api import Api

    for name, value in {
        "BASE_URL": f"{url}/rp/v6.0",
        "CA_CERT": str(pki.ca_cert),
        "CLIENT_P12": str(pki.client_p12),
        "CLIENT_P12_PASSWORD": P12_PASSWORD,
        "END_USER_IP": "192.0.2.10",
    }.items():
        monkeypatch.setenv(f"LEGETIME_BANKID_SE_{name}", value)
    settings = Settings(data_dir=tmp_path / "data", identity_providers=["bankid-test", "bankid-se"])
    upgrade(settings.resolved_database_url)
    platform = Platform.create(settings, load_entry_points=False)
    with TestClient(create_app(platform)) as client:
        api = Api(client)
        started = api.raw(START, provider="bankid-se")["data"]["startLogin"]
        assert started["errors"] == [] and started["pollIntervalSeconds"] == 1.0
        assert started["qrData"].startswith("bankid.") and started["autostartToken"]
        answers = [api.raw(COMPLETE, handle=started["handle"]) for _ in range(2)]
        for answer in answers:
            payload = answer["data"]["completeLogin"]
            assert payload["pending"] and payload["message"] == MESSAGES["RFA1"]
            assert payload["qrData"].split(".")[1] == started["qrData"].split(".")[1]
        seen = repr(started) + repr(answers)
        assert not fake.qr_secret_seen(seen)
        order_ref = next(iter(fake.orders))
        fake.approve(order_ref, after_collects=0)
        done = api.raw(COMPLETE, handle=started["handle"])["data"]["completeLogin"]
        # The core takes Swedish patients (legetime.core.identity.countries; tests/test_swedish_patients.py).
        assert done["errors"] == [] and done["token"]
