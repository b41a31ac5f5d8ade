"""The identity contract (``legetime.testing.IdentityContract``), run against every provider the plugins
offer.

How to drive one provider's login (which national ID to use, what the frontend passes while polling, how
a login is made to expire or be refused by the user) lives in ``DRIVERS``, keyed by provider name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from legetime.core.platform.providers import Capability, ProviderSpec
from legetime.core.platform.providers.identity import LoginRequest, LoginStart
from legetime.testing import IdentityContract, IdentityDriver, build_default, build_provider
from legetime.testing.identity import Params, State
from tests.contracts.builtin import check_against_driver, fixtures_for
from tests.fakes.bankid_se import BankIdSeFake
from tests.fakes.certificates import shared_pki
from tests.fakes.openid_provider import OpenIdProviderFake, Person
from tests.fakes.server import Tls, serve
from tests.support import offered_specs

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


DRIVERS: dict[str, IdentityDriver] = {
    "bankid-test": IdentityDriver(
        request=lambda: LoginRequest(login_hint=SYNTHETIC_FEMALE),
        expected_national_id=SYNTHETIC_FEMALE,
        poll_params=lambda start, n: {"poll_round": str(n)},
        expired=_bankid_test_expired,
        cancelled_by_user=lambda start: (start.state, {"simulate": "cancelled_by_user"}),
        build=build_default,
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


legetime_spec, legetime_driver = fixtures_for(Capability.IDENTITY, DRIVERS, __file__)


class TestIdentityContract(IdentityContract):
    pass


async def test_the_check_is_ok_against_the_driver(
    legetime_spec: ProviderSpec, legetime_driver: Any, tmp_path: Path
) -> None:
    await check_against_driver(legetime_spec, legetime_driver, tmp_path)
