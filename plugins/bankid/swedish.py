"""Swedish BankID through the Relying Party API v6 (identity provider ``bankid-se``).

Documentation followed (BankID / Finansiell ID-Teknik BID AB, developers.bankid.com):

* API reference, "Auth & Sign" v6.0 (``/rp/v6.0/auth``, ``/collect``, ``/cancel``) and its OpenAPI file
  (``openapi-auth-sign-6.x.yaml``): request and response fields, ``status`` pending/failed/complete,
  ``hintCode`` values, ``completionData`` (``user.personalNumber/name/givenName/surname``, ``device``,
  ``bankIdIssueDate``, ``stepUp``, ``signature``, ``ocspResponse``) and the error responses
  ``{"errorCode", "details"}`` (alreadyInProgress, invalidParameters, unauthorized, notFound,
  methodNotAllowed, requestTimeout, unsupportedMediaType, internalError, maintenance).
* "QR code" how-to guide: ``qrData = "bankid." + qrStartToken + "." + time + "." + qrAuthCode`` with
  ``qrAuthCode = HMAC-SHA256(key=qrStartSecret, message=str(time))`` in lowercase hex and ``time`` the
  whole seconds since the auth response; regenerated every second; ``qrStartSecret`` never leaves the
  server. Checked against the guide's published example (tests/plugins/test_bankid_se.py).
* "Recommended user messages" (RFA1 … RFA23) and which hint code shows which: translated to Norwegian
  bokmål in :data:`MESSAGES` (the table is in docs/providers/bankid-se.md).
* "Environments" and "Certificates": the test environment ``https://appapi2.test.bankid.com/rp/v6.0``,
  production ``https://appapi2.bankid.com/rp/v6.0``; the RP authenticates with its client certificate
  (PKCS#12 from the bank, or PEM) over mutual TLS and verifies the server against BankID's CA.

Flow: ``start`` calls ``auth`` and keeps ``orderRef``, the QR tokens and the moment of the answer in the
provider state (the core stores it server side, in its login transaction); the challenge carries the
``autoStartToken`` (same-device start) and the first QR code. Each ``complete`` calls ``collect`` once:
``pending`` → :class:`LoginPending` with a user message and a *fresh* QR code (the frontend polls every
``poll_interval_seconds`` = 1 s and redraws it), ``failed`` → :class:`IdentityRejected`, ``complete`` →
:class:`VerifiedIdentity` with ``country="SE"`` after validating the personal number (Luhn, date).

``params["launch"]`` (optional, from the frontend): ``"qr"`` (default) or ``"autostart"`` picks the
recommended message variant (RFA1 vs RFA13, RFA17B vs RFA17A).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import ipaddress
import secrets
import ssl
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog
from pydantic import Field, FilePath, IPvAnyAddress, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from legetime.sdk import (
    AssuranceLevel,
    Capability,
    ConfigError,
    IdentityRejected,
    InvalidSwedishPersonalNumber,
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
    parse_swedish_personal_number,
)

# httpx is imported when the provider is constructed (see ``_load_sdk``) and cryptography's PKCS#12 support
# when it reads the RP certificate, not when the plugin is loaded: a default plugin whose provider is not
# enabled costs start-up nothing.

NAME = "bankid-se"
ENV_PREFIX = "LEGETIME_BANKID_SE_"
STATE_VERSION = 1
TEST_BASE_URL = "https://appapi2.test.bankid.com/rp/v6.0"
PRODUCTION_BASE_URL = "https://appapi2.bankid.com/rp/v6.0"
LOGIN_HINT_FIELD = "loginHint"

log = structlog.get_logger(__name__)

# --- Recommended user messages (RFA…), in Norwegian bokmål ------------------------------------------

MESSAGES: dict[str, str] = {
    "RFA1": "Start BankID-appen.",
    "RFA2": "Du ser ikke ut til å ha BankID-appen. Installer den og skaff deg en BankID hos banken din.",
    "RFA3": "Handlingen ble avbrutt. Prøv igjen.",
    "RFA4": "En identifisering eller signering pågår allerede for personnummeret ditt. Prøv igjen.",
    "RFA5": "Noe gikk galt. Prøv igjen.",
    "RFA6": "Handlingen ble avbrutt.",
    "RFA8": "BankID-appen svarer ikke. Sjekk at den er startet og at du har internettilgang. "
    "Prøv deretter igjen.",
    "RFA9": "Skriv inn sikkerhetskoden din i BankID-appen og velg Identifiser eller Skriv under.",
    "RFA13": "Prøver å starte BankID-appen.",
    "RFA15": "Søker etter BankID. Sjekk at du har en gyldig BankID på denne enheten.",
    "RFA16": "BankID-en din er for gammel eller sperret. Bruk en annen BankID eller skaff en ny hos "
    "banken din.",
    "RFA17A": "Du ser ikke ut til å ha BankID-appen. Installer den og skaff deg en BankID hos banken din.",
    "RFA17B": "Kunne ikke lese av QR-koden. Start BankID-appen og les av QR-koden.",
    "RFA21": "En identifisering eller signering pågår.",
    "RFA22": "Noe gikk galt. Prøv igjen.",
    "RFA23": "Ta bilde av og les av ID-dokumentet ditt med BankID-appen.",
}

Launch = Literal["qr", "autostart"]

# hintCode → RFA, per launch mode. Unknown pending codes show RFA21, unknown failed codes RFA22 (the docs
# tell relying parties to expect new codes).
PENDING_HINTS: dict[str, dict[Launch, str]] = {
    "outstandingTransaction": {"qr": "RFA1", "autostart": "RFA13"},
    "noClient": {"qr": "RFA1", "autostart": "RFA1"},
    "started": {"qr": "RFA15", "autostart": "RFA15"},
    "userMrtd": {"qr": "RFA23", "autostart": "RFA23"},
    "userCallConfirm": {"qr": "RFA21", "autostart": "RFA21"},
    "userSign": {"qr": "RFA9", "autostart": "RFA9"},
}
FAILED_HINTS: dict[str, dict[Launch, str]] = {
    "expiredTransaction": {"qr": "RFA8", "autostart": "RFA8"},
    "certificateErr": {"qr": "RFA16", "autostart": "RFA16"},
    "userCancel": {"qr": "RFA6", "autostart": "RFA6"},
    "cancelled": {"qr": "RFA3", "autostart": "RFA3"},
    "startFailed": {"qr": "RFA17B", "autostart": "RFA17A"},
    "userDeclinedCall": {"qr": "RFA6", "autostart": "RFA6"},
    "notSupportedByUserApp": {"qr": "RFA2", "autostart": "RFA2"},
    "transactionRiskBlocked": {"qr": "RFA22", "autostart": "RFA22"},
}
QR_HINTS = frozenset({"outstandingTransaction", "noClient"})
"""While the order has these hints nobody has scanned it yet: keep showing the animated QR code."""


def pending_message(hint_code: str | None, launch: Launch = "qr") -> str:
    rfa = PENDING_HINTS.get(hint_code or "", {}).get(launch, "RFA21")
    return MESSAGES[rfa]


def failed_message(hint_code: str | None, launch: Launch = "qr") -> str:
    rfa = FAILED_HINTS.get(hint_code or "", {}).get(launch, "RFA22")
    return MESSAGES[rfa]


# --- Animated QR code ---------------------------------------------------------------------------------


def qr_auth_code(qr_start_secret: str, seconds: int) -> str:
    """HMAC-SHA256 of the elapsed whole seconds (as decimal text) keyed with ``qrStartSecret``, hex."""
    return hmac.new(qr_start_secret.encode(), str(seconds).encode(), hashlib.sha256).hexdigest()


def qr_data(qr_start_token: str, qr_start_secret: str, seconds: int) -> str:
    """The text of the QR code ``seconds`` whole seconds after the auth response."""
    if seconds < 0:
        raise ValueError("seconds must not be negative")
    return f"bankid.{qr_start_token}.{seconds}.{qr_auth_code(qr_start_secret, seconds)}"


# --- Settings -------------------------------------------------------------------------------------------


class BankIdSeSettings(ProviderSettings):
    """Settings of Swedish BankID (``LEGETIME_BANKID_SE_*``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    base_url: str = Field(
        default=TEST_BASE_URL,
        description=f"RP API v6.0 base URL: test {TEST_BASE_URL}, production {PRODUCTION_BASE_URL}.",
    )
    ca_cert: FilePath = Field(
        description="PEM file with BankID's CA certificate for the chosen environment; the server "
        "certificate must be issued by it (the system trust store is not used)."
    )
    client_p12: FilePath | None = Field(
        default=None,
        description="The RP certificate and key as a PKCS#12 (.p12/.pfx) file, as the bank issues it. "
        "Either this or client_cert + client_key.",
    )
    client_p12_password: SecretStr | None = Field(default=None, description="Password of the PKCS#12 file.")
    client_cert: FilePath | None = Field(
        default=None, description="The RP certificate (PEM; may hold the chain). With client_key."
    )
    client_key: FilePath | None = Field(
        default=None, description="The RP private key (PEM). With client_cert."
    )
    client_key_password: SecretStr | None = Field(
        default=None, description="Password of an encrypted client_key, if it is encrypted."
    )
    end_user_ip: IPvAnyAddress | None = Field(
        default=None,
        description="endUserIp sent to BankID when the login request carries no user IP. BankID wants the "
        "user's own address as the RP sees it; this fallback is for test and for deployments that cannot "
        "pass it yet.",
    )
    user_visible_data: str | None = Field(
        default=None,
        max_length=1000,
        description="Text shown in the BankID app during login (simpleMarkdownV1), e.g. "
        "'Logg inn hos Legetime'. Sent base64-encoded (at most 1500 characters encoded).",
    )
    certificate_policies: list[str] = Field(
        default_factory=list,
        description="requirement.certificatePolicies: OIDs of the BankID kinds accepted (empty: BankID's "
        "default, mobile BankID and BankID on file).",
    )
    pin_code: bool = Field(
        default=False,
        description="requirement.pinCode: the user must confirm with the security code, not biometrics.",
    )
    poll_interval_seconds: float = Field(
        default=1.0,
        ge=1.0,
        le=2.0,
        description="Poll interval told to clients. The QR code changes every second; BankID allows "
        "collect at most once a second and recommends every one to two seconds.",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=60, description="HTTP timeout per API call.")

    @field_validator("base_url")
    @classmethod
    def _https(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith("https://"):
            raise ValueError("must be an https:// URL (the RP API is mutual TLS only)")
        if not value.endswith("/rp/v6.0"):
            raise ValueError("must end with /rp/v6.0 (this provider speaks RP API v6.0)")
        return value

    @field_validator("user_visible_data")
    @classmethod
    def _fits(cls, value: str | None) -> str | None:
        if value is not None and not 0 < len(base64.b64encode(value.encode())) <= 1500:
            raise ValueError("must be 1 to 1500 characters once base64-encoded")
        return value

    @model_validator(mode="after")
    def _one_client_certificate(self) -> BankIdSeSettings:
        pem = self.client_cert is not None or self.client_key is not None
        p12, cert, key = (f"{ENV_PREFIX}{name}" for name in ("CLIENT_P12", "CLIENT_CERT", "CLIENT_KEY"))
        if self.client_p12 is not None and pem:
            raise ValueError(f"set either {p12} or {cert} + {key}, not both")
        if self.client_p12 is None and (self.client_cert is None or self.client_key is None):
            raise ValueError(
                f"the RP certificate is missing: set {p12} (+ {p12}_PASSWORD) or both {cert} and {key}"
            )
        return self


def build_ssl_context(settings: BankIdSeSettings) -> ssl.SSLContext:
    """A TLS client context that trusts only BankID's CA and presents the RP certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(settings.ca_cert))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.client_p12 is not None:
        _load_p12(context, settings.client_p12, settings.client_p12_password)
    else:
        assert settings.client_cert is not None and settings.client_key is not None
        password = settings.client_key_password.get_secret_value() if settings.client_key_password else None
        try:
            context.load_cert_chain(str(settings.client_cert), str(settings.client_key), password=password)
        except (ssl.SSLError, ValueError):
            raise ConfigError(
                f"{ENV_PREFIX}CLIENT_KEY",
                "the RP certificate and key cannot be loaded (not PEM, not a pair, or a wrong password)",
            ) from None
    return context


def _load_p12(context: ssl.SSLContext, path: Path, password: SecretStr | None) -> None:
    """``ssl`` loads certificates from files only: re-encode the PKCS#12 content as PEM in a private
    temporary directory, the key encrypted with a one-off password, load it, and remove the files."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        key, cert, chain = pkcs12.load_key_and_certificates(
            path.read_bytes(), password.get_secret_value().encode() if password else None
        )
    except ValueError:
        raise ConfigError(
            f"{ENV_PREFIX}CLIENT_P12_PASSWORD", "the PKCS#12 file cannot be opened (wrong password or format)"
        ) from None
    if key is None or cert is None:
        raise ConfigError(f"{ENV_PREFIX}CLIENT_P12", "the PKCS#12 file holds no certificate with its key")
    one_off = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory(prefix="bankid-se-") as directory:
        cert_path, key_path = Path(directory) / "cert.pem", Path(directory) / "key.pem"
        cert_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [cert, *chain]))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(one_off),
            )
        )
        context.load_cert_chain(str(cert_path), str(key_path), password=one_off)


