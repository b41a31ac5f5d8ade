"""The simulated BankID's own behaviour: what the identity contract does not cover (synthetic IDs only,
poll rounds, names, expiry on the clock, settings from the environment, the plugin's registration)."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pydantic
import pytest

from legetime.core.identity.nationalid import InvalidNationalId, parse_national_id
from legetime.core.platform.errors import ErrorCode, IdentityRejected, ValidationError
from legetime.core.platform.hooks import Hooks
from legetime.core.platform.plugins import create_plugin_manager
from legetime.core.platform.providers import Capability, ProviderSpec
from legetime.core.platform.providers.identity import (
    AssuranceLevel,
    LoginPending,
    LoginRequest,
    VerifiedIdentity,
)
from legetime.plugins.bankid import simulated
from legetime.plugins.bankid.simulated import GIVEN_NAMES, BankIdTestSettings, SimulatedBankId
from legetime.testing import build_provider

# Synthetic (Test-Norge, month + 80) national IDs, checked by tests/rules/test_nationalid.py's rules.
FEMALE = "17889230266"  # 17 Aug 1992
MALE = "02818520150"  # 2 Jan 1985
CHILD = "05921550016"  # 5 Dec 2015, female
SYNTHETIC_D_NUMBER = "50846202355"  # 10 Apr 1962, male
NOT_SYNTHETIC = "13097248022"  # a valid ordinary fødselsnummer (NAV's published example)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture(autouse=True)
def _no_bankid_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LEGETIME_BANKID_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture
def spec() -> ProviderSpec:
    (spec,) = simulated.register_providers()
    return spec


@pytest.fixture
def provider(spec: ProviderSpec, tmp_path: Path) -> SimulatedBankId:
    built = build_provider(spec, tmp_path)
    assert isinstance(built, SimulatedBankId)
    return built


async def login(provider: SimulatedBankId, national_id: str) -> VerifiedIdentity:
    start = await provider.start(LoginRequest(login_hint=national_id))
    result = await provider.complete(start.state, {"poll_round": "1"})
    assert isinstance(result, VerifiedIdentity)
    return result


# --- registration ----------------------------------------------------------------------------------


def test_registered_as_a_test_only_identity_provider() -> None:
    specs = [
        s
        for s in Hooks(create_plugin_manager(load_entry_points=False)).providers()
        if s.name == "bankid-test"
    ]
    assert len(specs) == 1
    (spec,) = specs
    assert spec.capability is Capability.IDENTITY
    assert spec.test_only
    assert spec.settings_model is BankIdTestSettings
    assert spec.plugin == "plugins.bankid.simulated"
    info = Hooks(create_plugin_manager(load_entry_points=False)).plugin_info()
    assert info["plugins.bankid.simulated"]["description"]


# --- who may log in --------------------------------------------------------------------------------


@pytest.mark.parametrize("national_id", [FEMALE, MALE, CHILD, SYNTHETIC_D_NUMBER, "178892 302 66"])
async def test_synthetic_ids_log_in(provider: SimulatedBankId, national_id: str) -> None:
    identity = await login(provider, national_id)
    parsed = parse_national_id(national_id)
    assert identity.national_id == parsed.value
    assert identity.birth_date == parsed.birth_date
    assert identity.assurance_level is AssuranceLevel.HIGH
    assert identity.provider == "bankid-test"
    assert identity.extra["simulated"] == "true"


async def test_birth_date_comes_from_the_id(provider: SimulatedBankId) -> None:
    assert (await login(provider, CHILD)).birth_date == date(2015, 12, 5)
    assert (await login(provider, SYNTHETIC_D_NUMBER)).birth_date == date(1962, 4, 10)


async def test_non_synthetic_ids_are_refused(provider: SimulatedBankId) -> None:
    with pytest.raises(IdentityRejected) as caught:
        await provider.start(LoginRequest(login_hint=NOT_SYNTHETIC))
    assert caught.value.code is ErrorCode.IDENTITY_REJECTED
    assert "syntetiske" in caught.value.message


async def test_non_synthetic_ids_can_be_allowed_by_setting(
    spec: ProviderSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEGETIME_BANKID_TEST_ALLOW_NON_SYNTHETIC", "true")
    provider = build_provider(spec, tmp_path)
    assert (await login(provider, NOT_SYNTHETIC)).national_id == NOT_SYNTHETIC


async def test_missing_login_hint_is_a_required_field(provider: SimulatedBankId) -> None:
    for request in (LoginRequest(), LoginRequest(login_hint="  ")):
        with pytest.raises(ValidationError) as caught:
            await provider.start(request)
        assert caught.value.code is ErrorCode.REQUIRED
        assert caught.value.field == "loginHint"


async def test_invalid_login_hint_names_the_field(provider: SimulatedBankId) -> None:
    with pytest.raises(InvalidNationalId) as caught:
        await provider.start(LoginRequest(login_hint="17889230267"))
    assert caught.value.code is ErrorCode.INVALID_NATIONAL_ID
    assert caught.value.field == "loginHint"
    assert caught.value.reason == "check_digits"


# --- state -----------------------------------------------------------------------------------------


async def test_state_holds_transaction_national_id_and_expiry() -> None:
    clock = Clock()
    provider = SimulatedBankId(BankIdTestSettings(login_ttl_seconds=120), clock=clock)
    start = await provider.start(LoginRequest(login_hint=FEMALE))
    assert start.state["national_id"] == FEMALE
    assert start.state["expires_at"] == (clock.now + timedelta(seconds=120)).isoformat()
    assert len(start.state["transaction_id"]) >= 16
    assert start.challenge.expires_at == clock.now + timedelta(seconds=120)
    assert start.challenge.message == "Bekreft innloggingen i BankID (simulert)"
    other = await provider.start(LoginRequest(login_hint=FEMALE))
    assert other.state["transaction_id"] != start.state["transaction_id"]


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"v": 99, "transaction_id": "t", "national_id": FEMALE, "expires_at": "2030-01-01T00:00:00+00:00"},
        {"v": 1, "transaction_id": "t", "national_id": FEMALE, "expires_at": "not a time"},
        {"v": 1, "transaction_id": "t", "national_id": FEMALE, "expires_at": "2030-01-01T00:00:00"},
        {"v": 1, "transaction_id": "t", "expires_at": "2030-01-01T00:00:00+00:00"},
    ],
)
async def test_malformed_state_is_rejected(provider: SimulatedBankId, state: dict[str, object]) -> None:
    with pytest.raises(IdentityRejected):
        await provider.complete(state, {})
    with pytest.raises(IdentityRejected):
        await provider.cancel(state)


async def test_a_tampered_national_id_in_the_state_is_still_checked(provider: SimulatedBankId) -> None:
    start = await provider.start(LoginRequest(login_hint=FEMALE))
    with pytest.raises(IdentityRejected):
        await provider.complete({**start.state, "national_id": NOT_SYNTHETIC}, {})


# --- expiry and user actions -----------------------------------------------------------------------


async def test_login_expires_after_the_ttl() -> None:
    clock = Clock()
    provider = SimulatedBankId(BankIdTestSettings(login_ttl_seconds=600), clock=clock)
    start = await provider.start(LoginRequest(login_hint=MALE))
    clock.advance(timedelta(seconds=599))
    assert isinstance(await provider.complete(start.state, {}), VerifiedIdentity)
    clock.advance(timedelta(seconds=1))
    with pytest.raises(IdentityRejected) as caught:
        await provider.complete(start.state, {})
    assert "tide" in caught.value.message


@pytest.mark.parametrize(("simulate", "words"), [("cancelled_by_user", "avbrutt"), ("expired", "tide")])
async def test_simulated_outcomes(provider: SimulatedBankId, simulate: str, words: str) -> None:
    start = await provider.start(LoginRequest(login_hint=FEMALE))
    with pytest.raises(IdentityRejected) as caught:
        await provider.complete(start.state, {"simulate": simulate})
    assert words in caught.value.message


async def test_unknown_simulation_is_a_validation_error(provider: SimulatedBankId) -> None:
    start = await provider.start(LoginRequest(login_hint=FEMALE))
    with pytest.raises(ValidationError) as caught:
        await provider.complete(start.state, {"simulate": "explode"})
    assert caught.value.field == "simulate"


async def test_cancel_is_quiet_for_a_valid_state(provider: SimulatedBankId) -> None:
    start = await provider.start(LoginRequest(login_hint=FEMALE))
    await provider.cancel(start.state)
    await provider.cancel(start.state)  # idempotent: nothing to undo


# --- poll rounds -----------------------------------------------------------------------------------


async def test_poll_rounds_from_the_environment(
    spec: ProviderSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEGETIME_BANKID_TEST_POLL_ROUNDS", "2")
    provider = build_provider(spec, tmp_path)
    start = await provider.start(LoginRequest(login_hint=FEMALE))
    first = await provider.complete(start.state, {"poll_round": "1"})
    second = await provider.complete(start.state, {"poll_round": "2"})
    assert isinstance(first, LoginPending) and first.hint_code == "outstandingTransaction"
    assert isinstance(second, LoginPending) and second.hint_code == "userSign"
    assert "BankID" in first.message
    assert isinstance(await provider.complete(start.state, {"poll_round": "3"}), VerifiedIdentity)
    # Deterministic: the same round always gets the same answer; a missing counter is round 1.
    assert isinstance(await provider.complete(start.state, {"poll_round": "1"}), LoginPending)
    assert isinstance(await provider.complete(start.state, {}), LoginPending)


async def test_no_poll_rounds_completes_at_once(provider: SimulatedBankId) -> None:
    start = await provider.start(LoginRequest(login_hint=FEMALE))
    assert isinstance(await provider.complete(start.state, {}), VerifiedIdentity)


@pytest.mark.parametrize("poll_round", ["0", "-1", "abc", ""])
async def test_bad_poll_round_is_a_validation_error(provider: SimulatedBankId, poll_round: str) -> None:
    start = await provider.start(LoginRequest(login_hint=FEMALE))
    with pytest.raises(ValidationError) as caught:
        await provider.complete(start.state, {"poll_round": poll_round})
    assert caught.value.field == "poll_round"


# --- names -----------------------------------------------------------------------------------------


async def test_names_are_deterministic_and_match_the_sex_digit(
    provider: SimulatedBankId, tmp_path: Path
) -> None:
    female = await login(provider, FEMALE)
    again = await login(SimulatedBankId(BankIdTestSettings()), FEMALE)
    assert (female.given_name, female.family_name) == (again.given_name, again.family_name)
    assert female.given_name in GIVEN_NAMES["female"]
    assert (await login(provider, MALE)).given_name in GIVEN_NAMES["male"]


async def test_different_ids_get_varied_names(provider: SimulatedBankId) -> None:
    ids = [
        synthetic_id(f"{day:02d}8{day}85{individual:03d}")  # DD 8M 85 III
        for day in range(1, 10)
        for individual in (120, 121)
    ]
    logged_in = [await login(provider, national_id) for national_id in ids if national_id]
    assert len(logged_in) >= 10
    assert len({(i.given_name, i.family_name) for i in logged_in}) >= 5
    assert {i.given_name for i in logged_in} & set(GIVEN_NAMES["female"])
    assert {i.given_name for i in logged_in} & set(GIVEN_NAMES["male"])


def synthetic_id(first9: str) -> str | None:
    """Nine digits plus the pre-2032 check digits (None when a check digit would be 10)."""
    digits = [int(c) for c in first9]
    k1 = -sum(w * d for w, d in zip((3, 7, 6, 1, 8, 9, 4, 5, 2), digits, strict=True)) % 11
    k2 = -sum(w * d for w, d in zip((5, 4, 3, 2, 7, 6, 5, 4, 3, 2), [*digits, k1], strict=True)) % 11
    return None if 10 in (k1, k2) else f"{first9}{k1}{k2}"


# --- settings --------------------------------------------------------------------------------------


async def test_settings_from_the_environment(
    spec: ProviderSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEGETIME_BANKID_TEST_LOGIN_TTL_SECONDS", "90")
    monkeypatch.setenv("LEGETIME_BANKID_TEST_POLL_INTERVAL_SECONDS", "0.5")
    provider = build_provider(spec, tmp_path)
    assert provider.settings.login_ttl_seconds == 90
    before = datetime.now(UTC)
    start = await provider.start(LoginRequest(login_hint=FEMALE))
    assert start.challenge.poll_interval_seconds == 0.5
    assert start.challenge.expires_at is not None
    assert (
        before + timedelta(seconds=90)
        <= start.challenge.expires_at
        <= datetime.now(UTC) + timedelta(seconds=90)
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("POLL_ROUNDS", "-1"),
        ("LOGIN_TTL_SECONDS", "0"),
        ("POLL_INTERVAL_SECONDS", "0"),
        ("ALLOW_NON_SYNTHETIC", "x"),
    ],
)
def test_invalid_settings_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"LEGETIME_BANKID_TEST_{name}", value)
    with pytest.raises(pydantic.ValidationError):
        BankIdTestSettings()
