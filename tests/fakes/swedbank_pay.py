"""A local Swedbank Pay payment order API (v3.1) that keeps the documented contract, for the
``swedbank-pay`` plugin's tests.

It enforces what Swedbank Pay enforces: the Bearer token, ``Content-Type: application/json;version=3.1``
on every request with a body, amounts as integers in minor units, a ``payeeReference`` unique across all
operations of the merchant (a second use is a 409 problem), and the state machine: capture and cancel
only while the order is Paid with something left, no more captured than authorized, no more reversed
than captured. Operation URLs carry a secret per order, so a client that builds URLs instead of following
the ``operations`` it was given gets a 404. Callbacks are unsigned, as Swedbank Pay's are.

Controls for tests: the payer pays or fails on the payment page, an order ages, Swedbank Pay goes down,
an answer is lost after the operation was made (the client sees a 502 and cannot know it was made).
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

ORDERS = "/psp/paymentorders"
KINDS = {"captures": "Capture", "cancellations": "Cancellation", "reversals": "Reversal"}


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class _Order:
    guid: str
    amount: int
    currency: str
    order_reference: str
    payee_reference: str
    complete_url: str
    cancel_url: str
    callback_url: str
    secret: str = field(default_factory=lambda: secrets.token_hex(8))
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = "Initialized"
    paid: dict[str, Any] | None = None
    cancelled: dict[str, Any] | None = None
    transactions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{ORDERS}/{self.guid}"

    def total(self, kind: str) -> int:
        return sum(t["amount"] for t in self.transactions if t["type"] == kind)

    @property
    def remaining(self) -> int:
        cancelled = self.cancelled["amount"] if self.cancelled else 0
        return (self.paid["amount"] if self.paid else 0) - self.total("Capture") - cancelled


@dataclass
class SwedbankPayFake:
    access_token: str = "fake-swedbank-pay-token"
    payee_id: str = "5cabf558-5283-482f-b252-4d58e06f6f3b"
    base_url: str = ""
    down: bool = False
    drop_next_answer: bool = False
    """The next operation is made, and its answer lost."""
    orders: dict[str, _Order] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._payee_references: set[str] = set()

    def plugin_settings(self) -> dict[str, str]:
        """The ``swedbank-pay`` plugin's settings for this fake (variable names without their prefix)."""
        return {"BASE_URL": self.base_url, "PAYEE_ID": self.payee_id, "ACCESS_TOKEN": self.access_token}

    # --- Controls ---------------------------------------------------------------------------------

    def order(self, order_id: str) -> _Order:
        return self.orders[order_id.rsplit("/", 1)[-1]]

    def pay(self, order_id: str) -> None:
        """The payer pays on the payment page: the card is authorized for the whole amount."""
        order = self.order(order_id)
        assert order.status == "Initialized", f"cannot pay a {order.status} order"
        order.status = "Paid"
        order.paid = {
            "id": f"{order.id}/paid",
            "instrument": "CreditCard",
            "number": 99000000 + len(self.orders),
            "payeeReference": order.payee_reference,
            "amount": order.amount,
        }

    def pay_at(self, redirect_url: str) -> None:
        """The payer opens the payment page the order's redirect operation pointed to, and pays."""
        guid = redirect_url.rstrip("/").rsplit("/", 1)[-1]
        self.pay(self.orders[guid].id)

    def fail(self, order_id: str) -> None:
        """The card is declined and the payer gives up: the order fails."""
        order = self.order(order_id)
        assert order.status == "Initialized"
        order.status = "Failed"

    def age(self, order_id: str, days: int) -> None:
        """Pretend the order was created (and paid) ``days`` ago."""
        self.order(order_id).created -= timedelta(days=days)

    def callback(self, order_id: str) -> tuple[dict[str, str], bytes, str]:
        """What Swedbank Pay POSTs to the order's callbackUrl: unsigned, it only names the order."""
        order = self.order(order_id)
        body = {
            "orderReference": order.order_reference,
            "paymentOrder": {"id": order.id, "instrument": "CreditCard", "number": 1},
            "payment": {"id": f"/psp/creditcard/payments/{order.guid}", "number": 1},
            "transaction": {"id": f"/psp/creditcard/payments/{order.guid}/transactions/1", "number": 2},
        }
        return {"content-type": "application/json"}, json.dumps(body).encode(), order.callback_url

    # --- The app ----------------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(ORDERS, self._create, methods=["POST"]),
                Route(f"{ORDERS}/{{guid}}", self._get, methods=["GET"]),
                Route(f"{ORDERS}/{{guid}}/{{secret}}/abort", self._abort, methods=["PATCH"]),
                Route(f"{ORDERS}/{{guid}}/{{secret}}/{{kind}}", self._operate, methods=["POST"]),
                Route("/payment/menu/{guid}", self._payment_page, methods=["GET"]),
            ]
        )

    async def _check(self, request: Request) -> Response | dict[str, Any]:
        self.calls.append(
            {"method": request.method, "path": request.url.path, "headers": dict(request.headers)}
        )
        if self.down:
            return _problem(503, "ServiceUnavailable", "Service Unavailable")
        if request.headers.get("authorization") != f"Bearer {self.access_token}":
            return _problem(401, "Unauthorized", "The access token is missing or wrong")
        if request.method == "GET":
            return {}
        content_type = request.headers.get("content-type", "").replace(" ", "")
        if content_type != "application/json;version=3.1":
            return _problem(415, "UnsupportedMediaType", "Content-Type must be application/json;version=3.1")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _problem(400, "InputError", "The body is not JSON")
        return body if isinstance(body, dict) else {}

    def _use_reference(self, reference: Any) -> Response | None:
        if not isinstance(reference, str) or not reference or len(reference) > 30 or not reference.isalnum():
            return _problem(400, "InputError", "payeeReference must be 1-30 alphanumerics", "payeeReference")
        if reference in self._payee_references:
            return _problem(409, "Conflict", "payeeReference is already used", "payeeReference")
        self._payee_references.add(reference)
        return None

    def _answer(self, body: dict[str, Any], status: int = 200) -> Response:
        if self.drop_next_answer:  # made, but the gateway gave up waiting: the client never hears
            self.drop_next_answer = False
            return _problem(502, "BadGateway", "Bad Gateway")
        return JSONResponse(body, status_code=status)

    async def _create(self, request: Request) -> Response:
        body = await self._check(request)
        if isinstance(body, Response):
            return body
        po = body.get("paymentorder") or {}
        urls, payee = po.get("urls") or {}, po.get("payeeInfo") or {}
        if po.get("operation") != "Purchase":
            return _problem(400, "InputError", "operation must be Purchase", "paymentorder.operation")
        if not isinstance(po.get("amount"), int) or po["amount"] <= 0:
            return _problem(400, "InputError", "amount must be a positive integer (minor units)", "amount")
        if not isinstance(po.get("vatAmount"), int) or not 0 <= po["vatAmount"] <= po["amount"]:
            return _problem(400, "InputError", "vatAmount must be an integer within amount", "vatAmount")
        if po.get("currency") not in ("NOK", "SEK", "DKK", "EUR"):
            return _problem(400, "InputError", "currency is not supported", "currency")
        for name in ("completeUrl", "callbackUrl"):
            if not str(urls.get(name, "")).startswith(("https://", "http://")):
                return _problem(400, "InputError", f"urls.{name} is required", f"urls.{name}")
        if not urls.get("hostUrls"):
            return _problem(400, "InputError", "urls.hostUrls is required", "urls.hostUrls")
        if payee.get("payeeId") != self.payee_id:
            return _problem(403, "Forbidden", "The payeeId does not match the access token", "payeeId")
        if refused := self._use_reference(payee.get("payeeReference")):
            return refused
        order = _Order(
            guid=str(uuid.uuid4()),
            amount=po["amount"],
            currency=po["currency"],
            order_reference=str(payee.get("orderReference", "")),
            payee_reference=payee["payeeReference"],
            complete_url=urls["completeUrl"],
            cancel_url=urls.get("cancelUrl") or urls["completeUrl"],
            callback_url=urls["callbackUrl"],
        )
        self.orders[order.guid] = order
        return self._answer(self._view(order), 201)

    async def _get(self, request: Request) -> Response:
        checked = await self._check(request)
        if isinstance(checked, Response):
            return checked
        order = self.orders.get(request.path_params["guid"])
        if order is None:
            return _problem(404, "NotFound", "No payment order with that id")
        expand = request.query_params.get("$expand", "")
        return JSONResponse(self._view(order, expand={part.strip().lower() for part in expand.split(",")}))

    def _view(self, order: _Order, expand: set[str] | None = None) -> dict[str, Any]:
        expand = expand or set()
        po: dict[str, Any] = {
            "id": order.id,
            "created": _stamp(order.created),
            "updated": _stamp(datetime.now(UTC)),
            "operation": "Purchase",
            "status": order.status,
            "currency": order.currency,
            "amount": order.amount,
            "vatAmount": 0,
            "orderReference": order.order_reference,
            "paid": {"id": f"{order.id}/paid"},
            "cancelled": {"id": f"{order.id}/cancelled"},
            "financialTransactions": {"id": f"{order.id}/financialtransactions"},
        }
        if "paid" in expand and order.paid:
            po["paid"] = order.paid
        if "cancelled" in expand and order.cancelled:
            po["cancelled"] = order.cancelled
        if "financialtransactions" in expand:
            po["financialTransactions"]["financialTransactionsList"] = order.transactions
        return {"paymentOrder": po, "operations": self._operations(order)}

    def _operations(self, order: _Order) -> list[dict[str, str]]:
        def operation(rel: str, method: str, path: str) -> dict[str, str]:
            return {
                "method": method,
                "href": f"{self.base_url}{path}",
                "rel": rel,
                "contentType": "application/json",
            }

        secret_path = f"{ORDERS}/{order.guid}/{order.secret}"
        if order.status == "Initialized":
            return [
                {
                    **operation("redirect-checkout", "GET", f"/payment/menu/{order.guid}"),
                    "contentType": "text/html",
                },
                operation("abort", "PATCH", f"{secret_path}/abort"),
            ]
        offered = []
        if order.status == "Paid" and order.remaining > 0:
            offered += [
                operation("capture", "POST", f"{secret_path}/captures"),
                operation("cancel", "POST", f"{secret_path}/cancellations"),
            ]
        if order.total("Capture") > order.total("Reversal"):
            offered.append(operation("reversal", "POST", f"{secret_path}/reversals"))
        return offered

    async def _payment_page(self, request: Request) -> Response:
        order = self.orders.get(request.path_params["guid"])
        if order is None:
            return _problem(404, "NotFound", "No payment order with that id")
        if order.status == "Initialized":
            self.pay(order.id)  # she enters her card and passes 3-D Secure
        return RedirectResponse(order.complete_url, status_code=303)

    def _order_for(self, request: Request) -> _Order | Response:
        order = self.orders.get(request.path_params["guid"])
        if order is None or not secrets.compare_digest(request.path_params["secret"], order.secret):
            return _problem(404, "NotFound", "No such operation (follow the operations of the order)")
        return order

    async def _abort(self, request: Request) -> Response:
        body = await self._check(request)
        if isinstance(body, Response):
            return body
        order = self._order_for(request)
        if isinstance(order, Response):
            return order
        if (body.get("paymentorder") or {}).get("operation") != "Abort":
            return _problem(400, "InputError", "operation must be Abort", "paymentorder.operation")
        if order.status != "Initialized":
            return _problem(409, "Conflict", f"A {order.status} payment order cannot be aborted")
        order.status = "Aborted"
        return self._answer(self._view(order))

    async def _operate(self, request: Request) -> Response:
        body = await self._check(request)
        if isinstance(body, Response):
            return body
        order = self._order_for(request)
        if isinstance(order, Response):
            return order
        kind = KINDS.get(request.path_params["kind"])
        if kind is None:
            return _problem(404, "NotFound", "No such operation")
        transaction = body.get("transaction") or {}
        amount = transaction.get("amount")
        if not isinstance(amount, int) or amount <= 0:
            return _problem(400, "InputError", "transaction.amount must be a positive integer", "amount")
        if not isinstance(transaction.get("vatAmount"), int) or not transaction.get("description"):
            return _problem(400, "InputError", "transaction.vatAmount and description are required")
        if kind in ("Capture", "Cancellation") and (order.status != "Paid" or amount > order.remaining):
            return _problem(409, "Conflict", f"{kind} amount too high or the order is not Paid", "amount")
        if kind == "Reversal" and amount > order.total("Capture") - order.total("Reversal"):
            return _problem(409, "Conflict", "Reversal amount exceeds what was captured", "amount")
        if refused := self._use_reference(transaction.get("payeeReference")):
            return refused
        record = {
            "id": f"{order.id}/financialtransactions/{len(order.transactions) + 1}",
            "created": _stamp(datetime.now(UTC)),
            "type": kind,
            "amount": amount,
            "vatAmount": transaction["vatAmount"],
            "description": transaction["description"],
            "payeeReference": transaction["payeeReference"],
        }
        if kind == "Cancellation":
            order.cancelled = {"id": f"{order.id}/cancelled", **record}
            order.status = "Cancelled"
        else:
            order.transactions.append(record)
            if (
                kind == "Reversal"
                and order.total("Reversal") >= order.total("Capture")
                and order.remaining <= 0
            ):
                order.status = "Reversed"
        return self._answer(self._view(order))


def _problem(status: int, title: str, detail: str, name: str | None = None) -> Response:
    body: dict[str, Any] = {
        "type": f"https://api.payex.com/psp/errordetail/{title.lower()}",
        "title": title,
        "status": status,
        "instance": f"https://api.payex.com/psp/probleminstance/{uuid.uuid4()}",
        "detail": detail,
        "problems": [{"name": name or "request", "description": detail}],
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json")
