"""A local fake of Swedish BankID's RP API v6.0 (``/rp/v6.0/auth``, ``/collect``, ``/cancel``).

Serve it with ``tests/fakes/server.py``: ``serve(fake.app, tls=Tls(server_cert, server_key, client_ca))`` —
over mutual TLS, so a client without a certificate from ``client_ca`` never gets an answer.

It enforces the documented contract, so a wrong client fails:

* only ``POST`` (405 ``methodNotAllowed``), ``Content-Type: application/json`` (415
  ``unsupportedMediaType``), a JSON object body, unknown paths 404 ``notFound``;
* ``auth``: ``endUserIp`` required and an IP address; only v6 fields (the v5 top-level ``personalNumber``
  is refused); ``requirement.personalNumber`` 12 digits with a valid Luhn check digit;
  ``userVisibleData`` base64, at most 1500 characters; every refusal is 400 ``invalidParameters``;
* one order in progress per personal number: a second ``auth`` for it is 400 ``alreadyInProgress`` and
  the order in progress is cancelled (as BankID does);
* ``collect``/``cancel`` need ``orderRef``; an unknown one — never issued, already collected to the end,
  or cancelled — is 400 ``invalidParameters`` (BankID's answer; ``notFound`` is for a wrong URL path);
* states and hint codes: ``pending`` (``outstandingTransaction`` until the QR code is scanned, then
  ``userSign``), ``complete`` with ``completionData``, ``failed`` with ``userCancel``,
  ``expiredTransaction``, ``startFailed``, ``cancelled``;
* the QR code: :meth:`BankIdSeFake.scan` accepts only ``bankid.<qrStartToken>.<time>.<HMAC-SHA256 hex>``
  computed the documented way, with ``time`` the seconds since the order (±2 s); anything else fails the
  order with ``startFailed``, like the app does.

Test controls are Python methods (the fake runs in the test's process): :meth:`scan` (the user scans a QR
code), :meth:`approve` (complete after N more collects), :meth:`user_cancels`, :meth:`expire`, :meth:`fail`,
:meth:`set_hint`, :meth:`fail_next` (the next call answers an error, e.g. 503 ``maintenance``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from legetime.core.identity.swedish_personal_number import is_valid_swedish_personal_number

PREFIX = "/rp/v6.0"
AUTH_FIELDS = frozenset(
    {
        "endUserIp",
        "requirement",
        "userVisibleData",
        "userNonVisibleData",
        "userVisibleDataFormat",
        "returnUrl",
        "returnRisk",
        "app",
        "web",
    }
)
REQUIREMENT_FIELDS = frozenset({"pinCode", "mrtd", "cardReader", "certificatePolicies", "personalNumber"})
QR_CLOCK_TOLERANCE = 2


@dataclass(frozen=True)
class FakeUser:
    personal_number: str
    given_name: str
    surname: str

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.surname}"


DEFAULT_USER = FakeUser("199001012385", "Astrid", "Lindqvist")  # Luhn-valid, born 1 January 1990


@dataclass
class Order:
    order_ref: str
    auto_start_token: str
    qr_start_token: str
    qr_start_secret: str
    created: float
    end_user_ip: str
    personal_number: str | None
    status: str = "pending"
    hint_code: str = "outstandingTransaction"
    user: FakeUser | None = None
    complete_after: int | None = None
    """Collects still to answer ``pending`` (userSign) before ``complete``; None: not approved yet."""
    collects: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)


class BankIdSeFake:
    def __init__(self, *, user: FakeUser = DEFAULT_USER, approve_after: int = 1) -> None:
        self.user = user
        self.approve_after = approve_after
        """Collects answered ``userSign`` after a valid scan, before ``complete``."""
        self.orders: dict[str, Order] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._next_error: tuple[int, str] | None = None
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route(f"{PREFIX}/auth", self._auth, methods=["GET", "POST", "PUT", "DELETE"]),
                Route(f"{PREFIX}/collect", self._collect, methods=["GET", "POST", "PUT", "DELETE"]),
                Route(f"{PREFIX}/cancel", self._cancel, methods=["GET", "POST", "PUT", "DELETE"]),
                Route("/{path:path}", self._not_found, methods=["GET", "POST", "PUT", "DELETE"]),
            ]
        )

    # --- test controls -------------------------------------------------------------------------------

    def scan(self, qr: str) -> bool:
        """The user scans ``qr`` with the app. A QR code not derived the documented way fails the order
        (``startFailed``); a good one moves it to ``userSign`` and, after ``approve_after`` collects,
        ``complete`` for the fake's user."""
        with self._lock:
            parts = qr.split(".")
            order = next(
                (o for o in self.orders.values() if len(parts) == 4 and o.qr_start_token == parts[1]), None
            )
            if order is None or order.status != "pending":
                return False
            ok = _valid_qr(order, parts, time.time())
            if not ok:
                order.status, order.hint_code = "failed", "startFailed"
                return False
            self._approve(order, self.approve_after)
            return True

    def approve(self, order_ref: str, after_collects: int | None = None) -> None:
        """The user confirms in the app (whatever the QR code): ``complete`` after N more collects."""
        with self._lock:
            self._approve(
                self.orders[order_ref], self.approve_after if after_collects is None else after_collects
            )

    def user_cancels(self, order_ref: str) -> None:
        self.fail(order_ref, "userCancel")

    def expire(self, order_ref: str) -> None:
        self.fail(order_ref, "expiredTransaction")

    def fail(self, order_ref: str, hint_code: str) -> None:
        """End a pending order as ``failed`` with ``hint_code`` (``certificateErr``, ``startFailed`` …)."""
        with self._lock:
            self._fail(self.orders[order_ref], hint_code)

    def set_hint(self, order_ref: str, hint_code: str) -> None:
        """Show another ``pending`` hint code (``started``, ``userMrtd`` …)."""
        with self._lock:
            self.orders[order_ref].hint_code = hint_code

    def fail_next(self, status: int, error_code: str) -> None:
        """The next API call answers ``status`` with ``{"errorCode": error_code}``."""
        with self._lock:
            self._next_error = (status, error_code)

    def qr_secret_seen(self, text: str) -> bool:
        """Whether ``text`` contains any ``qrStartSecret`` this fake handed out."""
        return any(order.qr_start_secret in text for order in self.orders.values())

    # --- the API ---------------------------------------------------------------------------------------

    async def _auth(self, request: Request) -> Response:
        body = await self._body(request, "auth")
        if isinstance(body, Response):
            return body
        unknown = set(body) - AUTH_FIELDS
        if unknown:
            return _error(400, "invalidParameters", f"Unknown parameter: {sorted(unknown)[0]}")
        end_user_ip = body.get("endUserIp")
        if not isinstance(end_user_ip, str) or not _is_ip(end_user_ip):
            return _error(400, "invalidParameters", "Incorrect endUserIp")
        requirement = body.get("requirement", {})
        if not isinstance(requirement, dict) or set(requirement) - REQUIREMENT_FIELDS:
            return _error(400, "invalidParameters", "Invalid requirement")
        personal_number = requirement.get("personalNumber")
        if personal_number is not None and (
            not isinstance(personal_number, str)
            or not is_valid_swedish_personal_number(personal_number)
            or len(personal_number) != 12
        ):
            return _error(400, "invalidParameters", "Incorrect personalNumber")
        if "userVisibleData" in body and not _base64(body["userVisibleData"], 1500):
            return _error(400, "invalidParameters", "Invalid userVisibleData")
        if body.get("userVisibleDataFormat") not in (None, "plaintext", "simpleMarkdownV1"):
            return _error(400, "invalidParameters", "Invalid userVisibleDataFormat")
        with self._lock:
            if personal_number is not None:
                busy = [
                    o
                    for o in self.orders.values()
                    if o.personal_number == personal_number and o.status == "pending"
                ]
                if busy:
                    for order in busy:
                        self._fail(order, "cancelled")
                    return _error(400, "alreadyInProgress", "Order already in progress for pno")
            order = Order(
                order_ref=str(uuid.uuid4()),
                auto_start_token=str(uuid.uuid4()),
                qr_start_token=str(uuid.uuid4()),
                qr_start_secret=str(uuid.uuid4()),
                created=time.time(),
                end_user_ip=end_user_ip,
                personal_number=personal_number,
            )
            order.requests.append(body)
            self.orders[order.order_ref] = order
        return JSONResponse(
            {
                "orderRef": order.order_ref,
                "autoStartToken": order.auto_start_token,
                "qrStartToken": order.qr_start_token,
                "qrStartSecret": order.qr_start_secret,
            }
        )

    async def _collect(self, request: Request) -> Response:
        body = await self._body(request, "collect")
        if isinstance(body, Response):
            return body
        with self._lock:
            order = self._order(body)
            if order is None:
                return _error(400, "invalidParameters", "No such order")
            order.collects += 1
            if order.status == "pending" and order.complete_after is not None:
                if order.complete_after <= 0:
                    order.status = "complete"
                else:
                    order.complete_after -= 1
            answer: dict[str, Any] = {"orderRef": order.order_ref, "status": order.status}
            if order.status == "complete":
                answer["completionData"] = self._completion(order)
            else:
                answer["hintCode"] = order.hint_code
            if order.status != "pending":
                del self.orders[order.order_ref]  # an order is collected to its end once
        return JSONResponse(answer)

    async def _cancel(self, request: Request) -> Response:
        body = await self._body(request, "cancel")
        if isinstance(body, Response):
            return body
        with self._lock:
            order = self._order(body)
            if order is None or order.status != "pending":
                return _error(400, "invalidParameters", "No such order")
            del self.orders[order.order_ref]
        return JSONResponse({})

    async def _not_found(self, request: Request) -> Response:
        return _error(404, "notFound", "Not found")

    # --- helpers ---------------------------------------------------------------------------------------

    async def _body(self, request: Request, operation: str) -> dict[str, Any] | Response:
        if request.method != "POST":
            return _error(405, "methodNotAllowed", "Method not allowed")
        with self._lock:
            injected, self._next_error = self._next_error, None
        if injected is not None:
            return _error(injected[0], injected[1], "Injected by the test")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _error(415, "unsupportedMediaType", "Content-Type must be application/json")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalidParameters", "Invalid JSON")
        if not isinstance(body, dict):
            return _error(400, "invalidParameters", "Body must be a JSON object")
        self.calls.append((operation, body))
        return body

    def _order(self, body: dict[str, Any]) -> Order | None:
        order_ref = body.get("orderRef")
        if not isinstance(order_ref, str) or set(body) != {"orderRef"}:
            return None
        return self.orders.get(order_ref)

    def _approve(self, order: Order, after: int) -> None:
        if order.status != "pending":
            raise ValueError("order is not pending")
        order.hint_code, order.complete_after = "userSign", after
        order.user = self.user

    def _fail(self, order: Order, hint_code: str) -> None:
        if order.status == "pending":
            order.status, order.hint_code = "failed", hint_code

    def _completion(self, order: Order) -> dict[str, Any]:
        user = order.user or self.user
        if order.personal_number is not None:  # the app only lets that person sign
            user = FakeUser(order.personal_number, user.given_name, user.surname)
        signature = f"<Signature><orderRef>{order.order_ref}</orderRef></Signature>"
        return {
            "user": {
                "personalNumber": user.personal_number,
                "name": user.name,
                "givenName": user.given_name,
                "surname": user.surname,
            },
            "device": {"ipAddress": order.end_user_ip, "uhi": "OZvYM9VvyiAmG7NA5jU5zRGcOh0="},
            "bankIdIssueDate": "2024-01-15",
            "stepUp": {"mrtd": False},
            "signature": base64.b64encode(signature.encode()).decode(),
            "ocspResponse": base64.b64encode(b"fake-ocsp-response").decode(),
        }


def _valid_qr(order: Order, parts: list[str], now: float) -> bool:
    prefix, _token, seconds, code = parts
    if prefix != "bankid" or not seconds.isdigit() or str(int(seconds)) != seconds:
        return False
    expected = hmac.new(order.qr_start_secret.encode(), seconds.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, code):
        return False
    return abs((now - order.created) - int(seconds)) <= QR_CLOCK_TOLERANCE


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _base64(value: Any, max_length: int) -> bool:
    if not isinstance(value, str) or not 0 < len(value) <= max_length:
        return False
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _error(status: int, error_code: str, details: str) -> JSONResponse:
    return JSONResponse({"errorCode": error_code, "details": details}, status_code=status)