# --- Provider state ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _State:
    order_ref: str
    qr_start_token: str
    qr_start_secret: str
    started_at: float
    """Unix time of the auth response (wall clock: any API process may poll)."""
    personal_number: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "order_ref": self.order_ref,
            "qr_start_token": self.qr_start_token,
            "qr_start_secret": self.qr_start_secret,
            "started_at": self.started_at,
            "personal_number": self.personal_number,
        }

    @classmethod
    def from_json(cls, state: Mapping[str, Any]) -> _State:
        try:
            if state["v"] != STATE_VERSION:
                raise ValueError("unknown version")
            personal_number = state.get("personal_number")
            return cls(
                order_ref=str(state["order_ref"]),
                qr_start_token=str(state["qr_start_token"]),
                qr_start_secret=str(state["qr_start_secret"]),
                started_at=float(state["started_at"]),
                personal_number=None if personal_number is None else str(personal_number),
            )
        except (KeyError, TypeError, ValueError):
            raise IdentityRejected("Innloggingen er ugyldig. Start innloggingen på nytt.") from None


# --- The provider -----------------------------------------------------------------------------------------

UNAVAILABLE = "Svensk BankID er ikke tilgjengelig akkurat nå. Prøv igjen om litt."
MISCONFIGURED = "Innlogging med svensk BankID er feil satt opp. Kontakt oss hvis det fortsetter."
BAD_ANSWER = "Svensk BankID svarte noe vi ikke forstår. Prøv igjen om litt."


