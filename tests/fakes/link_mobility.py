"""A local LINK Mobility "Common" SMS REST API that keeps the documented contract, for the
``link-mobility`` plugin's tests.

It enforces what the guide ("SMS REST API - MT and Delivery Reports") documents: HTTP Basic
authentication (401, ErrorResponse 106100), ``Content-Type: application/json``, ``platformId`` and
``platformPartnerId`` (400 with 106200/106201 when missing, 403 with 106101 when not the account's),
``source``/``destination`` by their type of number, ``userData``, the delivery report gates (106300 when
reports are asked for without a gate, 106301 for an unknown gate), and ``ignoreResponse`` (true by default:
204 without the messageId). Answers are ErrorResponses ``{status, description, translatedDescription}``.
What LINK does not publish, the fake chooses and says so: a malformed field is 400 with 106000, and more
than ``max_per_second`` requests get 429 with ``Retry-After``.

Delivery reports are what a gate POSTs (``report``): JSON with the gate destination's HTTP Basic
credentials, no signature (LINK signs nothing).

Controls for tests: LINK is down (503), an answer is lost after the message was taken (502), or comes
late (``stall_seconds``: the client times out, or is cancelled, with the message taken).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
TONS = {
    "MSISDN": E164,
    "SHORTNUMBER": re.compile(r"[0-9]{1,14}"),
    "ALPHANUMERIC": re.compile(r"[A-Za-z0-9 ]{1,11}"),
}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class LinkMobilityFake:
    username: str = "legetime-api"
    password: str = "fake-link-api-password"
    platform_id: str = "COMMON_API"
    platform_partner_id: str = "31337"
    gate_id: str = "gate-legetime-dlr"
    report_username: str = "legetime"
    report_password: str = "fake-gate-destination-password-0123"
    base_url: str = ""
    max_per_second: int = 50
    down: bool = False
    lose_next_answer: bool = False
    """The next message is taken, and its answer lost (a 502 from LINK's front)."""
    stall_seconds: float = 0.0
    """Messages are taken, and answered this late."""
    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._recent: deque[float] = deque()
        self.taken = threading.Event()
        """Set when a message is taken (the server runs in another thread)."""

    def plugin_settings(self) -> dict[str, str]:
        """The ``link-mobility`` plugin's settings for this fake (variable names without their prefix)."""
        return {
            "BASE_URL": self.base_url,
            "USERNAME": self.username,
            "PASSWORD": self.password,
            "PLATFORM_ID": self.platform_id,
            "PLATFORM_PARTNER_ID": self.platform_partner_id,
            "DELIVERY_REPORT_GATE": self.gate_id,
            "REPORT_USERNAME": self.report_username,
            "REPORT_PASSWORD": self.report_password,
        }

    # --- Controls ---------------------------------------------------------------------------------

    def sent_count(self, ref_id: str) -> int:
        return sum(message.get("refId") == ref_id for message in self.messages)

    def report(
        self, message_id: str, result_code: int, at: datetime, *, part: int | None = None
    ) -> tuple[dict[str, str], bytes]:
        """What the gate POSTs for one message (or one ``part`` of a long one), as documented."""
        message = next(m for m in self.messages if m["messageId"] == message_id)
        body = {
            "refId": message.get("refId"),
            "id": message_id if part is None else f"{message_id}${part}",
            "operator": "no.telenor",
            "sentTimestamp": message["sentTimestamp"],
            "timestamp": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "resultCode": result_code,
            "operatorResultCode": "2",
            "segments": 1,
            "gateCustomParameters": {},
            "customParameters": {"source": message["source"], "destination": message["destination"]},
        }
        headers = {
            "Authorization": _basic(self.report_username, self.report_password),
            "Content-Type": "application/json",
        }
        return headers, json.dumps(body).encode()

    # --- The app ----------------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/sms/send", self._send, methods=["POST"])])

    async def _send(self, request: Request) -> Response:
        raw = await request.body()
        call: dict[str, Any] = {"headers": dict(request.headers), "body": raw}
        self.calls.append(call)
        response = await self._answer(request, raw)
        call["status"] = response.status_code
        return response

    async def _answer(self, request: Request, raw: bytes) -> Response:
        if self.down:
            return _error(503, 106000, "Service unavailable")
        now = time.monotonic()
        while self._recent and now - self._recent[0] > 1.0:
            self._recent.popleft()
        if len(self._recent) >= self.max_per_second:
            return _error(429, 106000, "Too many requests", headers={"Retry-After": "1"})
        self._recent.append(now)
        if request.headers.get("authorization") != _basic(self.username, self.password):
            return _error(401, 106100, "Invalid authentication")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(400, 106000, "Content-Type must be application/json")
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, 106000, "The body is not JSON")
        if not isinstance(body, dict):
            return _error(400, 106000, "The body must be a JSON object")
        if refused := self._check(body):
            return refused
        message_id = base64.b64encode(secrets.token_bytes(18)).decode()
        self.messages.append(
            {
                **body,
                "messageId": message_id,
                "sentTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
        self.taken.set()
        if self.stall_seconds:
            await asyncio.sleep(self.stall_seconds)
        if self.lose_next_answer:
            self.lose_next_answer = False
            return _error(502, 106000, "Bad gateway")
        if body.get("ignoreResponse", True) is not False:
            return Response(status_code=204)
        return JSONResponse(
            {"messageId": message_id, "resultCode": 1005, "description": "Queued", "smsCount": 1}
        )

    def _check(self, body: dict[str, Any]) -> Response | None:
        if not body.get("platformId"):
            return _error(400, 106200, "Invalid or missing platformId")
        if not body.get("platformPartnerId"):
            return _error(400, 106201, "Invalid or missing platformPartnerId")
        if (body["platformId"], body["platformPartnerId"]) != (self.platform_id, self.platform_partner_id):
            return _error(403, 106101, "Access denied")
        for name, default in (("source", "ALPHANUMERIC"), ("destination", "MSISDN")):
            ton, value = body.get(f"{name}TON", default), body.get(name)
            if ton not in TONS or not isinstance(value, str) or not TONS[ton].fullmatch(value):
                return _error(400, 106000, f"Invalid {name} for {name}TON")
        if not isinstance(body.get("userData"), str) or not body["userData"]:
            return _error(400, 106000, "userData is required")
        if body.get("dcs", "TEXT") not in ("TEXT", "GSM", "UCS2", "BINARY"):
            return _error(400, 106000, "Invalid dcs")
        if "refId" in body and not isinstance(body["refId"], str):
            return _error(400, 106000, "refId must be a string")
        if body.get("useDeliveryReport", True):
            gates = body.get("deliveryReportGates")
            if not gates:
                return _error(400, 106300, "No gates available")
            if any(gate != self.gate_id for gate in gates):
                return _error(400, 106301, "Specified gate unavailable")
        return None


def _error(status: int, code: int, description: str, headers: dict[str, str] | None = None) -> Response:
    body = {"status": code, "description": description, "translatedDescription": description}
    return JSONResponse(body, status_code=status, headers=headers)


def contract_driver() -> Any:
    """``SmsDriver`` for the ``link-mobility`` provider against a fresh fake per test."""
    from legetime.testing import SmsDriver
    from tests.support import ServedFake

    served = ServedFake(LinkMobilityFake)
    codes = {"delivered": 1001, "failed": 1006, "sent": 1000, "queued": 1005}

    async def sent_count(provider: Any, reference: str) -> int:
        return served.fake.sent_count(provider.ref_id(reference))

    def delivery_report(provider_id: str, status: Any, at: datetime) -> tuple[dict[str, str], bytes]:
        return served.fake.report(provider_id, codes[status.value], at)

    # LINK's gates authenticate reports with HTTP Basic and sign nothing over the body.
    return SmsDriver(
        sent_count=sent_count, delivery_report=delivery_report, build=served.build, report_body_signed=False
    )
