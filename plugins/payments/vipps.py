"""Vipps MobilePay ePayment API (payment provider ``vipps``): the payer approves in the Vipps app (``WALLET``)
or on Vipps' card page (``CARD``); we capture when the case closes.

Documentation followed (developer.vippsmobilepay.com): the ePayment API guide and reference
(``POST /epayment/v1/payments``, ``GET …/{reference}``, ``GET …/{reference}/events``, ``POST
…/{reference}/capture|cancel|refund``; the ``aggregate`` amounts; states CREATED, AUTHORIZED, ABORTED,
EXPIRED, TERMINATED), the Access token API (``POST /accesstoken/get``), "HTTP headers" (the
``Ocp-Apim-Subscription-Key``, ``Merchant-Serial-Number`` and ``Vipps-System-*`` headers on every call;
``Idempotency-Key`` on every modification, a retry with the same key and request returns the first
answer, with another request a 409) and the Webhooks API's "Request authentication" (HMAC-SHA256 over
``POST\\n<path and query>\\n<x-ms-date>;<host>;<x-ms-content-sha256>``, checked against its example).

What we rely on and why:

* **Status from ``aggregate``**, never from ``state``: a captured payment stays ``AUTHORIZED`` at Vipps.
* **The reference is derived from the idempotency key** (``lt-<hash>``): a retried reserve creates
  nothing new, and the same key yields the same payment even if the first answer was lost.
* **Expiry**: Vipps keeps a reservation for up to 180 days, but card issuers may drop theirs after
  7 days; ``expires_at`` is the ``AUTHORIZED`` event's time + ``reservation_days`` (7), so the core
  captures or releases in time.
* A modification whose answer is lost (timeout) is retried with the same key: Vipps replays it, so a
  capture is never made twice.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import importlib
import json
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from legetime.sdk import (
    Capability,
    ErrorCode,
    HttpsUrl,
    IdempotencyConflict,
    Money,
    Payment,
    PaymentAmounts,
    PaymentExpired,
    PaymentMethodKind,
    PaymentOption,
    PaymentStateError,
    ProviderCheck,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    ProviderSpec,
    ProviderUnavailable,
    ReserveRequest,
    WebhookEvent,
    __version__,
    derive_status,
    hookimpl,
    webhook_rejected,
)

# httpx is imported when the provider is constructed (see ``_load_sdk``), not when the plugin is loaded: a
# default plugin whose provider is not enabled costs start-up nothing.
if TYPE_CHECKING:
    import httpx

NAME = "vipps"
PAYMENTS = "/epayment/v1/payments"
UNAVAILABLE = "Vipps svarer ikke akkurat nå. Prøv igjen om litt."
CURRENCIES = ("NOK", "DKK", "EUR")
_PHONE = re.compile(r"^\d{10,15}$")


class VippsSettings(ProviderSettings):
    """Settings of ``vipps``, from ``LEGETIME_PAYMENTS_VIPPS_*`` (the keys are in Vipps' merchant portal)."""

    model_config = SettingsConfigDict(env_prefix="LEGETIME_PAYMENTS_VIPPS_")

    base_url: HttpsUrl = Field(
        default="https://apitest.vipps.no",
        description="The API: test https://apitest.vipps.no, production https://api.vipps.no.",
    )
    client_id: str = Field(description="client_id of the sales unit (merchant portal → Utvikler).")
    client_secret: SecretStr = Field(description="client_secret of the sales unit.")
    subscription_key: SecretStr = Field(description="Ocp-Apim-Subscription-Key of the sales unit.")
    merchant_serial_number: str = Field(description="Merchant-Serial-Number (MSN) of the sales unit.")
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="The secret Vipps returned when the webhook was registered (POST /webhooks/v1/webhooks). "
        "Without it webhooks are refused; reconciliation still finds every change.",
    )
    webhook_tolerance_seconds: int = Field(
        default=300, gt=0, le=3600, description="How far a webhook's x-ms-date may be from now."
    )
    reservation_days: int = Field(
        default=7,
        gt=0,
        le=180,
        description="How long a reservation is relied on: Vipps keeps it up to 180 days, card issuers often "
        "7. Capture or release happens before.",
    )
    system_name: str = Field(default="legetime", description="Vipps-System-Name header.")
    timeout_seconds: float = Field(default=10.0, gt=0, le=60, description="HTTP timeout per call.")

    @field_validator("merchant_serial_number")
    @classmethod
    def _msn(cls, value: str) -> str:
        if not value.isdigit():
            raise ValueError("the Merchant-Serial-Number is digits only")
        return value


