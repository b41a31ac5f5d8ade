"""A local Stripe API (PaymentIntents with manual capture, Refunds) that keeps the documented contract, for
the ``stripe`` plugin's tests. Stripe's own SDK talks to it as to api.stripe.com, and ``stripe_js`` plays
Stripe.js in the payer's browser against it.

It enforces: the secret key as a bearer token (the publishable key only together with the PaymentIntent's
``client_secret``, for retrieving and confirming it, as Stripe.js does), form-encoded parameters, integer
amounts in minor units, the PaymentIntent state machine (``requires_payment_method`` →
``requires_action`` → ``requires_capture`` → ``succeeded`` / ``canceled``; a decline, also one after
authentication, goes back to ``requires_payment_method`` with ``last_payment_error``), a ``return_url``
to confirm unless redirects are off (``automatic_payment_methods[allow_redirects]=never``), the
``client_secret`` format ``pi_…_secret_…``, ``next_action`` (``redirect_to_url`` when confirmed with a
``return_url``, else ``use_stripe_sdk``), capture no more than capturable, refund no more than captured,
the hold's ``capture_before``, and idempotent requests as Stripe documents them (the same key and
parameters: the saved answer again with ``Idempotent-Replayed: true``; other parameters:
``idempotency_error``; declines are saved, validation errors are not). It makes signed webhooks.

Test payment methods (Stripe's "Testing" page): ``pm_card_visa`` (authorized at once, no authentication),
``pm_card_chargeDeclined`` (declined), ``pm_card_authenticationRequired`` (4000 0027 6000 3184) and
``pm_card_threeDSecure2Required`` (4000 0000 0000 3220): 3-D Secure first, then authorized;
``pm_card_authenticationRequiredChargeDeclinedInsufficientFunds`` (4000 0082 6000 3178): 3-D Secure, then
declined with ``insufficient_funds``. Controls: the payer completes (or fails) 3-D Secure, a hold lapses,
Stripe goes down, an answer is lost after the change was made.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

VISA, DECLINED, THREE_DS = "pm_card_visa", "pm_card_chargeDeclined", "pm_card_authenticationRequired"
THREE_DS2 = "pm_card_threeDSecure2Required"
THREE_DS_THEN_DECLINED = "pm_card_authenticationRequiredChargeDeclinedInsufficientFunds"
AUTHENTICATING = (THREE_DS, THREE_DS2, THREE_DS_THEN_DECLINED)
HOLD_SECONDS = 7 * 24 * 3600
CONFIRMABLE = ("requires_payment_method", "requires_confirmation")
NEEDS_RETURN_URL = (
    "This PaymentIntent is configured to accept payment methods enabled in your Dashboard, because some of "
    "these payment methods might redirect your customer off of your page, you must provide a `return_url`."
)


@dataclass
class _Intent:
    id: str
    amount: int
    currency: str
    payment_method: str
    return_url: str | None
    metadata: dict[str, str]
    allow_redirects: bool = True
    status: str = "requires_payment_method"
    created: int = field(default_factory=lambda: int(time.time()))
    client_secret: str = ""
    charge: dict[str, Any] | None = None
    cancellation_reason: str | None = None
    last_payment_error: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.client_secret = self.client_secret or f"{self.id}_secret_{secrets.token_hex(12)}"


@dataclass
class StripeFake:
    secret_key: str = "sk_test_fake_0123456789"
    publishable_key: str = "pk_test_fake_0123456789"
    webhook_secret: str = "whsec_fake_0123456789"
    base_url: str = ""
    down: bool = False
    drop_next_answer: bool = False
    intents: dict[str, _Intent] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._saved: dict[str, tuple[str, int, Any]] = {}

    def plugin_settings(self) -> dict[str, str]:
        """The ``stripe`` plugin's settings for this fake (variable names without their prefix)."""
        return {
            "API_BASE": self.base_url,
            "SECRET_KEY": self.secret_key,
            "PUBLISHABLE_KEY": self.publishable_key,
            "WEBHOOK_SECRET": self.webhook_secret,
            "MAX_NETWORK_RETRIES": "0",  # a test that loses an answer sees it lost, not retried by the SDK
        }

    # --- Controls ---------------------------------------------------------------------------------

    def complete_3ds(self, intent_id: str, *, passed: bool = True) -> None:
        """The payer answers her bank's 3-D Secure challenge (``passed=False``: she fails or cancels it)."""
        intent = self.intents[intent_id]
        assert intent.status == "requires_action", intent.status
        if not passed:
            intent.status = "requires_payment_method"
            intent.last_payment_error = {
                "type": "invalid_request_error",
                "code": "payment_intent_authentication_failure",
                "message": "The provided PaymentMethod has failed authentication.",
            }
        elif intent.payment_method == THREE_DS_THEN_DECLINED:  # authenticated, then the issuer declines
            intent.status = "requires_payment_method"
            intent.charge = self._charge(intent, status="failed")
            intent.last_payment_error = {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds.",
                "charge": intent.charge["id"],
            }
        else:
            self._authorize(intent)

    def complete_3ds_at(self, url: str) -> None:
        self.complete_3ds(url.rsplit("/", 1)[-1])

    def lapse(self, intent_id: str) -> None:
        """The hold ran out: Stripe cancels the PaymentIntent by itself."""
        intent = self.intents[intent_id]
        assert intent.charge is not None
        intent.charge["payment_method_details"]["card"]["capture_before"] = int(time.time()) - 60
        intent.status, intent.cancellation_reason = "canceled", "automatic"

    def webhook(self, intent_id: str, event_type: str, at: int | None = None) -> tuple[dict[str, str], bytes]:
        intent = self.intents[intent_id]
        if event_type.startswith("charge."):
            data = {**(intent.charge or {"id": "ch_none", "object": "charge"}), "payment_intent": intent_id}
        else:
            data = self._view(intent)
        event = {
            "id": f"evt_{secrets.token_hex(12)}",
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "data": {"object": data},
        }
        body = json.dumps(event).encode()
        timestamp = at if at is not None else int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": self.sign(body, timestamp),
        }
        return headers, body

    def sign(self, body: bytes, timestamp: int, secret: str | None = None) -> str:
        key = (secret or self.webhook_secret).encode()
        signature = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={timestamp},v1={signature}"

    # --- The app ----------------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/payment_intents", self._create, methods=["POST"]),
                Route("/v1/payment_intents", self._list, methods=["GET"]),
                Route("/v1/payment_intents/{id}", self._retrieve, methods=["GET"]),
                Route("/v1/payment_intents/{id}/confirm", self._confirm_route, methods=["POST"]),
                Route("/v1/payment_intents/{id}/capture", self._capture, methods=["POST"]),
                Route("/v1/payment_intents/{id}/cancel", self._cancel, methods=["POST"]),
                Route("/v1/refunds", self._refund, methods=["POST"]),
                Route("/3ds/{id}", self._three_ds_page, methods=["GET"]),
                Route("/3ds/{id}", self._three_ds_answer, methods=["POST"]),
            ]
        )

    def _check(self, request: Request, client_secret: str | None = None) -> Response | None:
        """The secret key; or, where Stripe.js may call, the publishable key with the intent's secret."""
        self.requests.append(
            {"method": request.method, "path": request.url.path, "headers": dict(request.headers)}
        )
        if self.down:
            return _error(503, "api_error", "Stripe is down (test)")
        bearer = request.headers.get("authorization")
        if bearer == f"Bearer {self.secret_key}":
            return None
        if bearer == f"Bearer {self.publishable_key}" and "id" in request.path_params:
            intent = self.intents.get(request.path_params["id"])
            if client_secret is None:
                return _error(
                    403, "invalid_request_error", "This API call cannot be made with a publishable API key."
                )
            if intent is None or not hmac.compare_digest(client_secret, intent.client_secret):
                return _error(404, "invalid_request_error", "No such payment_intent", code="resource_missing")
            return None
        return _error(401, "invalid_request_error", "Invalid API Key provided", code="api_key_invalid")

    async def _idempotent(self, request: Request, apply: Any) -> Response:
        form = dict((await request.form()).multi_items())
        if refused := self._check(request, form.get("client_secret")):
            return refused
        key = request.headers.get("idempotency-key")
        fingerprint = hashlib.sha256(
            json.dumps([request.url.path, sorted(form.items())]).encode()
        ).hexdigest()
        if key and key in self._saved:
            saved = self._saved[key]
            if saved[0] != fingerprint:
                return _error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters they were first "
                    "used with.",
                )
            return JSONResponse(saved[2], status_code=saved[1], headers={"Idempotent-Replayed": "true"})
        status, body = apply(form)
        if key and (status < 300 or status == 402):  # executed: saved; a validation error is not
            self._saved[key] = (fingerprint, status, body)
        if status < 300 and self.drop_next_answer:
            self.drop_next_answer = False
            return _error(500, "api_error", "An unknown error occurred (the answer was lost, test)")
        return JSONResponse(body, status_code=status)

    async def _create(self, request: Request) -> Response:
        return await self._idempotent(request, self._apply_create)

    def _apply_create(self, form: dict[str, str]) -> tuple[int, Any]:
        amount = form.get("amount", "")
        if not amount.isdigit() or int(amount) <= 0:
            return _body(400, "invalid_request_error", "amount must be a positive integer", param="amount")
        if form.get("capture_method") != "manual":
            return _body(400, "invalid_request_error", "this account only takes manual capture (test)")
        if "client_secret" in form:
            return _body(400, "invalid_request_error", "Received unknown parameter: client_secret")
        intent = _Intent(
            id=f"pi_{secrets.token_hex(12)}",
            amount=int(amount),
            currency=form.get("currency", ""),
            payment_method=form.get("payment_method", ""),
            return_url=form.get("return_url"),
            metadata={k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
            allow_redirects=form.get("automatic_payment_methods[allow_redirects]") != "never",
        )
        if intent.return_url and form.get("confirm") != "true":
            return _body(
                400,
                "invalid_request_error",
                "return_url can only be used with confirm=true",
                param="return_url",
            )
        if intent.payment_method:
            intent.status = "requires_confirmation"
        self.intents[intent.id] = intent
        if form.get("confirm") != "true":
            return 200, self._view(intent, form)
        return self._confirm(intent, form)

    async def _confirm_route(self, request: Request) -> Response:
        """``POST …/confirm``: by the server (secret key), or by Stripe.js with the client secret."""
        intent = self.intents.get(request.path_params["id"])

        def apply(form: dict[str, str]) -> tuple[int, Any]:
            if intent is None:
                return _body(404, "invalid_request_error", "No such payment_intent", code="resource_missing")
            if intent.status not in CONFIRMABLE:
                return _body(
                    400,
                    "invalid_request_error",
                    f"status is {intent.status}",
                    code="payment_intent_unexpected_state",
                )
            return self._confirm(intent, form)

        return await self._idempotent(request, apply)

    def _confirm(self, intent: _Intent, form: dict[str, str]) -> tuple[int, Any]:
        intent.payment_method = form.get("payment_method") or intent.payment_method
        intent.return_url = form.get("return_url") or intent.return_url
        if not intent.payment_method:
            return _body(
                400,
                "invalid_request_error",
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        if intent.allow_redirects and not intent.return_url:
            return _body(400, "invalid_request_error", NEEDS_RETURN_URL, param="return_url")
        intent.last_payment_error = None
        if intent.payment_method == DECLINED:
            intent.status = "requires_payment_method"
            intent.last_payment_error = {"code": "card_declined", "decline_code": "generic_decline"}
            error = _body(402, "card_error", "Your card was declined.", code="card_declined")[1]
            error["error"] |= {"decline_code": "generic_decline", "payment_intent": self._view(intent)}
            return 402, error
        if intent.payment_method in AUTHENTICATING:
            intent.status = "requires_action"
            return 200, self._view(intent, form)
        if intent.payment_method != VISA:
            return _body(
                400,
                "invalid_request_error",
                "No such PaymentMethod",
                code="resource_missing",
                param="payment_method",
            )
        self._authorize(intent)
        return 200, self._view(intent, form)

    def _charge(self, intent: _Intent, *, status: str = "succeeded") -> dict[str, Any]:
        return {
            "id": f"ch_{secrets.token_hex(12)}",
            "object": "charge",
            "amount": intent.amount,
            "amount_captured": 0,
            "amount_refunded": 0,
            "captured": False,
            "refunded": False,
            "status": status,
            "payment_intent": intent.id,
            "payment_method_details": {
                "type": "card",
                "card": {"brand": "visa", "last4": "4242", "capture_before": int(time.time()) + HOLD_SECONDS},
            },
        }

    def _authorize(self, intent: _Intent) -> None:
        intent.status = "requires_capture"
        intent.charge = self._charge(intent)

    async def _list(self, request: Request) -> Response:
        """List PaymentIntents, newest first (read-only; ``limit`` 1-100, default 10), as Stripe lists."""
        if refused := self._check(request):
            return refused
        try:
            limit = int(request.query_params.get("limit", "10"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            status, body = _body(400, "invalid_request_error", "Invalid integer: limit", param="limit")
            return JSONResponse(body, status_code=status)
        newest = sorted(self.intents.values(), key=lambda intent: intent.created, reverse=True)
        return JSONResponse(
            {
                "object": "list",
                "data": [self._view(intent) for intent in newest[:limit]],
                "has_more": len(newest) > limit,
                "url": "/v1/payment_intents",
            }
        )

    async def _retrieve(self, request: Request) -> Response:
        query = dict(request.query_params.multi_items())
        if refused := self._check(request, query.get("client_secret")):
            return refused
        intent = self.intents.get(request.path_params["id"])
        if intent is None:
            return _error(404, "invalid_request_error", "No such payment_intent", code="resource_missing")
        return JSONResponse(self._view(intent, query))

    async def _capture(self, request: Request) -> Response:
        intent = self.intents.get(request.path_params["id"])

        def apply(form: dict[str, str]) -> tuple[int, Any]:
            if intent is None:
                return _body(404, "invalid_request_error", "No such payment_intent", code="resource_missing")
            if intent.status != "requires_capture" or intent.charge is None:
                return _body(
                    400,
                    "invalid_request_error",
                    f"status is {intent.status}",
                    code="payment_intent_unexpected_state",
                )
            if time.time() > intent.charge["payment_method_details"]["card"]["capture_before"]:
                return _body(
                    400, "invalid_request_error", "the hold lapsed", code="charge_expired_for_capture"
                )
            value = int(form.get("amount_to_capture", intent.amount))
            if value <= 0 or value > intent.amount:
                return _body(
                    400, "invalid_request_error", "amount_to_capture too large", code="amount_too_large"
                )
            intent.charge |= {"amount_captured": value, "captured": True}  # the rest is released
            intent.status = "succeeded"
            return 200, self._view(intent, form)

        return await self._idempotent(request, apply)

    async def _cancel(self, request: Request) -> Response:
        intent = self.intents.get(request.path_params["id"])

        def apply(form: dict[str, str]) -> tuple[int, Any]:
            if intent is None:
                return _body(404, "invalid_request_error", "No such payment_intent", code="resource_missing")
            if intent.status in ("succeeded", "canceled"):
                return _body(
                    400,
                    "invalid_request_error",
                    f"status is {intent.status}",
                    code="payment_intent_unexpected_state",
                )
            intent.status, intent.cancellation_reason = "canceled", "requested_by_customer"
            return 200, self._view(intent, form)

        return await self._idempotent(request, apply)

    async def _refund(self, request: Request) -> Response:
        def apply(form: dict[str, str]) -> tuple[int, Any]:
            intent = self.intents.get(form.get("payment_intent", ""))
            if intent is None:
                return _body(404, "invalid_request_error", "No such payment_intent", code="resource_missing")
            charge = intent.charge
            if charge is None or not charge["captured"]:
                return _body(
                    400, "invalid_request_error", "the charge is not captured", code="charge_not_captured"
                )
            value = int(form.get("amount", charge["amount_captured"] - charge["amount_refunded"]))
            if value <= 0 or value > charge["amount_captured"] - charge["amount_refunded"]:
                return _body(400, "invalid_request_error", "refund amount too large", code="amount_too_large")
            charge["amount_refunded"] += value
            charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
            refund = {
                "id": f"re_{secrets.token_hex(12)}",
                "object": "refund",
                "amount": value,
                "status": "succeeded",
            }
            return 200, refund | {"charge": charge["id"], "payment_intent": intent.id}

        return await self._idempotent(request, apply)

    async def _three_ds_page(self, request: Request) -> Response:
        return JSONResponse({"page": "3-D Secure (test)"})

    async def _three_ds_answer(self, request: Request) -> Response:
        """The bank's challenge answered in the payer's browser (Stripe.js shows it): ``client_secret``,
        and ``result`` ``passed`` or ``failed``."""
        form = dict((await request.form()).multi_items())
        intent = self.intents.get(request.path_params["id"])
        if intent is None or not hmac.compare_digest(form.get("client_secret", ""), intent.client_secret):
            return _error(404, "invalid_request_error", "No such payment_intent", code="resource_missing")
        if intent.status != "requires_action":
            return _error(400, "invalid_request_error", f"status is {intent.status}")
        self.complete_3ds(intent.id, passed=form.get("result", "passed") == "passed")
        return JSONResponse(self._view(intent))

    def _view(self, intent: _Intent, form: dict[str, str] | None = None) -> dict[str, Any]:
        expand = any(v == "latest_charge" for k, v in (form or {}).items() if k.startswith("expand"))
        charge: Any = intent.charge if expand or intent.charge is None else intent.charge["id"]
        view: dict[str, Any] = {
            "id": intent.id,
            "object": "payment_intent",
            "amount": intent.amount,
            "amount_capturable": intent.amount if intent.status == "requires_capture" else 0,
            "amount_received": (intent.charge or {}).get("amount_captured", 0),
            "capture_method": "manual",
            "currency": intent.currency,
            "created": intent.created,
            "status": intent.status,
            "cancellation_reason": intent.cancellation_reason,
            "latest_charge": charge,
            "metadata": intent.metadata,
            "last_payment_error": intent.last_payment_error,
            "payment_method": intent.payment_method or None,
            "client_secret": intent.client_secret,
            "next_action": None,
        }
        if intent.status == "requires_action" and intent.return_url:
            view["next_action"] = {
                "type": "redirect_to_url",
                "redirect_to_url": {
                    "url": f"{self.base_url}/3ds/{intent.id}",
                    "return_url": intent.return_url,
                },
            }
        elif intent.status == "requires_action":  # only Stripe.js may read what is in it
            view["next_action"] = {
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {"type": "three_d_secure_redirect"},
            }
        return view


def _body(
    status: int, kind: str, message: str, *, code: str | None = None, param: str | None = None
) -> tuple[int, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return status, {"error": error}


def _error(status: int, kind: str, message: str, *, code: str | None = None) -> Response:
    return JSONResponse(_body(status, kind, message, code=code)[1], status_code=status)
