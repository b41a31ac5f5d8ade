"""Norwegian BankID over OpenID Connect (identity provider ``bankid-oidc``).

One plugin for the three ways Norwegian BankID is offered over OIDC; a *preset* sets what differs:

* ``bankid`` (BankID's own OIDC): national ID in ``nnin_altsub`` (scope ``openid profile nnin_altsub``);
  ``acr`` ``urn:bankid:bid;LOA=4`` / ``urn:bankid:bim;LOA=4`` high, ``urn:bankid:bis;LOA=3`` substantial.
* ``idura`` (Idura, formerly Criipto): ``socialno``; ``acr_values=urn:grn:authn:no:bankid`` (high) or
  ``…:bankid:substantial`` (biometrics).
* ``signicat``: ``nin`` (scope ``openid profile nin``, ``acr_values=idp:nbid``); the BankID acr comes in
  ``nbid_acr``; the claims may come from userinfo only.

Documentation followed: BankID's OIDC documentation (ID token: ``acr`` with level of assurance,
``nnin_altsub`` scope and claim, userinfo), Idura Verify's Norwegian BankID and authorize-URL pages
(``acr_values``, ``socialno``), Signicat's Norwegian BankID attributes reference (``nin``, ``nbid_acr``,
claims in the ID token or only from userinfo), OpenID Connect Core 1.0 (ID token validation, nonce) and
RFC 7636 (PKCE).

The flow, stateless as the core wants it: ``start`` makes the PKCE verifier, the nonce and a ``state``
parameter that carries the frontend's return URL under an HMAC, and returns the authorize URL; the core
keeps the verifier and the nonce server side. The OpenID provider sends the browser to our callback
(``/plugins/bankid-oidc/callback``, the one redirect URI registered there), which checks the HMAC and
forwards ``code`` and ``state`` (or ``error``) to the return URL; the frontend hands them to
``completeLogin``. ``complete`` exchanges the code with the verifier (authlib), validates the ID token's
signature against the provider's JWKS and its claims (joserfc), and maps the claims.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import importlib
import json
import re
import secrets
import time
import warnings
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlencode, urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from legetime.sdk import (
    IDENTITY,
    AssuranceLevel,
    Capability,
    ConfigError,
    ErrorCode,
    HttpsUrl,
    IdentityRejected,
    InvalidNationalId,
    LoginChallenge,
    LoginPending,
    LoginRequest,
    LoginStart,
    ProviderCheck,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    ProviderSpec,
    ProviderUnavailable,
    VerifiedIdentity,
    hookimpl,
    parse_national_id,
)

# authlib, joserfc and httpx are imported when the provider is constructed (see ``_load_sdk``), not when
# the plugin is loaded: a default plugin whose provider is not enabled costs start-up nothing.
if TYPE_CHECKING:
    import httpx
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from joserfc.jwk import KeySet

NAME = "bankid-oidc"
CALLBACK_PATH = "/plugins/bankid-oidc/callback"
STATE_KEY_PURPOSE = "bankid-oidc-state"
ALGORITHMS = ("RS256", "PS256", "ES256")

Preset = Literal["bankid", "idura", "signicat"]

_BANKID_ACR = {
    "urn:bankid:bid;LOA=4": AssuranceLevel.HIGH,
    "urn:bankid:bim;LOA=4": AssuranceLevel.HIGH,
    "urn:bankid:bis;LOA=3": AssuranceLevel.SUBSTANTIAL,
}


class _PresetValues:
    def __init__(
        self,
        *,
        national_id_claim: str,
        scope: str,
        acr_values: str | None,
        acr_claim: str,
        acr_levels: Mapping[str, AssuranceLevel],
    ) -> None:
        self.national_id_claim = national_id_claim
        self.scope = scope
        self.acr_values = acr_values
        self.acr_claim = acr_claim
        self.acr_levels = dict(acr_levels)


PRESETS: dict[str, _PresetValues] = {
    "bankid": _PresetValues(
        national_id_claim="nnin_altsub",
        scope="openid profile nnin_altsub",
        acr_values=None,
        acr_claim="acr",
        acr_levels=_BANKID_ACR,
    ),
    "idura": _PresetValues(
        national_id_claim="socialno",
        scope="openid",
        acr_values="urn:grn:authn:no:bankid",
        acr_claim="acr",
        acr_levels={
            "urn:grn:authn:no:bankid": AssuranceLevel.HIGH,
            "urn:grn:authn:no:bankid:substantial": AssuranceLevel.SUBSTANTIAL,
        },
    ),
    "signicat": _PresetValues(
        national_id_claim="nin",
        scope="openid profile nin",
        acr_values="idp:nbid",
        acr_claim="nbid_acr",
        acr_levels=_BANKID_ACR,
    ),
}

_RANK = {AssuranceLevel.SUBSTANTIAL: 1, AssuranceLevel.HIGH: 2}

# Shown to the person logging in (Norwegian bokmål).
CANCELLED = "Innloggingen ble avbrutt."
EXPIRED = "Innloggingen tok for lang tid. Start på nytt."
FAILED = "Innloggingen kunne ikke bekreftes. Start på nytt."
TOO_LOW = "Innloggingen krever BankID med høyt sikkerhetsnivå."
NO_NATIONAL_ID = "BankID oppga ikke fødselsnummeret ditt, så vi kan ikke logge deg inn."
UNAVAILABLE = "BankID svarer ikke akkurat nå. Prøv igjen om litt."
WAITING = "Fullfør innloggingen med BankID i vinduet som åpnet seg."


class BankIdOidcSettings(ProviderSettings):
    """Settings of ``bankid-oidc``, from ``LEGETIME_BANKID_OIDC_*``. Empty overrides take the preset's."""

    model_config = SettingsConfigDict(env_prefix="LEGETIME_BANKID_OIDC_")

    preset: Preset = Field(
        default="bankid",
        description="Who runs the OpenID provider: bankid (BankID's own OIDC), idura (Idura/Criipto) or "
        "signicat. Sets the claim, scope, acr_values and acr levels below unless they are given.",
    )
    issuer: HttpsUrl = Field(
        description="The OpenID provider's issuer; discovery is read from <issuer>/.well-known/"
        "openid-configuration. E.g. https://auth.current.bankid.no/auth/realms/current (BankID preprod), "
        "https://<your-domain>.criipto.id (Idura), https://<your-domain>/auth/open (Signicat)."
    )
    client_id: str = Field(description="The client ID registered at the OpenID provider.")
    client_secret: SecretStr = Field(description="The client secret registered at the OpenID provider.")
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post"] = Field(
        default="client_secret_basic", description="How the client authenticates at the token endpoint."
    )
    redirect_uri: HttpsUrl | None = Field(
        default=None,
        description=f"The redirect URI registered at the provider; default: public URL + {CALLBACK_PATH}.",
    )
    allowed_return_origins: list[str] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port]) the callback may send the browser back to; default: "
        "the public URL's origin. Guards against open redirects.",
    )
    scope: str | None = Field(default=None, description="Scopes asked for; default: the preset's.")
    acr_values: str | None = Field(default=None, description="acr_values sent; default: the preset's.")
    national_id_claim: str | None = Field(
        default=None, description="The claim holding the national ID; default: the preset's."
    )
    acr_claim: str | None = Field(
        default=None, description="The claim holding the assurance level (acr); default: the preset's."
    )
    acr_levels: dict[str, AssuranceLevel] = Field(
        default_factory=dict,
        description='acr value → level (substantial or high), JSON, e.g. {"urn:bankid:bid;LOA=4": "high"}; '
        "default: the preset's. A token naming another acr is refused.",
    )
    minimum_assurance: AssuranceLevel = Field(
        default=AssuranceLevel.HIGH, description="The lowest assurance level accepted."
    )
    use_userinfo: bool = Field(
        default=True,
        description="Read claims missing from the ID token (the national ID, names) from the userinfo "
        "endpoint, as Signicat returns them there unless configured otherwise.",
    )
    login_ttl_seconds: int = Field(default=600, gt=0, le=3600, description="How long a started login lives.")
    clock_skew_seconds: int = Field(
        default=60, ge=0, le=300, description="Leeway for exp/iat/nbf between our clock and the provider's."
    )
    metadata_cache_seconds: int = Field(
        default=3600,
        gt=0,
        description="How long discovery and the JWKS are cached (an unknown key id refetches).",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=60, description="HTTP timeout per call.")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class BankIdOidcProvider:
    """Implements ``legetime.sdk.IdentityProvider`` for an OpenID provider running BankID."""

    name = NAME

    def __init__(self, settings: BankIdOidcSettings, *, public_url: str, state_key: bytes) -> None:
        preset = PRESETS[settings.preset]
        self.settings = settings
        self.redirect_uri = settings.redirect_uri or public_url.rstrip("/") + CALLBACK_PATH
        self.scope = settings.scope or preset.scope
        self.acr_values = settings.acr_values if settings.acr_values is not None else preset.acr_values
        self.national_id_claim = settings.national_id_claim or preset.national_id_claim
        self.acr_claim = settings.acr_claim or preset.acr_claim
        self.acr_levels = settings.acr_levels or preset.acr_levels
        self.allowed_origins = {_origin(o) for o in settings.allowed_return_origins} or {_origin(public_url)}
        self._state_key = state_key
        _load_sdk()
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._jwks: tuple[float, KeySet] | None = None

    # --- The protocol -----------------------------------------------------------------------------

    async def start(self, request: LoginRequest) -> LoginStart:
        if not request.return_url:
            raise ProviderError(
                "Oppgi returnUrl: BankID sender nettleseren tilbake dit.",
                field="returnUrl",
                code=ErrorCode.REQUIRED,
            )
        self.check_return_url(request.return_url)
        metadata = await self._discovery()
        expires_at = datetime.now(UTC) + timedelta(seconds=self.settings.login_ttl_seconds)
        nonce, code_verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(64)
        state = self._sign_state(request.return_url, expires_at)
        extra: dict[str, str] = {"nonce": nonce, "ui_locales": request.locale}
        if self.acr_values:
            extra["acr_values"] = self.acr_values
        async with self._client() as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"], state=state, code_verifier=code_verifier, **extra
            )
        return LoginStart(
            challenge=LoginChallenge(redirect_url=url, expires_at=expires_at),
            state={
                "state": state,
                "nonce": nonce,
                "code_verifier": code_verifier,
                "expires_at": expires_at.isoformat(),
            },
        )

    async def complete(
        self, state: Mapping[str, Any], params: Mapping[str, str]
    ) -> VerifiedIdentity | LoginPending:
        if datetime.now(UTC) >= datetime.fromisoformat(state["expires_at"]):
            raise IdentityRejected(EXPIRED)
        if params.get("error"):
            raise IdentityRejected(CANCELLED if params["error"] == "access_denied" else FAILED)
        if not params.get("code"):
            return LoginPending(WAITING)
        if not hmac.compare_digest(params.get("state", ""), state["state"]):
            raise IdentityRejected(FAILED)  # not the login this browser started (CSRF, mix-up)
        metadata = await self._discovery()
        token = await self._exchange(metadata, params["code"], state["code_verifier"])
        claims = await self._validate_id_token(metadata, token.get("id_token"), state["nonce"])
        if self.settings.use_userinfo and not _has_person(claims, self.national_id_claim):
            claims = {**await self._userinfo(metadata, token, claims["sub"]), **claims}
        return self._identity(claims)

    async def cancel(self, state: Mapping[str, Any]) -> None:
        return None  # nothing is held at the provider before the code is exchanged

    # --- Operators ----------------------------------------------------------------------------------

    async def check(self) -> ProviderCheck:
        """Read the discovery document and the JWKS (read-only), then test the client credentials at the
        token endpoint with an authorization code that was never issued: an OpenID provider authenticates
        the client first (RFC 6749 §5.2), so ``invalid_client`` (401) means the credentials were refused and
        ``invalid_grant`` that they were accepted. No login is started and no token is issued."""
        import httpx
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        settings = self.settings
        try:
            async with httpx.AsyncClient(timeout=settings.timeout_seconds) as client:
                discovery = await client.get(f"{settings.issuer}/.well-known/openid-configuration")
                if discovery.status_code != 200:
                    return ProviderCheck(
                        False, f"The discovery document answered HTTP {discovery.status_code}."
                    )
                metadata = _json_object(discovery)
                if metadata is None or str(metadata.get("issuer", "")).rstrip("/") != settings.issuer:
                    return ProviderCheck(False, "The discovery document does not name the configured issuer.")
                if not all(
                    metadata.get(name) for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")
                ):
                    return ProviderCheck(False, "The discovery document lacks an endpoint or the JWKS.")
                jwks = await client.get(str(metadata["jwks_uri"]))
                if jwks.status_code != 200:
                    return ProviderCheck(False, f"The JWKS answered HTTP {jwks.status_code}.")
                try:
                    keys = KeySet.import_key_set(_json_object(jwks))  # type: ignore[arg-type]
                except (JoseError, ValueError, TypeError):
                    return ProviderCheck(False, "The JWKS holds no usable keys.")
                if not keys.keys:
                    return ProviderCheck(False, "The JWKS holds no keys.")
                refused = await self._probe_client(client, str(metadata["token_endpoint"]))
        except httpx.TimeoutException:
            return ProviderCheck(
                False, f"The OpenID provider did not answer within {settings.timeout_seconds:g} s."
            )
        except httpx.HTTPError:
            return ProviderCheck(False, "The OpenID provider is unreachable.")
        if refused:
            return ProviderCheck(False, refused)
        return ProviderCheck(
            True,
            f"The OpenID provider answers (discovery, {len(keys.keys)} signing keys) and accepts the client.",
        )

    async def _probe_client(self, client: httpx.AsyncClient, token_endpoint: str) -> str | None:
        """Why the token endpoint refuses our client, or None when it authenticated it."""
        settings = self.settings
        secret = settings.client_secret.get_secret_value()
        form = {
            "grant_type": "authorization_code",
            "code": "legetime-check-" + secrets.token_urlsafe(24),  # never issued
            "redirect_uri": self.redirect_uri,
            "code_verifier": secrets.token_urlsafe(48),
        }
        headers = {"Accept": "application/json"}
        if settings.token_endpoint_auth_method == "client_secret_basic":
            pair = f"{quote(settings.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form |= {"client_id": settings.client_id, "client_secret": secret}
        response = await client.post(token_endpoint, data=form, headers=headers)
        body = _json_object(response) or {}
        error = body.get("error")
        if response.status_code == 401 or error == "invalid_client":
            return f"The OpenID provider refused the client ID or secret (HTTP {response.status_code})."
        if error == "invalid_grant":
            return None
        named = f"{error}, " if isinstance(error, str) and re.fullmatch(r"[a-z_]{1,40}", error) else ""
        return f"The token endpoint did not confirm the client ({named}HTTP {response.status_code})."

    # --- The callback's part ----------------------------------------------------------------------

    def check_return_url(self, return_url: str) -> None:
        if _origin(return_url) not in self.allowed_origins:
            raise ProviderError(
                "Denne returadressen er ikke tillatt.", field="returnUrl", code=ErrorCode.INVALID
            )

    def return_url_of(self, state: str) -> str:
        """The return URL a ``state`` parameter carries, if we signed it and it has not expired."""
        try:
            payload_b64, signature = state.split(".")
            expected = hmac.new(self._state_key, payload_b64.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(_unb64(signature), expected):
                raise ValueError("bad signature")
            payload = json.loads(_unb64(payload_b64))
        except ValueError:
            raise ProviderError("Ugyldig innloggingslenke.", field="state", code=ErrorCode.INVALID) from None
        if time.time() > payload["e"]:
            raise ProviderError(EXPIRED, field="state", code=ErrorCode.INVALID)
        return_url: str = payload["r"]
        self.check_return_url(return_url)
        return return_url

    def _sign_state(self, return_url: str, expires_at: datetime) -> str:
        payload = {"r": return_url, "e": int(expires_at.timestamp()), "n": secrets.token_urlsafe(16)}
        payload_b64 = _b64(json.dumps(payload, separators=(",", ":")).encode())
        signature = hmac.new(self._state_key, payload_b64.encode(), hashlib.sha256).digest()
        return f"{payload_b64}.{_b64(signature)}"

    # --- Talking to the OpenID provider -----------------------------------------------------------

    def _client(self) -> AsyncOAuth2Client:
        return _oauth2_client_class()(
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret.get_secret_value(),
            token_endpoint_auth_method=self.settings.token_endpoint_auth_method,
            scope=self.scope,
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            timeout=self.settings.timeout_seconds,
        )

    async def _get_json(self, url: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        import httpx

        try:
            async with httpx.AsyncClient(timeout=self.settings.timeout_seconds) as client:
                response = await client.get(url, headers=dict(headers or {}))
        except httpx.HTTPError:
            raise ProviderUnavailable(UNAVAILABLE) from None
        if response.status_code >= 500:
            raise ProviderUnavailable(UNAVAILABLE)
        if response.status_code != 200:
            raise IdentityRejected(FAILED)
        try:
            body = response.json()
        except ValueError:
            raise ProviderUnavailable(UNAVAILABLE) from None
        if not isinstance(body, dict):
            raise ProviderUnavailable(UNAVAILABLE)
        return body

    async def _discovery(self) -> dict[str, Any]:
        if self._metadata and time.monotonic() < self._metadata[0]:
            return self._metadata[1]
        metadata = await self._get_json(f"{self.settings.issuer}/.well-known/openid-configuration")
        if metadata.get("issuer", "").rstrip("/") != self.settings.issuer:
            raise ConfigError(
                "LEGETIME_BANKID_OIDC_ISSUER",
                f"is {self.settings.issuer!r}, but the provider names {metadata.get('issuer')!r}",
            )
        for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not metadata.get(endpoint):
                raise ProviderUnavailable(UNAVAILABLE)
        self._metadata = (time.monotonic() + self.settings.metadata_cache_seconds, metadata)
        return metadata

    async def _keys(self, metadata: Mapping[str, Any], *, refresh: bool = False) -> KeySet:
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        if not refresh and self._jwks and time.monotonic() < self._jwks[0]:
            return self._jwks[1]
        try:
            keys = KeySet.import_key_set(await self._get_json(metadata["jwks_uri"]))  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError):
            raise ProviderUnavailable(UNAVAILABLE) from None
        self._jwks = (time.monotonic() + self.settings.metadata_cache_seconds, keys)
        return keys

    async def _exchange(self, metadata: Mapping[str, Any], code: str, code_verifier: str) -> dict[str, Any]:
        from authlib.integrations.base_client.errors import OAuthError

        try:
            async with self._client() as client:
                token = await client.fetch_token(
                    metadata["token_endpoint"], code=code, code_verifier=code_verifier
                )
        except OAuthError:
            raise IdentityRejected(FAILED) from None  # used or expired code, wrong verifier, wrong client
        except _oauth_http_errors():
            raise ProviderUnavailable(UNAVAILABLE) from None
        except ValueError:  # not JSON: a proxy's error page
            raise ProviderUnavailable(UNAVAILABLE) from None
        return dict(token)

    async def _validate_id_token(
        self, metadata: Mapping[str, Any], id_token: Any, nonce: str
    ) -> dict[str, Any]:
        from joserfc import jwt
        from joserfc.errors import JoseError

        if not isinstance(id_token, str):
            raise IdentityRejected(FAILED)
        try:
            try:
                token = jwt.decode(id_token, await self._keys(metadata), algorithms=list(ALGORITHMS))
            except JoseError:
                # The provider may have rotated its keys since we cached them: fetch once more.
                token = jwt.decode(
                    id_token, await self._keys(metadata, refresh=True), algorithms=list(ALGORITHMS)
                )
            jwt.JWTClaimsRegistry(
                leeway=self.settings.clock_skew_seconds,
                iss={"essential": True, "value": self.settings.issuer},
                aud={"essential": True, "value": self.settings.client_id},
                exp={"essential": True},
                iat={"essential": True},
                sub={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(token.claims)
        except (JoseError, ValueError):
            raise IdentityRejected(FAILED) from None
        claims = dict(token.claims)
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != self.settings.client_id:
            raise IdentityRejected(FAILED)  # OIDC Core 3.1.3.7: several audiences need azp = us
        return claims

    async def _userinfo(
        self, metadata: Mapping[str, Any], token: Mapping[str, Any], subject: str
    ) -> dict[str, Any]:
        endpoint = metadata.get("userinfo_endpoint")
        if not endpoint or not token.get("access_token"):
            return {}
        info = await self._get_json(endpoint, {"Authorization": f"Bearer {token['access_token']}"})
        if info.get("sub") != subject:
            raise IdentityRejected(FAILED)  # OIDC Core 5.3.2: userinfo about someone else
        return info

    def _identity(self, claims: Mapping[str, Any]) -> VerifiedIdentity:
        level = self.acr_levels.get(str(claims.get(self.acr_claim, "")))
        if level is None or _RANK[level] < _RANK[self.settings.minimum_assurance]:
            raise IdentityRejected(TOO_LOW)
        raw = claims.get(self.national_id_claim)
        if not isinstance(raw, str) or not raw:
            raise IdentityRejected(NO_NATIONAL_ID)
        try:
            national_id = parse_national_id(raw)
        except InvalidNationalId:
            raise IdentityRejected(NO_NATIONAL_ID) from None
        given, family = str(claims.get("given_name", "")).strip(), str(claims.get("family_name", "")).strip()
        if not given or not family:
            raise IdentityRejected(FAILED)
        return VerifiedIdentity(
            national_id=national_id.value,
            given_name=given,
            family_name=family,
            birth_date=national_id.birth_date,  # the national ID is authoritative
            assurance_level=level,
            provider=NAME,
            extra={"sub": str(claims["sub"]), "acr": str(claims.get(self.acr_claim, ""))},
        )


@functools.cache
def _oauth2_client_class() -> type[AsyncOAuth2Client]:
    from authlib.deprecate import AuthlibDeprecationWarning

    # authlib warns at import that it would rather use httpx2 than httpx; we use httpx like the rest of
    # the platform, and the warning would otherwise reach every operator's terminal. A lasting filter for
    # that one warning, not ``catch_warnings``: that swaps the process's filters, and a provider may be
    # made in another thread meanwhile (the warning leaked so in tests).
    warnings.filterwarnings("ignore", message=".*httpx2.*", category=AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    return AsyncOAuth2Client


@functools.cache
def _oauth_http_errors() -> tuple[type[Exception], ...]:
    """The HTTP errors of the client authlib uses: httpx2 where it is installed (another package may bring
    it), else httpx."""
    import httpx

    try:
        import httpx2
    except ImportError:
        return (httpx.HTTPError,)
    return (httpx.HTTPError, httpx2.HTTPError)


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _load_sdk() -> None:
    """Import the OAuth client and the JOSE library with the provider, so its first login does not wait."""
    _oauth2_client_class()
    importlib.import_module("joserfc.jwt")


def _has_person(claims: Mapping[str, Any], national_id_claim: str) -> bool:
    return all(claims.get(name) for name in (national_id_claim, "given_name", "family_name"))


# --- The callback ----------------------------------------------------------------------------------


def _page(title: str, text: str, status_code: int) -> HTMLResponse:
    from html import escape

    html = (
        f'<!doctype html><html lang="nb"><head><meta charset="utf-8"><title>{escape(title)}</title></head>'
        f"<body><h1>{escape(title)}</h1><p>{escape(text)}</p></body></html>"
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


async def callback_endpoint(request: Request) -> Response:
    """GET ``/plugins/bankid-oidc/callback``: the OpenID provider sends the browser here; we send it on to
    the frontend's return URL (signed into ``state``) with ``code`` and ``state``, or ``error``."""
    try:
        provider = request.app.state.platform.providers.get(IDENTITY, NAME)
    except (AttributeError, LookupError):
        return _page("Innlogging er ikke satt opp", "BankID-innlogging er ikke slått på.", 404)
    params = request.query_params
    try:
        return_url = provider.return_url_of(params.get("state", ""))
    except ProviderError as exc:
        return _page("Innloggingen kan ikke fullføres", exc.message, 400)
    forwarded = {key: params[key] for key in ("code", "state", "error", "error_description") if key in params}
    separator = "&" if urlsplit(return_url).query else "?"
    return RedirectResponse(f"{return_url}{separator}{urlencode(forwarded)}", status_code=303)


# --- Plugin ----------------------------------------------------------------------------------------


def create_provider(settings: BankIdOidcSettings, context: ProviderContext) -> BankIdOidcProvider:
    return BankIdOidcProvider(
        settings, public_url=context.settings.public_url, state_key=context.derive_key(STATE_KEY_PURPOSE)
    )


@hookimpl
def register_providers() -> Iterable[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.IDENTITY,
            name=NAME,
            factory=create_provider,
            settings_model=BankIdOidcSettings,
            description="Norwegian BankID over OpenID Connect (BankID, Idura/Criipto or Signicat).",
        )
    ]


@hookimpl
def register_routes() -> Iterable[Any]:
    return [Route(CALLBACK_PATH, callback_endpoint, methods=["GET"], name="bankid-oidc-callback")]


@hookimpl
def plugin_info() -> Mapping[str, str]:
    return {"description": "Norwegian BankID login over OpenID Connect (presets: BankID, Idura, Signicat)."}