def vipps_signature(secret: str, path_and_query: str, date: str, host: str, content_hash: str) -> str:
    """The webhook signature as the Webhooks API documents it (base64 HMAC-SHA256 with the secret)."""
    signed = f"POST\n{path_and_query}\n{date};{host};{content_hash}"
    return base64.b64encode(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()).decode()


def content_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


class VippsProvider:
    """Implements ``legetime.sdk.PaymentProvider`` against the ePayment API."""

    name = NAME
    payment_options = (
        PaymentOption(PaymentMethodKind.WALLET, "Vipps", "WALLET"),
        PaymentOption(PaymentMethodKind.CARD, "Betalingskort", "CARD"),
    )

    def __init__(self, settings: VippsSettings, *, now: Any = None) -> None:
        _load_sdk()
        self.settings = settings
        self._now = now or (lambda: datetime.now(UTC))
        self._token: tuple[float, str] | None = None

    # --- The protocol -----------------------------------------------------------------------------

    async def reserve(self, request: ReserveRequest) -> Payment:
        if request.amount.currency not in CURRENCIES or request.amount.amount <= 0:
            raise ProviderError("Vipps tar bare positive beløp i NOK, DKK eller EUR.", field="amount")
        if not request.return_url:
            raise ProviderError(
                "Oppgi returnUrl: Vipps sender betaleren tilbake dit.",
                field="returnUrl",
                code=ErrorCode.REQUIRED,
            )
        reference = reference_for(request.idempotency_key)
        method, _, phone = (request.payment_method or "WALLET").partition(":")
        if method not in ("WALLET", "CARD") or (phone and not _PHONE.match(phone)):
            raise ProviderError(
                "Ugyldig betalingsmåte: WALLET, WALLET:<mobilnummer med landkode> eller CARD.",
                field="paymentMethod",
                code=ErrorCode.INVALID,
            )
        body: dict[str, Any] = {
            "amount": {"currency": request.amount.currency, "value": request.amount.amount},
            "paymentMethod": {"type": method},
            "reference": reference,
            "returnUrl": request.return_url,
            "userFlow": "WEB_REDIRECT",
            "paymentDescription": f"{request.description} ({request.reference})"[:100],
        }
        if phone:
            body["customer"] = {"phoneNumber": phone}
        created = await self._call("POST", PAYMENTS, body, idempotency_key=request.idempotency_key)
        return await self._fetch(str(created.get("reference", reference)))

    async def get(self, payment_id: str) -> Payment:
        return await self._fetch(payment_id)

    async def capture(self, payment_id: str, amount: Money, idempotency_key: str) -> Payment:
        payment = await self._fetch(payment_id)
        if payment.expires_at is not None and self._now() >= payment.expires_at:
            raise PaymentExpired("Reservasjonen er utløpt og kan ikke trekkes.")
        return await self._modify(payment_id, "capture", amount, idempotency_key)

    async def release(self, payment_id: str, idempotency_key: str) -> Payment:
        answer = await self._call(
            "POST", f"{PAYMENTS}/{payment_id}/cancel", {}, idempotency_key=idempotency_key
        )
        return await self._after(payment_id, answer)

    async def refund(self, payment_id: str, amount: Money, idempotency_key: str) -> Payment:
        return await self._modify(payment_id, "refund", amount, idempotency_key)

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes, url: str) -> WebhookEvent:
        if self.settings.webhook_secret is None:
            raise webhook_rejected("no webhook secret is configured (LEGETIME_PAYMENTS_VIPPS_WEBHOOK_SECRET)")
        date, sent_hash = _header(headers, "x-ms-date"), _header(headers, "x-ms-content-sha256")
        authorization, host = _header(headers, "authorization"), _header(headers, "host")
        if not (date and sent_hash and authorization and host):
            raise webhook_rejected("missing x-ms-date, x-ms-content-sha256, host or authorization")
        if not hmac.compare_digest(sent_hash, content_hash(body)):
            raise webhook_rejected("the content hash does not match the body")
        parts = urlsplit(url)
        path_and_query = parts.path + (f"?{parts.query}" if parts.query else "")
        expected = vipps_signature(
            self.settings.webhook_secret.get_secret_value(), path_and_query, date, host, sent_hash
        )
        prefix = "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature="
        if not authorization.startswith(prefix) or not hmac.compare_digest(
            authorization.removeprefix(prefix), expected
        ):
            raise webhook_rejected("bad signature")
        try:
            sent = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError):
            raise webhook_rejected("malformed x-ms-date") from None
        if abs((self._now() - sent).total_seconds()) > self.settings.webhook_tolerance_seconds:
            raise webhook_rejected("too old (or from the future)")
        try:
            event = json.loads(body)
            name, psp_reference = str(event.get("name", "changed")), event.get("pspReference")
            return WebhookEvent(
                payment_id=str(event["reference"]),
                event=name,
                event_id=f"{psp_reference}:{name}" if psp_reference else None,
            )
        except (ValueError, KeyError, TypeError):
            raise webhook_rejected("not an ePayment event") from None

    # --- Calls --------------------------------------------------------------------------------------

    async def _fetch(self, reference: str) -> Payment:
        answer = await self._call("GET", f"{PAYMENTS}/{reference}")
        return await self._payment(reference, answer)

    async def _modify(self, reference: str, operation: str, amount: Money, idempotency_key: str) -> Payment:
        if amount.amount <= 0:
            raise ProviderError("Beløpet må være større enn null.", field="amount", code=ErrorCode.INVALID)
        body = {"modificationAmount": {"currency": amount.currency, "value": amount.amount}}
        answer = await self._call(
            "POST", f"{PAYMENTS}/{reference}/{operation}", body, idempotency_key=idempotency_key
        )
        return await self._after(reference, answer)

    async def _after(self, reference: str, answer: Mapping[str, Any]) -> Payment:
        """A modification answers with the new aggregate; the rest (state, expiry) comes from a fetch."""
        return (
            await self._fetch(reference)
            if "aggregate" not in answer
            else await self._payment(reference, answer)
        )

    async def _payment(self, reference: str, data: Mapping[str, Any]) -> Payment:
        aggregate = data.get("aggregate") or {}
        amounts = PaymentAmounts(
            authorized=_value(aggregate, "authorizedAmount"),
            captured=_value(aggregate, "capturedAmount"),
            released=_value(aggregate, "cancelledAmount"),
            refunded=_value(aggregate, "refundedAmount"),
        )
        state = str(data.get("state", ""))
        pending = state == "CREATED"
        expires_at = await self._expires_at(reference) if amounts.authorized else None
        remaining = amounts.authorized - amounts.captured - amounts.released
        expired = expires_at is not None and remaining > 0 and self._now() >= expires_at
        amount = data.get("amount") or aggregate.get("authorizedAmount") or {}
        return Payment(
            provider=NAME,
            payment_id=reference,
            amount=Money(int(amount.get("value", 0)), str(amount.get("currency", "NOK"))),
            amounts=amounts,
            status=derive_status(amounts, expired=expired, pending=pending),
            expires_at=expires_at,
            action_url=str(data["redirectUrl"]) if pending and data.get("redirectUrl") else None,
        )

    async def _expires_at(self, reference: str) -> datetime | None:
        events = await self._call("GET", f"{PAYMENTS}/{reference}/events")
        authorized = [
            e["timestamp"]
            for e in (events if isinstance(events, list) else [])
            if e.get("name") == "AUTHORIZED"
        ]
        if not authorized:
            return None
        moment = datetime.fromisoformat(str(min(authorized)).replace("Z", "+00:00"))
        return moment + timedelta(days=self.settings.reservation_days)

    async def check(self) -> ProviderCheck:
        """Ask the Access Token API for a token (``POST /accesstoken/get``): it authenticates the client_id,
        client_secret and subscription key and changes nothing. The token is not kept. The merchant serial
        number is not part of it: it is checked with the first payment."""
        headers = {
            **self._system_headers(),
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret.get_secret_value(),
        }
        try:
            response = await self._send("POST", "/accesstoken/get", headers, None)
        except ProviderUnavailable:
            return ProviderCheck(False, "Vipps MobilePay is unreachable.")
        status = response.status_code
        if status in (401, 403):
            return ProviderCheck(False, f"Vipps MobilePay refused the API keys (HTTP {status}).")
        try:
            data = response.json() if status == 200 else None
        except ValueError:
            data = None
        issued = isinstance(data, dict) and bool(data.get("access_token"))
        if not issued:
            return ProviderCheck(False, f"Vipps MobilePay answered HTTP {status} without an access token.")
        return ProviderCheck(
            True,
            "Vipps MobilePay accepted the API keys and issued an access token (the merchant serial number "
            "is checked with the first payment).",
        )

    async def _access_token(self, *, fresh: bool = False) -> str:
        if not fresh and self._token is not None and time.monotonic() < self._token[0]:
            return self._token[1]
        headers = {
            **self._system_headers(),
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret.get_secret_value(),
        }
        response = await self._send("POST", "/accesstoken/get", headers, None)
        if response.status_code in (401, 403):
            raise ProviderError("Vipps avviste nøklene (client_id/client_secret/abonnementsnøkkel).")
        data = _json(response)
        if response.status_code != 200 or "access_token" not in data:
            raise ProviderUnavailable(UNAVAILABLE)
        lifetime = int(data.get("expires_in", 3600))
        self._token = (time.monotonic() + max(lifetime - 60, 1), str(data["access_token"]))
        return self._token[1]

    def _system_headers(self) -> dict[str, str]:
        return {
            "Ocp-Apim-Subscription-Key": self.settings.subscription_key.get_secret_value(),
            "Merchant-Serial-Number": self.settings.merchant_serial_number,
            "Vipps-System-Name": self.settings.system_name,
            "Vipps-System-Version": __version__,
            "Vipps-System-Plugin-Name": "legetime-payments-vipps",
            "Vipps-System-Plugin-Version": __version__,
        }

    async def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Any:
        if method == "POST" and not idempotency_key:
            raise ProviderError("Idempotensnøkkel mangler.", field="idempotency_key", code=ErrorCode.REQUIRED)
        for attempt in (1, 2):
            headers = {
                **self._system_headers(),
                "Authorization": f"Bearer {await self._access_token(fresh=attempt == 2)}",
            }
            if idempotency_key:
                headers["Idempotency-Key"] = idempotency_key
            response = await self._send(method, path, headers, body)
            if response.status_code != 401:
                break  # a 401 means the token was revoked or expired early: fetch a new one, once
        return _answer(response)

    async def _send(
        self, method: str, path: str, headers: Mapping[str, str], body: Mapping[str, Any] | None
    ) -> httpx.Response:
        import httpx

        try:
            async with httpx.AsyncClient(
                base_url=self.settings.base_url, timeout=self.settings.timeout_seconds
            ) as c:
                return await c.request(method, path, headers=dict(headers), json=body)
        except httpx.HTTPError:
            raise ProviderUnavailable(UNAVAILABLE) from None


