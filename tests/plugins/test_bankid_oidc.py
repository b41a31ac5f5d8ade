"""Norwegian BankID over OpenID Connect against a real OpenID provider running in the test
(``tests/fakes/openid_provider.py``): the ID token checks, PKCE and state, the presets, discovery and key
rotation, the callback, and the provider being down. The shared identity contract runs it as well."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from legetime.core.platform.errors import ErrorCode, IdentityRejected, ProviderError, ProviderUnavailable
from legetime.core.platform.providers.identity import (
    AssuranceLevel,
    LoginPending,
    LoginRequest,
    LoginStart,
    VerifiedIdentity,
)
from legetime.plugins.bankid import oidc
from legetime.plugins.bankid.oidc import BankIdOidcProvider, BankIdOidcSettings
from legetime.testing import build_provider
from tests.fakes.openid_provider import Misbehave, OpenIdProviderFake, Person
from tests.fakes.server import serve
from tests.support import offered_specs

CALLBACK = "https://legetime.example/plugins/bankid-oidc/callback"
RETURN_URL = "https://legetime.example/innlogget"
KARI = Person("17889230266", "Kari", "Nordmann", "1992-08-17")
SPEC = next(spec for spec in offered_specs(oidc.Capability.IDENTITY) if spec.name == "bankid-oidc")


@contextmanager
def running(tmp_path: Path, preset: str = "bankid", **fake: Any) -> Iterator[tuple[OpenIdProviderFake, Any]]:
    op = OpenIdProviderFake(redirect_uris=[CALLBACK], person=KARI, **fake)
    with serve(op.app) as url:
        op.issuer = url
        settings = BankIdOidcSettings(
            preset=preset,
            issuer=url,
            client_id=op.client_id,
            client_secret=op.client_secret,
            token_endpoint_auth_method=op.auth_method,
            redirect_uri=CALLBACK,
            allowed_return_origins=["https://legetime.example"],
        )
        yield op, build_provider(SPEC, tmp_path, settings)


@pytest.fixture
def op_and_provider(tmp_path: Path) -> Iterator[tuple[OpenIdProviderFake, Any]]:
    with running(tmp_path) as pair:
        yield pair


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


async def log_in(op: OpenIdProviderFake, provider: Any) -> tuple[LoginStart, dict[str, str]]:
    start = await provider.start(LoginRequest(return_url=RETURN_URL))
    assert start.challenge.redirect_url
    return start, query(op.login(start.challenge.redirect_url))


async def rejected(provider: Any, state: Any, params: dict[str, str]) -> str:
    with pytest.raises(IdentityRejected) as caught:
        await provider.complete(state, params)
    assert caught.value.code is ErrorCode.IDENTITY_REJECTED
    return caught.value.message


# --- The happy path and what the request carries ---------------------------------------------------


async def test_login_verifies_the_person(op_and_provider: tuple[OpenIdProviderFake, Any]) -> None:
    op, provider = op_and_provider
    start, params = await log_in(op, provider)
    identity = await provider.complete(start.state, params)
    assert isinstance(identity, VerifiedIdentity)
    assert (identity.national_id, identity.given_name, identity.family_name) == (
        "17889230266",
        "Kari",
        "Nordmann",
    )
    assert identity.assurance_level is AssuranceLevel.HIGH and identity.country == "NO"
    assert identity.extra["acr"] == "urn:bankid:bid;LOA=4"
    assert "17889230266" not in identity.extra["sub"]  # the subject is pairwise, not the national ID


async def test_the_authorize_request_uses_pkce_state_and_nonce(
    op_and_provider: tuple[OpenIdProviderFake, Any],
) -> None:
    _, provider = op_and_provider
    start = await provider.start(LoginRequest(return_url=RETURN_URL))
    asked = parse_qs(urlsplit(start.challenge.redirect_url).query)
    assert asked["response_type"] == ["code"] and asked["redirect_uri"] == [CALLBACK]
    assert asked["code_challenge_method"] == ["S256"] and asked["code_challenge"][0]
    assert asked["code_challenge"][0] != start.state["code_verifier"]  # only the hash travels
    assert asked["nonce"] == [start.state["nonce"]] and asked["state"] == [start.state["state"]]
    assert asked["scope"] == ["openid profile nnin_altsub"]
    assert "client_secret" not in asked


async def test_before_the_user_is_back_the_login_is_pending(
    op_and_provider: tuple[OpenIdProviderFake, Any],
) -> None:
    _, provider = op_and_provider
    start = await provider.start(LoginRequest(return_url=RETURN_URL))
    assert isinstance(await provider.complete(start.state, {}), LoginPending)


# --- The ID token checks (each one a way an attacker or a misconfiguration gets in) -----------------


@pytest.mark.parametrize(
    "misbehave",
    [
        Misbehave(forge_signature=True),
        Misbehave(audience="another-client"),
        Misbehave(expired=True),
        Misbehave(nonce="nonce-of-an-earlier-login"),
    ],
    ids=["forged signature", "wrong audience", "expired token", "replayed nonce"],
)
async def test_an_id_token_that_fails_a_check_is_rejected(tmp_path: Path, misbehave: Misbehave) -> None:
    with running(tmp_path, misbehave=misbehave) as (op, provider):
        start, params = await log_in(op, provider)
        assert "kunne ikke bekreftes" in await rejected(provider, start.state, params)


async def test_missing_national_id_is_rejected(tmp_path: Path) -> None:
    with running(tmp_path, misbehave=Misbehave(omit_national_id=True)) as (op, provider):
        start, params = await log_in(op, provider)
        assert "fødselsnummer" in await rejected(provider, start.state, params)
        assert op.requests.get("userinfo") == 1  # looked there too before giving up


async def test_too_low_assurance_is_rejected(tmp_path: Path) -> None:
    with running(tmp_path, misbehave=Misbehave(acr="urn:bankid:bis;LOA=3")) as (op, provider):
        start, params = await log_in(op, provider)
        assert "høyt sikkerhetsnivå" in await rejected(provider, start.state, params)


async def test_unknown_acr_is_rejected(tmp_path: Path) -> None:
    with running(tmp_path, misbehave=Misbehave(acr="urn:someone:else")) as (op, provider):
        start, params = await log_in(op, provider)
        await rejected(provider, start.state, params)


async def test_substantial_is_accepted_when_configured(tmp_path: Path) -> None:
    with running(tmp_path, misbehave=Misbehave(acr="urn:bankid:bis;LOA=3")) as (op, provider):
        provider.settings = provider.settings.model_copy(
            update={"minimum_assurance": AssuranceLevel.SUBSTANTIAL}
        )
        start, params = await log_in(op, provider)
        identity = await provider.complete(start.state, params)
        assert identity.assurance_level is AssuranceLevel.SUBSTANTIAL


# --- PKCE, state, code reuse -------------------------------------------------------------------------


async def test_a_wrong_code_verifier_is_refused_by_the_provider(
    op_and_provider: tuple[OpenIdProviderFake, Any],
) -> None:
    op, provider = op_and_provider
    start, params = await log_in(op, provider)
    await rejected(provider, {**start.state, "code_verifier": "x" * 64}, params)


async def test_a_state_from_another_login_is_rejected(
    op_and_provider: tuple[OpenIdProviderFake, Any],
) -> None:
    op, provider = op_and_provider
    start, _ = await log_in(op, provider)
    _, other_params = await log_in(op, provider)  # an attacker's own code and state
    await rejected(provider, start.state, other_params)


async def test_a_code_is_used_once(op_and_provider: tuple[OpenIdProviderFake, Any]) -> None:
    op, provider = op_and_provider
    start, params = await log_in(op, provider)
    assert isinstance(await provider.complete(start.state, params), VerifiedIdentity)
    await rejected(provider, start.state, params)


# --- Presets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "national_id_claim", "acr_claim", "acr", "claims_in_id_token", "auth_method"),
    [
        ("bankid", "nnin_altsub", "acr", "urn:bankid:bid;LOA=4", True, "client_secret_basic"),
        ("idura", "socialno", "acr", "urn:grn:authn:no:bankid", True, "client_secret_post"),
        ("signicat", "nin", "nbid_acr", "urn:bankid:bid;LOA=4", False, "client_secret_basic"),
    ],
)
async def test_each_preset_reads_its_claims(
    tmp_path: Path,
    preset: str,
    national_id_claim: str,
    acr_claim: str,
    acr: str,
    claims_in_id_token: bool,
    auth_method: str,
) -> None:
    fake = {
        "national_id_claim": national_id_claim,
        "acr_claim": acr_claim,
        "acr": acr,
        "claims_in_id_token": claims_in_id_token,
        "auth_method": auth_method,
    }
    with running(tmp_path, preset, **fake) as (op, provider):
        start, params = await log_in(op, provider)
        identity = await provider.complete(start.state, params)
        assert identity.national_id == KARI.national_id
        assert identity.assurance_level is AssuranceLevel.HIGH
        assert op.requests.get("userinfo", 0) == (0 if claims_in_id_token else 1)


def test_presets_set_scope_and_acr_values_and_settings_override_them(tmp_path: Path) -> None:
    base = {"issuer": "https://op.example", "client_id": "c", "client_secret": "s"}
    idura = build_provider(SPEC, tmp_path, BankIdOidcSettings(preset="idura", **base))
    assert (idura.scope, idura.acr_values, idura.national_id_claim) == (
        "openid",
        "urn:grn:authn:no:bankid",
        "socialno",
    )
    signicat = build_provider(SPEC, tmp_path, BankIdOidcSettings(preset="signicat", **base))
    assert (signicat.acr_values, signicat.national_id_claim, signicat.acr_claim) == (
        "idp:nbid",
        "nin",
        "nbid_acr",
    )
    custom = BankIdOidcSettings(preset="signicat", national_id_claim="pid", scope="openid nin", **base)
    overridden = build_provider(SPEC, tmp_path, custom)
    assert (overridden.national_id_claim, overridden.scope) == ("pid", "openid nin")


# --- Discovery and keys ----------------------------------------------------------------------------


async def test_discovery_and_keys_are_cached_and_a_rotated_key_is_fetched(
    op_and_provider: tuple[OpenIdProviderFake, Any],
) -> None:
    op, provider = op_and_provider
    for _ in range(2):
        start, params = await log_in(op, provider)
        await provider.complete(start.state, params)
    assert (op.requests["discovery"], op.requests["jwks"]) == (1, 1)
    op.rotate_keys()
    start, params = await log_in(op, provider)
    assert isinstance(await provider.complete(start.state, params), VerifiedIdentity)
    assert op.requests["jwks"] == 2  # the unknown key id made it fetch the keys again


async def test_an_issuer_that_does_not_match_is_a_configuration_error(tmp_path: Path) -> None:
    from legetime.core.platform.errors import ConfigError

    with running(tmp_path) as (op, provider):
        op.issuer = "https://someone-else.example"
        with pytest.raises(ConfigError, match="LEGETIME_BANKID_OIDC_ISSUER"):
            await provider.start(LoginRequest(return_url=RETURN_URL))


async def test_provider_down_is_unavailable(op_and_provider: tuple[OpenIdProviderFake, Any]) -> None:
    op, provider = op_and_provider
    op.down = True
    with pytest.raises(ProviderUnavailable):
        await provider.start(LoginRequest(return_url=RETURN_URL))
    op.down = False
    start, params = await log_in(op, provider)
    op.down = True
    with pytest.raises(ProviderUnavailable):  # the token endpoint is down: retry, the code is still good
        await provider.complete(start.state, params)
    op.down = False
    assert isinstance(await provider.complete(start.state, params), VerifiedIdentity)


# --- Return URL and callback -----------------------------------------------------------------------


async def test_a_return_url_elsewhere_is_refused(op_and_provider: tuple[OpenIdProviderFake, Any]) -> None:
    _, provider = op_and_provider
    with pytest.raises(ProviderError) as caught:
        await provider.start(LoginRequest(return_url="https://evil.example/steal"))
    assert caught.value.code is ErrorCode.INVALID and caught.value.field == "returnUrl"
    with pytest.raises(ProviderError) as missing:
        await provider.start(LoginRequest())
    assert missing.value.code is ErrorCode.REQUIRED


class _Platform:
    def __init__(self, provider: BankIdOidcProvider) -> None:
        self.providers = self
        self._provider = provider

    def get(self, capability: Any, name: str) -> BankIdOidcProvider:
        assert (capability.capability, name) == ("identity", "bankid-oidc")
        return self._provider


async def test_the_callback_forwards_code_and_state_to_the_signed_return_url(
    op_and_provider: tuple[OpenIdProviderFake, Any],
) -> None:
    op, provider = op_and_provider
    app = Starlette(routes=list(oidc.register_routes()))
    app.state.platform = _Platform(provider)
    client = TestClient(app, base_url="https://legetime.example")
    start = await provider.start(LoginRequest(return_url=RETURN_URL + "?fra=app"))
    callback = op.login(start.challenge.redirect_url)
    forwarded = client.get(urlsplit(callback).path + "?" + urlsplit(callback).query, follow_redirects=False)
    assert forwarded.status_code == 303
    location = forwarded.headers["location"]
    assert location.startswith(RETURN_URL + "?fra=app&")
    assert set(query(location)) == {"fra", "code", "state"}
    assert isinstance(await provider.complete(start.state, query(location)), VerifiedIdentity)

    tampered = start.state["state"][:-3] + "AAA"
    refused = client.get(f"/plugins/bankid-oidc/callback?code=x&state={tampered}", follow_redirects=False)
    assert refused.status_code == 400 and "location" not in refused.headers


async def test_the_user_cancelling_is_forwarded_and_rejected(
    op_and_provider: tuple[OpenIdProviderFake, Any],
) -> None:
    op, provider = op_and_provider
    op.deny_next = True
    start, params = await log_in(op, provider)
    assert params["error"] == "access_denied"
    assert "avbrutt" in await rejected(provider, start.state, params)


def test_secrets_are_masked(tmp_path: Path) -> None:
    settings = BankIdOidcSettings(issuer="https://op.example", client_id="c", client_secret="very-secret")
    assert "very-secret" not in repr(settings) and "very-secret" not in str(settings.model_dump())


def test_plain_http_issuer_is_refused_outside_localhost() -> None:
    with pytest.raises(ValueError, match="https"):
        BankIdOidcSettings(issuer="http://op.example", client_id="c", client_secret="s")