class BankIdApiError(ProviderError):
    """BankID refused a call (``{"errorCode", "details"}``) in a way retrying will not fix; ``error_code``
    is BankID's code."""

    def __init__(self, message: str, *, error_code: str) -> None:
        super().__init__(message, retryable=False)
        self.error_code = error_code


class BankIdUnavailable(ProviderUnavailable):
    """BankID is down, overloaded or in maintenance (retryable); ``error_code`` is BankID's code."""

    def __init__(self, message: str, *, error_code: str) -> None:
        super().__init__(message)
        self.error_code = error_code


class SwedishBankId:
    """Implements ``legetime.sdk.IdentityProvider``; stateless (everything is in the state)."""

    name = NAME

    def __init__(
        self,
        settings: BankIdSeSettings,
        *,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _load_sdk()
        self.settings = settings
        self._ssl = ssl_context if ssl_context is not None else build_ssl_context(settings)
        self._clock = clock

    # -- the Protocol

    async def start(self, request: LoginRequest) -> LoginStart:
        personal_number = None
        if request.login_hint and request.login_hint.strip():
            personal_number = parse_swedish_personal_number(request.login_hint, field=LOGIN_HINT_FIELD).value
        body: dict[str, Any] = {"endUserIp": self._end_user_ip(request)}
        requirement: dict[str, Any] = {}
        if personal_number is not None:
            requirement["personalNumber"] = personal_number
        if self.settings.certificate_policies:
            requirement["certificatePolicies"] = list(self.settings.certificate_policies)
        if self.settings.pin_code:
            requirement["pinCode"] = True
        if requirement:
            body["requirement"] = requirement
        if self.settings.user_visible_data:
            body["userVisibleData"] = base64.b64encode(self.settings.user_visible_data.encode()).decode()
            body["userVisibleDataFormat"] = "simpleMarkdownV1"
        answer = await self._post("auth", body)
        started_at = self._clock()
        try:
            fields = {
                key: answer[key] for key in ("orderRef", "autoStartToken", "qrStartToken", "qrStartSecret")
            }
        except KeyError:
            fields = {}
        if not fields or not all(isinstance(v, str) and v for v in fields.values()):
            log.warning("bankid_se.bad_answer", operation="auth")
            raise ProviderUnavailable(BAD_ANSWER)
        state = _State(
            order_ref=fields["orderRef"],
            qr_start_token=fields["qrStartToken"],
            qr_start_secret=fields["qrStartSecret"],
            started_at=started_at,
            personal_number=personal_number,
        )
        challenge = LoginChallenge(
            poll_interval_seconds=self.settings.poll_interval_seconds,
            autostart_token=fields["autoStartToken"],
            qr_data=qr_data(state.qr_start_token, state.qr_start_secret, 0),
            message=MESSAGES["RFA1"],
        )
        return LoginStart(challenge=challenge, state=state.to_json())

    async def complete(
        self, state: Mapping[str, Any], params: Mapping[str, str]
    ) -> VerifiedIdentity | LoginPending:
        login = _State.from_json(state)
        launch: Launch = "autostart" if params.get("launch") == "autostart" else "qr"
        try:
            answer = await self._post("collect", {"orderRef": login.order_ref})
        except BankIdApiError as error:
            if error.error_code == "invalidParameters":  # no such order (any more): gone, too old, collected
                raise IdentityRejected("Innloggingen er utløpt eller ukjent. Start på nytt.") from None
            raise
        status, hint_code = answer.get("status"), answer.get("hintCode")
        hint = hint_code if isinstance(hint_code, str) else None
        if status == "pending":
            qr = self.qr_now(login) if hint is None or hint in QR_HINTS else None
            return LoginPending(message=pending_message(hint, launch), hint_code=hint, qr_data=qr)
        if status == "failed":
            raise IdentityRejected(failed_message(hint, launch))
        if status == "complete":
            return self._identity(login, answer.get("completionData"))
        log.warning("bankid_se.bad_answer", operation="collect")
        raise ProviderUnavailable(BAD_ANSWER)

    async def cancel(self, state: Mapping[str, Any]) -> None:
        login = _State.from_json(state)
        try:
            await self._post("cancel", {"orderRef": login.order_ref})
        except ProviderError as error:
            # Already finished or unknown (invalidParameters), or BankID unreachable: the order times out
            # at BankID by itself, so cancelling is best effort.
            log.info("bankid_se.cancel_failed", error_code=getattr(error, "error_code", error.code.value))

    async def check(self) -> ProviderCheck:
        """``collect`` of an order that was never started (a random orderRef), over mutual TLS: the RP API
        has no status call, and collect is its read-only one. BankID answers 400 ``invalidParameters`` for
        an unknown order only after the TLS handshake accepted our certificate and its CA vouched for the
        server, so that answer means the certificate and the endpoint work; ``unauthorized`` means BankID
        knows the certificate but the RP may not use the service. No order is started."""
        import httpx

        url = f"{self.settings.base_url}/collect"
        try:
            async with httpx.AsyncClient(verify=self._ssl, timeout=self.settings.timeout_seconds) as client:
                response = await client.post(url, json={"orderRef": str(uuid.uuid4())})
        except httpx.TimeoutException:
            return ProviderCheck(False, f"BankID did not answer within {self.settings.timeout_seconds:g} s.")
        except httpx.HTTPError as error:
            if _tls_failure(error):
                return ProviderCheck(
                    False,
                    "The TLS handshake failed: BankID refused the RP certificate, or the server's "
                    "certificate is not issued by the configured CA.",
                )
            if isinstance(error, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError):
                # Under TLS 1.3 the server checks our certificate after the client's side of the handshake
                # is done, and a refusal reaches the client as a dropped connection.
                return ProviderCheck(
                    False, "BankID closed the connection: it probably refused the RP certificate."
                )
            return ProviderCheck(False, "BankID is unreachable.")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        given = answer.get("errorCode") if isinstance(answer, dict) else None
        code = given if isinstance(given, str) else None
        if response.status_code == 400 and code == "invalidParameters":
            return ProviderCheck(
                True, "BankID accepted the RP certificate (mutual TLS) and the RP API answers."
            )
        if code == "unauthorized" or response.status_code in (401, 403):
            return ProviderCheck(
                False, f"BankID accepted the TLS connection but refused the RP (HTTP {response.status_code})."
            )
        known = f"{code}, " if code in KNOWN_ERROR_CODES else ""
        return ProviderCheck(False, f"BankID answered {known}HTTP {response.status_code}.")

    # -- helpers

    def qr_now(self, login: _State) -> str:
        """The QR code for this second. Derived here, so ``qrStartSecret`` never leaves the server."""
        seconds = max(0, int(self._clock() - login.started_at))
        return qr_data(login.qr_start_token, login.qr_start_secret, seconds)

    def _end_user_ip(self, request: LoginRequest) -> str:
        # A future LoginRequest may carry the user's address; until then the configured fallback.
        candidate = getattr(request, "end_user_ip", None) or self.settings.end_user_ip
        if candidate is None:
            raise ProviderError(MISCONFIGURED + f" ({ENV_PREFIX}END_USER_IP)")
        try:
            return str(ipaddress.ip_address(str(candidate)))
        except ValueError:
            raise ProviderError(MISCONFIGURED) from None

    def _identity(self, login: _State, completion: Any) -> VerifiedIdentity:
        try:
            user = completion["user"]
            raw_number, given_name, surname = user["personalNumber"], user["givenName"], user["surname"]
            if not all(isinstance(v, str) for v in (raw_number, given_name, surname)):
                raise TypeError("not text")
        except (KeyError, TypeError):
            log.warning("bankid_se.bad_answer", operation="collect", part="completionData")
            raise ProviderUnavailable(BAD_ANSWER) from None
        try:
            number = parse_swedish_personal_number(raw_number, field=None)
        except InvalidSwedishPersonalNumber as error:
            log.warning("bankid_se.invalid_personal_number", reason=error.reason)
            raise IdentityRejected("Vi kunne ikke bekrefte identiteten din med svensk BankID.") from None
        if login.personal_number is not None and number.value != login.personal_number:
            log.warning("bankid_se.personal_number_mismatch")
            raise IdentityRejected("Innloggingen gjelder en annen person enn den som ble oppgitt.")
        if not given_name.strip() or not surname.strip():
            raise IdentityRejected("Vi kunne ikke bekrefte identiteten din med svensk BankID.")
        extra = {"order_ref": login.order_ref}
        for key, out in (
            ("bankIdIssueDate", "bankid_issue_date"),
            ("signature", "signature"),
            ("ocspResponse", "ocsp_response"),
        ):
            if isinstance(completion.get(key), str):
                extra[out] = completion[key]
        return VerifiedIdentity(
            national_id=number.value,
            given_name=given_name.strip(),
            family_name=surname.strip(),
            birth_date=number.birth_date,
            assurance_level=AssuranceLevel.HIGH,
            provider=NAME,
            extra=extra,
            country="SE",
        )

    async def _post(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        url = f"{self.settings.base_url}/{operation}"
        try:
            async with httpx.AsyncClient(verify=self._ssl, timeout=self.settings.timeout_seconds) as client:
                response = await client.post(url, json=body)
        except httpx.TimeoutException:
            log.warning("bankid_se.timeout", operation=operation)
            raise ProviderUnavailable(UNAVAILABLE) from None
        except httpx.HTTPError as error:
            if _tls_failure(error):
                # The server is not the one BankID's CA vouches for, or it refused our certificate.
                log.error("bankid_se.tls_failure", operation=operation)
                raise ProviderError(MISCONFIGURED) from None
            log.warning("bankid_se.network_error", operation=operation, error=type(error).__name__)
            raise ProviderUnavailable(UNAVAILABLE) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code == 200 and isinstance(answer, dict):
            return answer
        error_code = answer.get("errorCode") if isinstance(answer, dict) else None
        raise _api_error(operation, response.status_code, error_code if isinstance(error_code, str) else None)


def _load_sdk() -> None:
    """Import the HTTP client with the provider, so that its first login does not wait for it."""
    importlib.import_module("httpx")


def _tls_failure(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


RETRYABLE_ERRORS = frozenset({"requestTimeout", "internalError", "maintenance"})
KNOWN_ERROR_CODES = frozenset(
    {
        "alreadyInProgress",
        "invalidParameters",
        "unauthorized",
        "notFound",
        "methodNotAllowed",
        "requestTimeout",
        "unsupportedMediaType",
        "internalError",
        "maintenance",
    }
)
"""The RP API's documented errorCodes (only these are repeated to operators)."""


def _api_error(operation: str, status: int, error_code: str | None) -> ProviderError:
    """Map an RP API error response to a typed error. BankID's ``details`` are not passed on."""
    code = error_code or ("internalError" if status >= 500 else f"http{status}")
    log.warning("bankid_se.api_error", operation=operation, status=status, error_code=code)
    if code == "alreadyInProgress":  # the user has another login going: theirs to finish or wait out
        return IdentityRejected(MESSAGES["RFA4"])
    if code in RETRYABLE_ERRORS or status >= 500:
        return BankIdUnavailable(UNAVAILABLE, error_code=code)
    # invalidParameters, unauthorized, notFound, methodNotAllowed, unsupportedMediaType: our side is wrong.
    return BankIdApiError(MISCONFIGURED, error_code=code)


def _factory(settings: BankIdSeSettings, context: ProviderContext) -> SwedishBankId:
    return SwedishBankId(settings)


@hookimpl
def register_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.IDENTITY,
            name=NAME,
            factory=_factory,
            settings_model=BankIdSeSettings,
            description="Swedish BankID (RP API v6, mutual TLS, animated QR code).",
        )
    ]


@hookimpl
def plugin_info() -> dict[str, str]:
    return {
        "description": "Swedish BankID: log in with the BankID app (QR code or autostart) through the "
        "RP API v6.",
        "url": "https://developers.bankid.com/",
    }