def reference_for(idempotency_key: str) -> str:
    """Our ePayment reference: unique per payment, the same for the same key (8–64 of [a-zA-Z0-9-])."""
    if not idempotency_key:
        raise ProviderError("Idempotensnøkkel mangler.", field="idempotency_key", code=ErrorCode.REQUIRED)
    return "lt-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]


def _answer(response: httpx.Response) -> Any:
    """The body of a successful answer, or the typed error a problem answer means."""
    if response.status_code in (200, 201, 204):
        return _json(response) if response.content else {}
    if response.status_code >= 500 or response.status_code == 429:
        raise ProviderUnavailable(UNAVAILABLE)
    problem = _json(response)
    detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase)
    if response.status_code == 404:
        raise PaymentStateError(f"Fant ingen Vipps-betaling: {detail}", code=ErrorCode.NOT_FOUND)
    if response.status_code == 409:
        raise IdempotencyConflict(f"Idempotensnøkkelen er brukt til en annen forespørsel: {detail}")
    if response.status_code in (401, 403):
        raise ProviderError(f"Vipps avviste tilgangen: {detail}")
    raise PaymentStateError(f"Vipps avviste endringen: {detail}")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        if response.status_code >= 500:
            raise ProviderUnavailable(UNAVAILABLE) from None
        return {}


def _value(aggregate: Mapping[str, Any], name: str) -> int:
    return int((aggregate.get(name) or {}).get("value", 0))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def _load_sdk() -> None:
    """Import the HTTP client with the provider, so that its first payment does not wait for it."""
    importlib.import_module("httpx")


# --- Plugin ----------------------------------------------------------------------------------------


def create_provider(settings: VippsSettings, context: ProviderContext) -> VippsProvider:
    return VippsProvider(settings)


@hookimpl
def register_providers() -> Iterable[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.PAYMENT,
            name=NAME,
            factory=create_provider,
            settings_model=VippsSettings,
            description="Vipps MobilePay ePayment API: the Vipps app or a card on Vipps' page.",
        )
    ]


@hookimpl
def plugin_info() -> Mapping[str, str]:
    return {
        "description": "Vipps MobilePay ePayment: reserve in the app or by card, capture, cancel, refund."
    }
