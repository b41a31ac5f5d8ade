"""A real OpenID provider for tests: authorization code flow with PKCE, RS256-signed ID tokens, discovery,
JWKS and userinfo, served on a real port (``tests.fakes.server.serve``).

It enforces what an OpenID provider running BankID enforces — a registered client authenticating as
registered, the exact redirect URI, PKCE S256, single-use codes that expire, ``openid`` in the scope — so
a client that gets any of it wrong fails here as it would there. The person who "logs in with BankID" and
the assurance level are set on the object; knobs make it misbehave for the negative tests (a forged
signature, a wrong audience, an expired token, another login's nonce, no national ID, a lower ``acr``).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

CODE_TTL_SECONDS = 60


@dataclass
class Person:
    national_id: str
    given_name: str
    family_name: str
    birthdate: str


@dataclass
class Misbehave:
    """How the next ID tokens go wrong (all off by default)."""

    forge_signature: bool = False  # signed with a key that is not in the JWKS, under a published kid
    audience: str | None = None  # another client's audience
    expired: bool = False  # exp in the past (beyond any leeway)
    nonce: str | None = None  # another login's nonce (a replayed token)
    omit_national_id: bool = False
    acr: str | None = None  # e.g. a lower level of assurance


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str
    person: Person
    acr: str
    expires: float
    used: bool = False


@dataclass
class OpenIdProviderFake:
    client_id: str = "legetime-test"
    client_secret: str = "test-client-secret"
    redirect_uris: list[str] = field(default_factory=list)
    auth_method: str = "client_secret_basic"
    national_id_claim: str = "nnin_altsub"
    acr_claim: str = "acr"
    acr: str = "urn:bankid:bid;LOA=4"
    claims_in_id_token: bool = True
    """False: the person's claims only come from userinfo (as Signicat does by default)."""
    person: Person = field(default_factory=lambda: Person("17889230266", "Kari", "Nordmann", "1992-08-17"))
    misbehave: Misbehave = field(default_factory=Misbehave)
    deny_next: bool = False
    """The next login is refused by the user (``error=access_denied``)."""
    down: bool = False
    issuer: str = ""
    requests: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._key = _new_key()
        self._old_keys: list[RSAKey] = []
        self._codes: dict[str, _Code] = {}
        self._access_tokens: dict[str, dict[str, Any]] = {}

    # --- Controls ---------------------------------------------------------------------------------

    def rotate_keys(self) -> None:
        """Sign with a new key from now on; the JWKS keeps the old one too (as providers do)."""
        self._old_keys.append(self._key)
        self._key = _new_key()

    def login(self, authorize_url: str) -> str:
        """The user follows the authorize URL and logs in; return where the provider sends her next."""
        import httpx

        response = httpx.get(authorize_url, follow_redirects=False)
        assert response.status_code == 302, f"the provider refused the authorize request: {response.text}"
        return response.headers["location"]

    # --- The app ----------------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
                Route("/authorize", self._authorize),
                Route("/token", self._token, methods=["POST"]),
                Route("/userinfo", self._userinfo),
            ]
        )

    def _count(self, name: str) -> Response | None:
        self.requests[name] = self.requests.get(name, 0) + 1
        return PlainTextResponse("Service Unavailable", status_code=503) if self.down else None

    async def _discovery(self, request: Request) -> Response:
        if down := self._count("discovery"):
            return down
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [self.auth_method],
            }
        )

    async def _jwks(self, request: Request) -> Response:
        if down := self._count("jwks"):
            return down
        return JSONResponse(KeySet([self._key, *self._old_keys]).as_dict(private=False))

    async def _authorize(self, request: Request) -> Response:
        if down := self._count("authorize"):
            return down
        q = request.query_params
        if q.get("client_id") != self.client_id:
            return PlainTextResponse("unknown client", status_code=400)
        redirect_uri = q.get("redirect_uri", "")
        if redirect_uri not in self.redirect_uris:
            return PlainTextResponse("redirect_uri is not registered", status_code=400)  # never redirect
        state = q.get("state", "")

        def error(code: str) -> Response:
            return RedirectResponse(f"{redirect_uri}?{urlencode({'error': code, 'state': state})}", 302)

        if q.get("response_type") != "code" or "openid" not in q.get("scope", "").split():
            return error("invalid_request")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge") or not q.get("nonce"):
            return error("invalid_request")
        if self.deny_next:
            self.deny_next = False
            return error("access_denied")
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            code_challenge=q["code_challenge"],
            nonce=q["nonce"],
            person=self.person,
            acr=self.misbehave.acr or self.acr,
            expires=time.time() + CODE_TTL_SECONDS,
        )
        return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}", 302)

    def _client_authenticated(self, request: Request, form: Any) -> bool:
        if self.auth_method == "client_secret_basic":
            header = request.headers.get("authorization", "")
            if not header.startswith("Basic "):
                return False
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        return client_id == self.client_id and secrets.compare_digest(secret, self.client_secret)

    async def _token(self, request: Request) -> Response:
        if down := self._count("token"):
            return down
        form = await request.form()
        if not self._client_authenticated(request, form):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        grant = self._codes.get(str(form.get("code", "")))
        if grant is None or grant.used or time.time() > grant.expires:
            return JSONResponse({"error": "invalid_grant", "error_description": "code"}, status_code=400)
        grant.used = True  # single use, even when the rest of the request is wrong
        if form.get("redirect_uri") != grant.redirect_uri:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "redirect_uri"}, status_code=400
            )
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not verifier or challenge != grant.code_challenge:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
        person_claims = self._person_claims(grant.person)
        access_token = secrets.token_urlsafe(24)
        self._access_tokens[access_token] = person_claims
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self._id_token(grant, person_claims),
            },
            headers={"Cache-Control": "no-store"},
        )

    async def _userinfo(self, request: Request) -> Response:
        if down := self._count("userinfo"):
            return down
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self._access_tokens:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(self._access_tokens[token])

    # --- Tokens -----------------------------------------------------------------------------------

    def _person_claims(self, person: Person) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "sub": _subject(person.national_id),
            "given_name": person.given_name,
            "family_name": person.family_name,
            "birthdate": person.birthdate,
        }
        if not self.misbehave.omit_national_id:
            claims[self.national_id_claim] = person.national_id
        return claims

    def _id_token(self, grant: _Code, person_claims: dict[str, Any]) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.misbehave.audience or grant.client_id,
            "iat": now,
            "exp": now - 3600 if self.misbehave.expired else now + 300,
            "auth_time": now,
            "nonce": self.misbehave.nonce or grant.nonce,
            self.acr_claim: grant.acr,
            "sub": person_claims["sub"],
        }
        if self.claims_in_id_token:
            claims |= person_claims
        key = self._key
        if self.misbehave.forge_signature:
            key = _new_key(kid=str(self._key.kid))
        return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, claims, key)


def _new_key(kid: str | None = None) -> RSAKey:
    return RSAKey.generate_key(
        2048, parameters={"kid": kid or secrets.token_hex(8), "use": "sig", "alg": "RS256"}
    )


def _subject(national_id: str) -> str:
    """A pairwise subject, as BankID gives one: stable per person, not the national ID."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"sub:" + national_id.encode()).digest()).decode()
