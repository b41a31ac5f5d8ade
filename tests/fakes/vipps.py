"""A local Vipps MobilePay ePayment API that keeps the documented contract, for the ``vipps`` plugin's tests.

It enforces what Vipps enforces: an access token from ``/accesstoken/get`` for the right client, the
subscription key and MSN on every call, ``Vipps-System-*`` headers, an ``Idempotency-Key`` on every
modification (same key and request: the first answer again; another request: 409), amounts as integers
in minor units in the payment's currency, and the state machine (nothing captured before the payer
approves, no more captured than authorized, no more refunded than captured). It signs webhooks the way
the Webhooks API does.

Controls for tests: the payer approves or rejects, a reservation ages, Vipps goes down, an answer is lost
after the change was made (the gateway times out: the client sees a 504 and cannot know it was made).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from legetime.plugins.payments.vipps import content_hash, vipps_signature

REFERENCE = re.compile(r"^[a-zA-Z0-9-]{8,64}$")
MODIFYING = ("create", "capture", "cancel", "refund")
SIGNED_HEADERS = "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature="


@dataclass
class _Payment:
    reference: str
    currency: str
    value: int
    method: str
    return_url: str
    state: str = "CREATED"
    authorized: int = 0
    captured: int = 0
    cancelled: int = 0
    refunded: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)

    def event(self, name: str, amount: int, at: datetime | None = None) -> None:
        moment = (at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
        self.events.append(
            {
                "reference": self.reference,
                "pspReference": secrets.token_hex(8),
                "name": name,
                "amount": {"currency": self.currency, "value": amount},
                "timestamp": moment,
                "success": True,
            }
        )


@dataclass
class VippsFake:
    client_id: str = "fake-client-id"
    client_secret: str = "fake-client-secret"
    subscription_key: str = "fake-subscription-key"
    msn: str = "123456"
    webhook_secret: str = "fake-webhook-secret"
    base_url: str = ""
    token_lifetime: int = 3600
    down: bool = False
    drop_next_answer: bool = False
    """The next modification is made, and its answer lost."""
    payments: dict[str, _Payment] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    tokens_issued: int = 0

    def __post_init__(self) -> None:
        self._tokens: dict[str, datetime] = {}
        self._idempotency: dict[tuple[str, str], tuple[str, int, Any]] = {}

    def plugin_settings(self) -> dict[str, str]:
        """The ``vipps`` plugin's settings for this fake (variable names without their prefix)."""
        return {
            "BASE_URL": self.base_url,
            "CLIENT_ID": self.client_id,
            "CLIENT_SECRET": self.client_secret,
            "SUBSCRIPTION_KEY": self.subscription_key,
            "MERCHANT_SERIAL_NUMBER": self.msn,
            "WEBHOOK_SECRET": self.webhook_secret,
        }

    # --- Controls ---------------------------------------------------------------------------------

    def approve(self, reference: str) -> None:
        """The payer approves in the app: the amount is reserved."""
        payment = self.payments[reference]
        assert payment.state == "CREATED", f"cannot approve a {payment.state} payment"
        payment.state, payment.authorized = "AUTHORIZED", payment.value
        payment.event("AUTHORIZED", payment.value)

    def approve_at(self, redirect_url: str) -> None:
        """The payer follows the payment's redirect URL and approves there."""
        reference = next(ref for ref in self.payments if self._redirect(ref) == redirect_url)
        self.approve(reference)

    def reject(self, reference: str) -> None:
        """The payer rejects in the app (or the card is declined)."""
        payment = self.payments[reference]
        assert payment.state == "CREATED"
        payment.state = "ABORTED"
        payment.event("ABORTED", payment.value)

    def age_reservation(self, reference: str, days: int) -> None:
        """Pretend the payer approved ``days`` ago."""
        for event in self.payments[reference].events:
            if event["name"] == "AUTHORIZED":
                moment = datetime.now(UTC) - timedelta(days=days)
                event["timestamp"] = moment.isoformat().replace("+00:00", "Z")

    def revoke_tokens(self) -> None:
        self._tokens.clear()

    def webhook(
        self, reference: str, name: str, url: str, at: datetime | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The notification Vipps sends to ``url`` about a payment, signed as the Webhooks API signs."""
        body = json.dumps(
            {
                "msn": self.msn,
                "reference": reference,
                "pspReference": secrets.token_hex(8),
                "name": name,
                "amount": {
                    "currency": "NOK",
                    "value": self.payments[reference].value if reference in self.payments else 0,
                },
                "timestamp": (at or datetime.now(UTC)).isoformat(),
                "idempotencyKey": None,
                "success": True,
            }
        ).encode()
        date = email.utils.format_datetime((at or datetime.now(UTC)).astimezone(UTC), usegmt=True)
        parts = url.split("://", 1)[1]
        host, _, path = parts.partition("/")
        hashed = content_hash(body)
        signature = vipps_signature(self.webhook_secret, "/" + path, date, host, hashed)
        headers = {
            "host": host,
            "x-ms-date": date,
            "x-ms-content-sha256": hashed,
            "authorization": f"{SIGNED_HEADERS}{signature}",
            "content-type": "application/json",
        }
        return headers, body

    # --- The app ----------------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/accesstoken/get", self._token, methods=["POST"]),
                Route("/epayment/v1/payments", self._create, methods=["POST"]),
                Route("/epayment/v1/payments/{reference}", self._get, methods=["GET"]),
                Route("/epayment/v1/payments/{reference}/events", self._events, methods=["GET"]),
                Route("/epayment/v1/payments/{reference}/{operation}", self._modify, methods=["POST"]),
            ]
        )

    async def _token(self, request: Request) -> Response:
        self.calls.append({"path": "/accesstoken/get", "headers": dict(request.headers)})
        if self.down:
            return _problem(503, "Service Unavailable")
        h = request.headers
        if (h.get("client_id"), h.get("client_secret")) != (self.client_id, self.client_secret):
            return _problem(401, "Unauthorized", "client_id or client_secret is wrong")
        if h.get("ocp-apim-subscription-key") != self.subscription_key:
            return _problem(401, "Unauthorized", "Access denied due to invalid subscription key")
        token = secrets.token_urlsafe(24)
        self._tokens[token] = datetime.now(UTC) + timedelta(seconds=self.token_lifetime)
        self.tokens_issued += 1
        return JSONResponse(
            {"token_type": "Bearer", "expires_in": str(self.token_lifetime), "access_token": token}
        )

    def _check(self, request: Request) -> Response | None:
        self.calls.append(
            {"path": request.url.path, "method": request.method, "headers": dict(request.headers)}
        )
        if self.down:
            return _problem(503, "Service Unavailable")
        h = request.headers
        token = h.get("authorization", "").removeprefix("Bearer ")
        if token not in self._tokens or self._tokens[token] < datetime.now(UTC):
            return _problem(401, "Unauthorized", "invalid or expired access token")
        if h.get("ocp-apim-subscription-key") != self.subscription_key:
            return _problem(401, "Unauthorized", "Access denied due to invalid subscription key")
        if h.get("merchant-serial-number") != self.msn:
            return _problem(403, "Forbidden", "Merchant-Serial-Number does not match the token")
        if not h.get("vipps-system-name") or not h.get("vipps-system-plugin-name"):
            return _problem(400, "Bad Request", "Vipps-System-* headers are required")
        return None

    async def _idempotent(self, request: Request, scope: str, apply: Any) -> Response:
        key = request.headers.get("idempotency-key")
        if not key:
            return _problem(400, "Bad Request", "Idempotency-Key header is required")
        body = await request.body()
        fingerprint = hashlib.sha256(scope.encode() + b"\0" + body).hexdigest()
        stored = self._idempotency.get((self.msn, key))
        if stored is not None:
            if stored[0] != fingerprint:
                return _problem(409, "Conflict", "The idempotency key was used for another request")
            return JSONResponse(stored[2], status_code=stored[1])
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return _problem(400, "Bad Request", "the body is not JSON")
        status, answer = apply(payload)
        if status < 300:  # only what was done is remembered; a refusal is evaluated again
            self._idempotency[(self.msn, key)] = (fingerprint, status, answer)
            if self.drop_next_answer:  # made, but the gateway gave up waiting: the client never hears
                self.drop_next_answer = False
                return _problem(504, "Gateway Timeout")
        return JSONResponse(answer, status_code=status)

    async def _create(self, request: Request) -> Response:
        if refused := self._check(request):
            return refused
        return await self._idempotent(request, "create", self._apply_create)

    def _apply_create(self, body: dict[str, Any]) -> tuple[int, Any]:
        amount, reference = body.get("amount") or {}, body.get("reference")
        if not isinstance(amount.get("value"), int) or amount["value"] <= 0:
            return 400, _problem_body(400, "amount.value must be a positive integer (minor units)")
        if amount.get("currency") not in ("NOK", "DKK", "EUR"):
            return 400, _problem_body(400, "amount.currency must be NOK, DKK or EUR")
        if not isinstance(reference, str) or not REFERENCE.match(reference):
            return 400, _problem_body(400, "reference must be 8-64 characters of [a-zA-Z0-9-]")
        if reference in self.payments:
            return 409, _problem_body(409, "reference is already used")
        method = (body.get("paymentMethod") or {}).get("type")
        if method not in ("WALLET", "CARD"):
            return 400, _problem_body(400, "paymentMethod.type must be WALLET or CARD")
        if body.get("userFlow") not in ("WEB_REDIRECT", "NATIVE_REDIRECT", "PUSH_MESSAGE", "QR"):
            return 400, _problem_body(400, "userFlow is required")
        if body["userFlow"] in ("WEB_REDIRECT", "NATIVE_REDIRECT") and not body.get("returnUrl"):
            return 400, _problem_body(400, "returnUrl is required for redirect flows")
        payment = _Payment(reference, amount["currency"], amount["value"], method, body.get("returnUrl", ""))
        payment.event("CREATED", amount["value"])
        self.payments[reference] = payment
        return 201, {"redirectUrl": self._redirect(reference), "reference": reference}

    def _redirect(self, reference: str) -> str:
        return f"{self.base_url}/landing-page/?token={hashlib.sha256(reference.encode()).hexdigest()[:24]}"

    async def _get(self, request: Request) -> Response:
        if refused := self._check(request):
            return refused
        payment = self.payments.get(request.path_params["reference"])
        if payment is None:
            return _problem(404, "Not Found", "no payment with that reference")
        return JSONResponse(self._view(payment))

    async def _events(self, request: Request) -> Response:
        if refused := self._check(request):
            return refused
        payment = self.payments.get(request.path_params["reference"])
        if payment is None:
            return _problem(404, "Not Found", "no payment with that reference")
        return JSONResponse(payment.events)

    def _view(self, payment: _Payment) -> dict[str, Any]:
        def money(value: int) -> dict[str, Any]:
            return {"currency": payment.currency, "value": value}

        return {
            "aggregate": {
                "authorizedAmount": money(payment.authorized),
                "cancelledAmount": money(payment.cancelled),
                "capturedAmount": money(payment.captured),
                "refundedAmount": money(payment.refunded),
            },
            "amount": money(payment.value),
            "state": payment.state,
            "paymentMethod": {"type": payment.method},
            "pspReference": secrets.token_hex(8),
            "redirectUrl": self._redirect(payment.reference),
            "reference": payment.reference,
        }

    async def _modify(self, request: Request) -> Response:
        if refused := self._check(request):
            return refused
        operation, reference = request.path_params["operation"], request.path_params["reference"]
        if operation not in MODIFYING[1:]:
            return _problem(404, "Not Found")
        payment = self.payments.get(reference)
        if payment is None:
            return _problem(404, "Not Found", "no payment with that reference")

        def apply(body: dict[str, Any]) -> tuple[int, Any]:
            if operation == "cancel":
                return self._cancel(payment)
            amount = body.get("modificationAmount") or {}
            if not isinstance(amount.get("value"), int) or amount["value"] <= 0:
                return 400, _problem_body(400, "modificationAmount.value must be a positive integer")
            if amount.get("currency") != payment.currency:
                return 400, _problem_body(400, f"the payment is in {payment.currency}")
            value = amount["value"]
            if operation == "capture":
                if (
                    payment.state != "AUTHORIZED"
                    or value > payment.authorized - payment.captured - payment.cancelled
                ):
                    return 400, _problem_body(400, "Capture amount too high or payment not authorized")
                payment.captured += value
            else:
                if value > payment.captured - payment.refunded:
                    return 400, _problem_body(400, "Refund amount too high")
                payment.refunded += value
            payment.event(operation.upper() + "D" if operation == "capture" else "REFUNDED", value)
            return 200, self._modification(payment)

        return await self._idempotent(request, f"{operation}:{reference}", apply)

    def _cancel(self, payment: _Payment) -> tuple[int, Any]:
        if payment.state == "CREATED":
            payment.state = "TERMINATED"  # the payer never approved: nothing to release
        elif payment.state == "AUTHORIZED":
            rest = payment.authorized - payment.captured - payment.cancelled
            if rest == 0 and payment.captured:
                return 400, _problem_body(400, "The payment is fully captured and cannot be cancelled")
            payment.cancelled += rest
            payment.state = "TERMINATED"
            payment.event("CANCELLED", rest)
        elif payment.state != "TERMINATED":
            return 400, _problem_body(400, f"A {payment.state} payment cannot be cancelled")
        return 200, self._modification(payment)

    def _modification(self, payment: _Payment) -> dict[str, Any]:
        view = self._view(payment)
        return {key: view[key] for key in ("aggregate", "amount", "state", "pspReference", "reference")}


def _problem_body(status: int, detail: str, title: str = "Bad Request") -> dict[str, Any]:
    return {
        "type": "https://developer.vippsmobilepay.com/docs/APIs/epayment-api/api-guide/errors",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": f"urn:uuid:{secrets.token_hex(16)}",
        "traceId": secrets.token_hex(8),
    }


def _problem(status: int, title: str, detail: str = "") -> Response:
    return JSONResponse(
        _problem_body(status, detail or title, title),
        status_code=status,
        media_type="application/problem+json",
    )
