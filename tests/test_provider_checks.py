"""Every provider's ``check()``: against its local fake it is ok with the fake's credentials, it says what
failed with wrong ones, and it changes nothing on the fake (no message, no payment, no object, no order,
no login). One test goes through GraphQL's ``checkProvider`` with LINK Mobility enabled at run time.

Messages are for operators: they never carry a secret (asserted for every failure here).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from legetime.core.platform.providers import Capability, ProviderCheck, ProviderSpec
from legetime.core.platform.runtime import Platform
from legetime.testing import build_provider
from tests.api import Api
from tests.fakes.bankid_se import BankIdSeFake
from tests.fakes.certificates import shared_pki
from tests.fakes.link_mobility import LinkMobilityFake
from tests.fakes.openai_chat import OpenAIChatFake
from tests.fakes.openid_provider import OpenIdProviderFake
from tests.fakes.s3 import MotoS3
from tests.fakes.server import Tls, serve, serve_fake
from tests.fakes.stripe_api import StripeFake
from tests.fakes.swedbank_pay import SwedbankPayFake
from tests.fakes.twilio import TwilioFake
from tests.fakes.vipps import VippsFake
from tests.support import offered_specs, settings_for_fake
from tests.test_payment_handoff import OPERATOR

WRONG = "wrong-secret-0123456789-abcdefghijklmnop"


def spec_of(capability: Capability, name: str) -> ProviderSpec:
    return next(spec for spec in offered_specs(capability) if spec.name == name)


async def checked(provider: Any, *secrets: str) -> ProviderCheck:
    result = await provider.check()
    assert isinstance(result, ProviderCheck)
    assert result.message and len(result.message) < 200
    for secret in (WRONG, *secrets):
        assert secret not in result.message
    return result


# --- SMS ------------------------------------------------------------------------------------------------


async def test_twilio(tmp_path: Path) -> None:
    spec = spec_of(Capability.SMS, "twilio")
    with serve_fake(TwilioFake()) as fake:
        good = build_provider(spec, tmp_path, settings_for_fake(spec, fake))
        result = await checked(good, fake.auth_token)
        assert result == ProviderCheck(True, "Twilio accepted the credentials; the account is active.")
        with_api_key = settings_for_fake(
            spec, fake, api_key_sid=fake.api_key_sid, api_key_secret=fake.api_key_secret
        )
        assert (await checked(build_provider(spec, tmp_path, with_api_key))).ok

        wrong = build_provider(spec, tmp_path, settings_for_fake(spec, fake, auth_token=WRONG))
        refused = await checked(wrong, fake.auth_token)
        assert refused == ProviderCheck(False, "Twilio refused the credentials (HTTP 401).")

        fake.account_status = "suspended"
        suspended = await checked(good, fake.auth_token)
        assert not suspended.ok and "suspended" in suspended.message
        fake.down = True
        assert await checked(good) == ProviderCheck(False, "Twilio answered HTTP 503.")
        assert fake.messages == {} and fake.attempts == []  # nothing sent, nothing tried
        assert {r["method"] for r in fake.requests} == {"GET"}


async def test_link_mobility(tmp_path: Path) -> None:
    spec = spec_of(Capability.SMS, "link-mobility")
    with serve_fake(LinkMobilityFake()) as fake:
        good = build_provider(spec, tmp_path, settings_for_fake(spec, fake))
        result = await checked(good, fake.password)
        assert result.ok and "nothing was sent" in result.message

        wrong = build_provider(spec, tmp_path, settings_for_fake(spec, fake, password=WRONG))
        assert await checked(wrong) == ProviderCheck(
            False, "LINK Mobility refused the user name or password (HTTP 401)."
        )
        other_platform = build_provider(spec, tmp_path, settings_for_fake(spec, fake, platform_id="OTHER"))
        refused = await checked(other_platform, fake.password)
        assert not refused.ok and "HTTP 403" in refused.message
        fake.down = True
        assert await checked(good) == ProviderCheck(False, "LINK Mobility answered HTTP 503.")
        # Every probe was a request without recipient or text: nothing was taken.
        assert fake.messages == [] and not fake.taken.is_set()
        assert [call["status"] for call in fake.calls] == [400, 401, 403, 503]


async def test_outbox(tmp_path: Path) -> None:
    provider = build_provider(spec_of(Capability.SMS, "outbox"), tmp_path)
    assert (await checked(provider)).ok
    assert await provider.messages() == []


# --- Payment --------------------------------------------------------------------------------------------


async def test_stripe(tmp_path: Path) -> None:
    spec = spec_of(Capability.PAYMENT, "stripe")
    with serve_fake(StripeFake()) as fake:
        good = build_provider(spec, tmp_path, settings_for_fake(spec, fake))
        assert await checked(good, fake.secret_key) == ProviderCheck(
            True, "Stripe accepted the secret key (test mode)."
        )
        wrong = build_provider(
            spec, tmp_path, settings_for_fake(spec, fake, secret_key="sk_test_" + WRONG, publishable_key=None)
        )
        assert await checked(wrong, fake.secret_key) == ProviderCheck(
            False, "Stripe refused the secret key (HTTP 401)."
        )
        fake.down = True
        assert await checked(good) == ProviderCheck(False, "Stripe answered HTTP 503.")
        assert fake.intents == {}
        assert {(r["method"], r["path"]) for r in fake.requests} == {("GET", "/v1/payment_intents")}


async def test_swedbank_pay(tmp_path: Path) -> None:
    spec = spec_of(Capability.PAYMENT, "swedbank-pay")
    with serve_fake(SwedbankPayFake()) as fake:
        good = build_provider(spec, tmp_path, settings_for_fake(spec, fake))
        result = await checked(good, fake.access_token)
        assert result.ok and "accepted the access token" in result.message
        wrong = build_provider(spec, tmp_path, settings_for_fake(spec, fake, access_token=WRONG))
        assert await checked(wrong) == ProviderCheck(
            False, "Swedbank Pay refused the access token (HTTP 401)."
        )
        fake.down = True
        assert await checked(good) == ProviderCheck(False, "Swedbank Pay answered HTTP 503.")
        assert fake.orders == {}
        assert {call["method"] for call in fake.calls} == {"GET"}


async def test_vipps(tmp_path: Path) -> None:
    spec = spec_of(Capability.PAYMENT, "vipps")
    with serve_fake(VippsFake()) as fake:
        good = build_provider(spec, tmp_path, settings_for_fake(spec, fake))
        result = await checked(good, fake.client_secret, fake.subscription_key)
        assert result.ok and "issued an access token" in result.message
        for wrong_value in ({"client_secret": WRONG}, {"subscription_key": WRONG}):
            wrong = build_provider(spec, tmp_path, settings_for_fake(spec, fake, **wrong_value))
            assert await checked(wrong, fake.client_secret) == ProviderCheck(
                False, "Vipps MobilePay refused the API keys (HTTP 401)."
            )
        fake.down = True
        assert not (await checked(good)).ok
        assert fake.payments == {}
        assert {call["path"] for call in fake.calls} == {"/accesstoken/get"}


async def test_fake_psp(tmp_path: Path) -> None:
    provider = build_provider(spec_of(Capability.PAYMENT, "fake"), tmp_path)
    result = await checked(provider)
    assert result.ok and "simulation" in result.message


# --- Storage --------------------------------------------------------------------------------------------


async def test_s3(tmp_path: Path) -> None:
    spec = spec_of(Capability.STORAGE, "s3")
    from tests.fakes.s3 import shared_server

    server: MotoS3 = shared_server()
    bucket = server.create_bucket()
    try:
        settings = server.provider_settings(bucket)
        good = build_provider(spec, tmp_path, spec.settings_model(**settings))
        assert await checked(good, settings["secret_access_key"]) == ProviderCheck(
            True, f"S3 accepted the credentials; the bucket exists in {server.region}."
        )
        wrong = build_provider(
            spec, tmp_path, spec.settings_model(**{**settings, "secret_access_key": WRONG})
        )
        refused = await checked(wrong, settings["secret_access_key"])
        assert not refused.ok and "refused the credentials" in refused.message
        missing = build_provider(spec, tmp_path, spec.settings_model(**{**settings, "bucket": bucket + "-x"}))
        assert await checked(missing) == ProviderCheck(False, "The bucket does not exist (S3 404).")
        elsewhere = build_provider(spec, tmp_path, spec.settings_model(**{**settings, "region": "eu-west-1"}))
        moved = await checked(elsewhere)
        assert not moved.ok and "eu-west-1" in moved.message
        assert server.keys(bucket) == []  # no object written
    finally:
        server.remove_bucket(bucket)


async def test_local_storage(tmp_path: Path) -> None:
    spec = spec_of(Capability.STORAGE, "local")
    root = tmp_path / "objects"
    root.mkdir()
    provider = build_provider(spec, tmp_path, spec.settings_model(root=root))
    assert await checked(provider) == ProviderCheck(True, "The storage directory exists and is writable.")
    assert list(root.iterdir()) == []  # the probe file is gone
    later = build_provider(spec, tmp_path, spec.settings_model(root=tmp_path / "not-yet" / "objects"))
    assert (await checked(later)).ok and not (tmp_path / "not-yet").exists()
    (tmp_path / "a-file").write_bytes(b"")
    not_a_directory = build_provider(spec, tmp_path, spec.settings_model(root=tmp_path / "a-file"))
    assert not (await checked(not_a_directory)).ok
    if os.geteuid() != 0:  # root may write anywhere
        root.chmod(0o500)
        try:
            assert not (await checked(provider)).ok
        finally:
            root.chmod(0o700)


# --- Journal --------------------------------------------------------------------------------------------


async def test_openai(tmp_path: Path) -> None:
    spec = spec_of(Capability.JOURNAL, "openai")
    with serve_fake(OpenAIChatFake()) as fake:
        good = build_provider(spec, tmp_path, settings_for_fake(spec, fake))
        assert await checked(good, fake.api_key) == ProviderCheck(
            True, f"The server accepted the API key and offers the model {fake.model!r}."
        )
        wrong = build_provider(spec, tmp_path, settings_for_fake(spec, fake, api_key=WRONG))
        assert await checked(wrong) == ProviderCheck(
            False, "The language model server refused the API key (HTTP 401)."
        )
        unknown = build_provider(spec, tmp_path, settings_for_fake(spec, fake, model="no-such-model"))
        result = await checked(unknown, fake.api_key)
        assert not result.ok and "no-such-model" in result.message
        azure = spec.settings_model(
            api_key=fake.api_key,
            model=fake.model,
            azure_endpoint=fake.base_url,
            azure_api_version=fake.azure_api_version,
        )
        assert (await checked(build_provider(spec, tmp_path, azure), fake.api_key)).ok
        assert fake.requests == [] and fake.model_listings == 3  # listed; no completion asked for


async def test_template(tmp_path: Path) -> None:
    assert (await checked(build_provider(spec_of(Capability.JOURNAL, "template"), tmp_path))).ok


# --- Identity -------------------------------------------------------------------------------------------


CALLBACK = "https://legetime.example/plugins/bankid-oidc/callback"


@contextmanager
def openid_provider(**options: Any) -> Iterator[OpenIdProviderFake]:
    fake = OpenIdProviderFake(redirect_uris=[CALLBACK], **options)
    with serve(fake.app) as url:
        fake.issuer = url
        yield fake


def oidc_settings(spec: ProviderSpec, fake: OpenIdProviderFake, **changes: Any) -> Any:
    values = {
        "issuer": fake.issuer,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "redirect_uri": CALLBACK,
        "allowed_return_origins": ["https://legetime.example"],
    }
    return spec.settings_model(**(values | changes))


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
async def test_bankid_oidc(tmp_path: Path, auth_method: str) -> None:
    spec = spec_of(Capability.IDENTITY, "bankid-oidc")
    with openid_provider(auth_method=auth_method) as fake:
        method = {"token_endpoint_auth_method": auth_method}
        good = build_provider(spec, tmp_path, oidc_settings(spec, fake, **method))
        result = await checked(good, fake.client_secret)
        assert result.ok and "accepts the client" in result.message
        wrong = build_provider(spec, tmp_path, oidc_settings(spec, fake, client_secret=WRONG, **method))
        assert await checked(wrong, fake.client_secret) == ProviderCheck(
            False, "The OpenID provider refused the client ID or secret (HTTP 401)."
        )
        other_issuer = build_provider(spec, tmp_path, oidc_settings(spec, fake, issuer=fake.issuer + "/x"))
        assert not (await checked(other_issuer)).ok
        fake.down = True
        assert await checked(good) == ProviderCheck(False, "The discovery document answered HTTP 503.")
        assert fake._codes == {} and fake._access_tokens == {}  # no login started, no token issued
        assert "authorize" not in fake.requests


async def test_bankid_se(tmp_path: Path) -> None:
    from legetime.plugins.bankid.swedish import BankIdSeSettings

    spec = spec_of(Capability.IDENTITY, "bankid-se")
    pki, fake = shared_pki(), BankIdSeFake()
    with serve(fake.app, tls=Tls(pki.server_cert, pki.server_key, client_ca=pki.ca_cert)) as url:

        def settings(**changes: Any) -> BankIdSeSettings:
            values = {
                "base_url": f"{url}/rp/v6.0",
                "ca_cert": pki.ca_cert,
                "client_cert": pki.client_cert,
                "client_key": pki.client_key,
                "end_user_ip": "127.0.0.1",
            }
            return BankIdSeSettings(**(values | changes))

        good = build_provider(spec, tmp_path, settings())
        assert await checked(good) == ProviderCheck(
            True, "BankID accepted the RP certificate (mutual TLS) and the RP API answers."
        )
        untrusted = settings(client_cert=pki.other_client_cert, client_key=pki.other_client_key)
        refused = await checked(build_provider(spec, tmp_path, untrusted))
        assert not refused.ok and "refused the RP certificate" in refused.message
        other_ca = await checked(build_provider(spec, tmp_path, settings(ca_cert=pki.other_ca_cert)))
        assert not other_ca.ok and "TLS handshake failed" in other_ca.message
        fake.fail_next(401, "unauthorized")
        assert not (await checked(good)).ok
        assert fake.orders == {}  # no order started
        assert {operation for operation, _ in fake.calls} <= {"collect"}


async def test_bankid_test(tmp_path: Path) -> None:
    provider = build_provider(spec_of(Capability.IDENTITY, "bankid-test"), tmp_path)
    assert (await checked(provider)).ok


# --- Through GraphQL ------------------------------------------------------------------------------------

CHECK = "supported ok message"
LINK = {"capability": "SMS", "provider": "link-mobility"}
PLATFORM = "settings { name value } changed"
PROVIDER = "provider { name enabled } changed"


def test_check_provider_through_graphql(embedded: tuple[Api, Platform]) -> None:
    """An operator enables LINK Mobility at run time against its fake and asks it to test itself: ok with
    the right password, "refused" with a wrong one; no text was sent either time."""
    api, _ = embedded
    operator = api.login(OPERATOR)
    with serve_fake(LinkMobilityFake()) as fake:
        values = {name.lower(): value for name, value in fake.plugin_settings().items()}
        api.ok("changeProviderSettings", {**LINK, "values": values}, PROVIDER, operator)
        enable = {"values": {"sms_providers": ["link-mobility", "outbox"]}}
        api.ok("changePlatformSettings", enable, PLATFORM, operator)

        checked_ok = api.ok("checkProvider", LINK, CHECK, operator)
        assert checked_ok["supported"] and checked_ok["ok"], checked_ok
        api.ok("changeProviderSettings", {**LINK, "values": {"password": WRONG}}, PROVIDER, operator)
        refused = api.ok("checkProvider", LINK, CHECK, operator)
        assert refused == {
            "supported": True,
            "ok": False,
            "message": "LINK Mobility refused the user name or password (HTTP 401).",
            "errors": [],
        }
        assert fake.messages == []
