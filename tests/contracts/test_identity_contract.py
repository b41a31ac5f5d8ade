"""The contract every identity provider keeps, run against every provider the plugins offer.

How to drive one provider's login (which national ID to use, what the frontend passes while polling, how
a login is made to expire or be refused by the user) lives in ``DRIVERS``, keyed by provider name. A
provider without a driver fails the suite: a new provider is held to the contract from the day it is
registered.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from legetime.core.identity.nationalid import parse_national_id
from legetime.core.identity.swedish_personal_number import parse_swedish_personal_number
from legetime.core.platform.errors import ErrorCode, IdentityRejected
from legetime.core.platform.providers import Capability, IdentityProvider, ProviderSpec
from legetime.core.platform.providers.identity import (
    AssuranceLevel,
    LoginPending,
    LoginRequest,
    LoginStart,
    VerifiedIdentity,
)
from tests.fakes.bankid_se import BankIdSeFake
from tests.fakes.certificates import shared_pki
from tests.fakes.openid_provider import OpenIdProviderFake, Person
from tests.fakes.server import Tls, serve
from tests.support import BuildProvider, build_default, build_provider, offered_specs

State = Mapping[str, Any]
Params = Mapping[str, str]


@dataclass(frozen=True)
class IdentityDriver:
    """How the suite makes one provider do what the contract needs."""

    request: Callable[[], LoginRequest]
    """A login request that the (simulated or sandboxed) user will approve."""
    expected_national_id: str | None
    """The national ID that login verifies, when the driver knows it."""
    poll_params: Callable[[LoginStart, int], Params]
    """What the frontend passes to ``complete`` on the n-th call (1-based): poll counters, redirect query…"""
    expired: Callable[[LoginStart], tuple[State, Params]]
    """State and params of the same login after its time ran out."""
    cancelled_by_user: Callable[[LoginStart], tuple[State, Params]]
    """State and params of the same login after the user refused it (in the app or on the provider's page)."""
    max_polls: int = 10
    build: BuildProvider = build_default
    """Builds the provider (and starts whatever fake it talks to) for one test."""


# --- Drivers ---------------------------------------------------------------------------------------

SYNTHETIC_FEMALE = "17889230266"  # Test-Norge style (month + 80), born 17 August 1992


def _bankid_test_expired(start: LoginStart) -> tuple[State, Params]:
    # The core kept the state past its expiry: what it hands back then.
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    return {**start.state, "expires_at": past}, {"poll_round": "1"}


class _BankIdSe:
    """Swedish BankID against the local fake of its RP API, over mutual TLS. The fake runs in this process,
    so the driver plays the user through its controls: scanning the first QR code the challenge shows
    (checked the documented way), refusing in the app, or letting the order time out."""

    fake: BankIdSeFake | None = None

    @classmethod
    @contextmanager
    def build(cls, spec: ProviderSpec, data_dir: Path) -> Iterator[Any]:
        from legetime.plugins.bankid.swedish import BankIdSeSettings

        pki = shared_pki()
        cls.fake = fake = BankIdSeFake()
        with serve(fake.app, tls=Tls(pki.server_cert, pki.server_key, client_ca=pki.ca_cert)) as url:
            settings = BankIdSeSettings(
                base_url=f"{url}/rp/v6.0",
                ca_cert=pki.ca_cert,
                client_cert=pki.client_cert,
                client_key=pki.client_key,
                end_user_ip="127.0.0.1",
            )
            try:
                yield build_provider(spec, data_dir, settings)
            finally:
                cls.fake = None

    @classmethod
    def _fake(cls) -> BankIdSeFake:
        assert cls.fake is not None, "the bankid-se driver's fake is not running"
        return cls.fake

    @classmethod
    def poll_params(cls, start: LoginStart, n: int) -> Params:
        if n == 1:
            assert start.challenge.qr_data
            assert cls._fake().scan(start.challenge.qr_data), "the fake refused the first QR code"
        return {}

    @classmethod
    def expired(cls, start: LoginStart) -> tuple[State, Params]:
        cls._fake().expire(start.state["order_ref"])
        return start.state, {}

    @classmethod
    def cancelled_by_user(cls, start: LoginStart) -> tuple[State, Params]:
        cls._fake().user_cancels(start.state["order_ref"])
        return start.state, {}


class _BankIdOidc:
    """Norwegian BankID over OpenID Connect against a real OpenID provider running locally: the driver plays
    the browser (follows the authorize URL; the provider logs the person in and redirects back)."""

    fake: OpenIdProviderFake | None = None
    callback = "https://legetime.example/plugins/bankid-oidc/callback"

    @classmethod
    @contextmanager
    def build(cls, spec: ProviderSpec, data_dir: Path) -> Iterator[Any]:
        from legetime.plugins.bankid.oidc import BankIdOidcSettings

        cls.fake = fake = OpenIdProviderFake(redirect_uris=[cls.callback], person=_OIDC_PERSON)
        with serve(fake.app) as url:
            fake.issuer = url
            settings = BankIdOidcSettings(
                issuer=url,
                client_id=fake.client_id,
                client_secret=fake.client_secret,
                redirect_uri=cls.callback,
                allowed_return_origins=["https://legetime.example"],
            )
            try:
                yield build_provider(spec, data_dir, settings)
            finally:
                cls.fake = None

    @classmethod
    def _fake(cls) -> OpenIdProviderFake:
        assert cls.fake is not None, "the bankid-oidc driver's OpenID provider is not running"
        return cls.fake

    @classmethod
    def poll_params(cls, start: LoginStart, n: int) -> Params:
        assert start.challenge.redirect_url
        return _query(cls._fake().login(start.challenge.redirect_url)) if n == 1 else {}

    @classmethod
    def expired(cls, start: LoginStart) -> tuple[State, Params]:
        past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        return {**start.state, "expires_at": past}, cls.poll_params(start, 1)

    @classmethod
    def cancelled_by_user(cls, start: LoginStart) -> tuple[State, Params]:
        cls._fake().deny_next = True
        return start.state, cls.poll_params(start, 1)


_OIDC_PERSON = Person("17889230266", "Kari", "Nordmann", "1992-08-17")


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def verified_birth_date(identity: VerifiedIdentity) -> tuple[str, Any]:
    """The normalised national ID and the birth date it encodes, by the country that issued it."""
    if identity.country == "NO":
        national_id = parse_national_id(identity.national_id)  # raises if not a valid national ID
        return national_id.value, national_id.birth_date
    if identity.country == "SE":
        number = parse_swedish_personal_number(identity.national_id)  # Luhn and date
        return number.value, number.birth_date
    pytest.fail(f"no national ID rules for country {identity.country!r}")


DRIVERS: dict[str, IdentityDriver] = {
    "bankid-test": IdentityDriver(
        request=lambda: LoginRequest(login_hint=SYNTHETIC_FEMALE),
        expected_national_id=SYNTHETIC_FEMALE,
        poll_params=lambda start, n: {"poll_round": str(n)},
        expired=_bankid_test_expired,
        cancelled_by_user=lambda start: (start.state, {"simulate": "cancelled_by_user"}),
    ),
    "bankid-se": IdentityDriver(
        request=LoginRequest,  # QR code / autostart: nobody types a personal number
        expected_national_id=None,
        poll_params=_BankIdSe.poll_params,
        expired=_BankIdSe.expired,
        cancelled_by_user=_BankIdSe.cancelled_by_user,
        build=_BankIdSe.build,
    ),
    "bankid-oidc": IdentityDriver(
        request=lambda: LoginRequest(return_url="https://legetime.example/innlogget"),
        expected_national_id=_OIDC_PERSON.national_id,
        poll_params=_BankIdOidc.poll_params,
        expired=_BankIdOidc.expired,
        cancelled_by_user=_BankIdOidc.cancelled_by_user,
        build=_BankIdOidc.build,
    ),
}

SPECS = offered_specs(Capability.IDENTITY)


def test_at_least_one_identity_provider_is_offered() -> None:
    assert SPECS, "no plugin offers an identity provider"


# --- Fixtures --------------------------------------------------------------------------------------


@pytest.fixture(params=SPECS, ids=[spec.name for spec in SPECS])
def spec(request: pytest.FixtureRequest) -> ProviderSpec:
    spec: ProviderSpec = request.param
    return spec


@pytest.fixture
def driver(spec: ProviderSpec) -> IdentityDriver:
    if spec.name not in DRIVERS:
        pytest.fail(
            f"identity provider {spec.name!r} has no contract driver: add one to DRIVERS in {__file__}",
            pytrace=False,
        )
    return DRIVERS[spec.name]


@pytest.fixture
def provider(spec: ProviderSpec, driver: IdentityDriver, tmp_path: Path) -> Iterator[Any]:
    with driver.build(spec, tmp_path) as provider:
        yield provider


def json_round_trip(state: State) -> dict[str, Any]:
    """What the core hands back: it stores the state as JSON."""
    restored: dict[str, Any] = json.loads(json.dumps(state))
    return restored


async def drive_to_success(provider: Any, driver: IdentityDriver, start: LoginStart) -> VerifiedIdentity:
    state = json_round_trip(start.state)
    for n in range(1, driver.max_polls + 1):
        result = await provider.complete(state, driver.poll_params(start, n))
        if isinstance(result, VerifiedIdentity):
            return result
        assert isinstance(result, LoginPending), f"complete returned {result!r}"
        assert result.message
    pytest.fail(f"login still pending after {driver.max_polls} polls")


# --- The contract ----------------------------------------------------------------------------------


def test_provider_implements_the_protocol(spec: ProviderSpec, provider: Any) -> None:
    assert isinstance(provider, IdentityProvider)
    assert provider.name == spec.name


async def test_start_returns_a_challenge_to_follow(provider: Any, driver: IdentityDriver) -> None:
    start = await provider.start(driver.request())
    assert isinstance(start, LoginStart)
    challenge = start.challenge
    assert challenge.redirect_url or (challenge.poll_interval_seconds and challenge.poll_interval_seconds > 0)
    if challenge.expires_at is not None:
        assert challenge.expires_at.tzinfo is not None
        assert challenge.expires_at > datetime.now(UTC)


async def test_state_is_json(provider: Any, driver: IdentityDriver) -> None:
    start = await provider.start(driver.request())
    assert isinstance(start.state, dict)
    assert json_round_trip(start.state) == start.state


async def test_two_logins_do_not_share_state(provider: Any, driver: IdentityDriver) -> None:
    first = await provider.start(driver.request())
    second = await provider.start(driver.request())
    assert first.state != second.state


async def test_complete_returns_a_verified_identity(
    spec: ProviderSpec, provider: Any, driver: IdentityDriver
) -> None:
    identity = await drive_to_success(provider, driver, await provider.start(driver.request()))
    national_id, birth_date = verified_birth_date(identity)
    assert identity.national_id == national_id
    assert identity.birth_date == birth_date
    assert identity.provider == spec.name
    assert isinstance(identity.assurance_level, AssuranceLevel)
    assert identity.given_name.strip()
    assert identity.family_name.strip()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in identity.extra.items())
    if driver.expected_national_id is not None:
        assert identity.national_id == driver.expected_national_id


async def test_expired_login_is_rejected(provider: Any, driver: IdentityDriver) -> None:
    start = await provider.start(driver.request())
    state, params = driver.expired(start)
    with pytest.raises(IdentityRejected) as caught:
        await provider.complete(json_round_trip(state), params)
    assert caught.value.code is ErrorCode.IDENTITY_REJECTED
    assert caught.value.message


async def test_login_refused_by_the_user_is_rejected(provider: Any, driver: IdentityDriver) -> None:
    start = await provider.start(driver.request())
    state, params = driver.cancelled_by_user(start)
    with pytest.raises(IdentityRejected) as caught:
        await provider.complete(json_round_trip(state), params)
    assert caught.value.code is ErrorCode.IDENTITY_REJECTED
    assert caught.value.message


async def test_cancel_does_not_raise(provider: Any, driver: IdentityDriver) -> None:
    start = await provider.start(driver.request())
    assert await provider.cancel(json_round_trip(start.state)) is None
