"""A local Twilio Programmable Messaging API (2010-04-01 Messages) that keeps the documented contract, for
the ``twilio`` SMS plugin's tests. Twilio's own SDK talks to it as to api.twilio.com.

It enforces: HTTP Basic auth with the Account SID and Auth Token, or an API key SID and secret, for the
account in the path (else 401, code 20003); form-encoded parameters; ``To`` in E.164 (21604 missing,
21211 invalid); a sender (21603 without ``From`` or ``MessagingServiceSid``): an E.164 ``From`` must be a
number of the account (21606), an alphanumeric one must keep the sender ID rules (21212), a Messaging
Service must exist (20404); a body of 1–1600 characters (21602, 21617); an http(s) ``StatusCallback``
(21609); recipients who opted out (21610). Errors are Twilio's JSON (``code``, ``message``, ``more_info``,
``status``). A new Message is ``queued`` (``accepted`` through a Messaging Service, without ``from``).
Lists are newest first, filtered by ``To`` and ``From``, paged with ``PageSize``/``Page``.

Status callbacks are form-encoded POSTs signed as Twilio signs them: ``X-Twilio-Signature`` is the base64
HMAC-SHA1, keyed with the Auth Token, of the callback URL followed by every parameter's name and value,
sorted by name. The signing here is written from that description, not taken from Twilio's SDK, so the
plugin's use of the SDK's validator is checked against an independent implementation.

Controls: Twilio down (503), rate limited (429, code 20429), an answer lost after the Message was made
(500), a slow answer (the client times out while the Message is made).

The Account resource (``GET /2010-04-01/Accounts/{AccountSid}.json``) answers as documented, with the same
authentication; ``account_status`` makes the account suspended or closed (the provider's ``check``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API = "/2010-04-01/Accounts/{account}"
E164 = re.compile(r"\+[1-9]\d{6,14}", re.ASCII)
ALPHA_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}", re.ASCII)
FINAL_WITH_ERROR = ("failed", "undelivered")


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def sign(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """``X-Twilio-Signature`` of a request to ``url`` with these POST parameters."""
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass
class FakeMessage:
    sid: str
    to: str
    from_: str | None
    body: str
    messaging_service_sid: str | None
    status_callback: str | None
    status: str
    date_created: datetime

    def view(self, account_sid: str) -> dict[str, Any]:
        stamp = format_datetime(self.date_created)
        return {
            "account_sid": account_sid,
            "api_version": "2010-04-01",
            "body": self.body,
            "date_created": stamp,
            "date_sent": None,
            "date_updated": stamp,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": "0" if self.messaging_service_sid else "1",
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {
                "media": f"{API.format(account=account_sid)}/Messages/{self.sid}/Media.json"
            },
            "to": self.to,
            "uri": f"{API.format(account=account_sid)}/Messages/{self.sid}.json",
        }


@dataclass
class CreateAttempt:
    """One ``POST …/Messages.json`` that passed authentication: the Message it made, or Twilio's code."""

    form: dict[str, str]
    sid: str | None
    code: int | None


@dataclass
class TwilioFake:
    account_sid: str = "AC" + "a1" * 16
    auth_token: str = "fake-auth-token-0123456789abcdef"
    api_key_sid: str = "SK" + "b2" * 16
    api_key_secret: str = "fake-api-key-secret-0123456789ab"
    numbers: set[str] = field(default_factory=lambda: {"+4759440000"})
    """The account's phone numbers (an E.164 ``From`` must be one of them)."""
    messaging_services: set[str] = field(default_factory=lambda: {"MG" + "c3" * 16})
    account_status: str = "active"
    """The Account resource's status: active, suspended or closed."""
    opted_out: set[str] = field(default_factory=set)
    """Recipients who answered STOP: Twilio refuses to message them (21610)."""
    base_url: str = ""
    down: bool = False
    rate_limited: int = 0
    """How many of the next requests are answered 429 (code 20429)."""
    drop_next_answer: bool = False
    """The next create makes the Message, and its answer is lost (500)."""
    slow_next_answer: float = 0.0
    """The next create makes the Message and answers after this many seconds."""
    messages: dict[str, FakeMessage] = field(default_factory=dict)
    attempts: list[CreateAttempt] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    made: threading.Event = field(default_factory=threading.Event)
    """Set when a Message is made (tests wait on it from another thread)."""

    def plugin_settings(self) -> dict[str, str]:
        """The ``twilio`` plugin's settings for this fake (variable names without their prefix)."""
        return {"BASE_URL": self.base_url, "ACCOUNT_SID": self.account_sid, "AUTH_TOKEN": self.auth_token}

    # --- Status callbacks -------------------------------------------------------------------------

    def status_callback(
        self, sid: str, status: str, *, error_code: int | None = None, url: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of the status callback Twilio sends to the Message's ``StatusCallback``
        (or ``url``) when its status becomes ``status``."""
        message = self.messages[sid]
        target = url or message.status_callback
        assert target, "the Message has no StatusCallback"
        params = [
            ("AccountSid", self.account_sid),
            ("ApiVersion", "2010-04-01"),
            ("From", message.from_ or "Legetime"),
            ("MessageSid", sid),
            ("MessageStatus", status),
            ("SmsSid", sid),
            ("SmsStatus", status),
            ("To", message.to),
        ]
        if message.messaging_service_sid:
            params.append(("MessagingServiceSid", message.messaging_service_sid))
        if status in FINAL_WITH_ERROR:
            params.append(("ErrorCode", str(error_code or 30003)))
        if status in ("delivered", "undelivered"):
            params.append(("RawDlrDoneDate", datetime.now(UTC).strftime("%y%m%d%H%M")))
        message.status = status
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(self.auth_token, target, params),
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
            "User-Agent": "TwilioProxy/1.1",
        }
        return headers, urlencode(params).encode()

    def fire_status_callback(self, sid: str, status: str, *, error_code: int | None = None) -> int:
        """POST a signed status callback to the Message's ``StatusCallback``; the receiver's HTTP status."""
        headers, body = self.status_callback(sid, status, error_code=error_code)
        target = self.messages[sid].status_callback
        assert target is not None
        return httpx.post(target, headers=headers, content=body, timeout=10).status_code

    # --- The app ----------------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(f"{API.format(account='{account}')}/Messages.json", self._create, methods=["POST"]),
                Route(f"{API.format(account='{account}')}/Messages.json", self._list, methods=["GET"]),
                Route(f"{API.format(account='{account}')}/Messages/{{sid}}.json", self._fetch),
                Route(f"{API.format(account='{account}')}.json", self._account, methods=["GET"]),
            ]
        )

    def _check(self, request: Request) -> Response | None:
        self.requests.append(
            {"method": request.method, "path": request.url.path, "query": str(request.url.query)}
        )
        if self.down:
            return _error(503, 20503, "Service Unavailable")
        if self.rate_limited > 0:
            self.rate_limited -= 1
            return _error(429, 20429, "Too Many Requests")
        if request.path_params["account"] != self.account_sid or _basic(request) not in (
            (self.account_sid, self.auth_token),
            (self.api_key_sid, self.api_key_secret),
        ):
            return _error(
                401, 20003, "Authenticate", headers={"WWW-Authenticate": 'Basic realm="Twilio API"'}
            )
        return None

    async def _create(self, request: Request) -> Response:
        if refused := self._check(request):
            return refused
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return _error(400, 20001, "Parameters must be form-encoded")
        form = {k: str(v) for k, v in (await request.form()).multi_items()}
        code, status, text = self._refusal(form)
        if code is not None:
            self.attempts.append(CreateAttempt(form, None, code))
            return _error(status, code, text)
        service = form.get("MessagingServiceSid")
        message = FakeMessage(
            sid=_sid("SM"),
            to=form["To"],
            from_=form.get("From"),
            body=form["Body"],
            messaging_service_sid=service,
            status_callback=form.get("StatusCallback"),
            status="accepted" if service else "queued",
            date_created=datetime.now(UTC).replace(microsecond=0),
        )
        self.messages[message.sid] = message
        self.attempts.append(CreateAttempt(form, message.sid, None))
        self.made.set()
        if self.drop_next_answer:
            self.drop_next_answer = False
            return _error(500, 20500, "Internal Server Error")
        if self.slow_next_answer:
            delay, self.slow_next_answer = self.slow_next_answer, 0.0
            await asyncio.sleep(delay)
        return JSONResponse(message.view(self.account_sid), status_code=201)

    def _refusal(self, form: dict[str, str]) -> tuple[int | None, int, str]:
        """Twilio's code, HTTP status and message for a create it refuses (code None: accepted)."""
        to, sender, service = form.get("To"), form.get("From"), form.get("MessagingServiceSid")
        body, callback = form.get("Body", ""), form.get("StatusCallback")
        if not to:
            return 21604, 400, "A 'To' phone number is required."
        if not E164.fullmatch(to):
            return 21211, 400, f"Invalid 'To' Phone Number: {to}"
        if not sender and not service:
            return 21603, 400, "A 'From' phone number is required."
        if service and service not in self.messaging_services:
            return 20404, 404, f"The requested resource {service} was not found"
        if sender and sender.startswith("+") and sender not in self.numbers:
            return (
                21606,
                400,
                f"The From phone number {sender} is not a valid, SMS-capable number for your account.",
            )
        if sender and not sender.startswith("+") and not ALPHA_SENDER.fullmatch(sender):
            return 21212, 400, f"Invalid From Number (caller ID): {sender}"
        if not body:
            return 21602, 400, "Message body is required."
        if len(body) > 1600:
            return 21617, 400, "The concatenated message body exceeds the 1600 character limit."
        if callback is not None and urlsplit(callback).scheme not in ("http", "https"):
            return 21609, 400, "Invalid StatusCallback url"
        if to in self.opted_out:
            return 21610, 400, "Attempt to send to unsubscribed recipient"
        return None, 201, ""

    async def _list(self, request: Request) -> Response:
        if refused := self._check(request):
            return refused
        query = request.query_params
        found = [
            m
            for m in sorted(self.messages.values(), key=lambda m: m.date_created, reverse=True)
            if query.get("To") in (None, m.to) and query.get("From") in (None, m.from_)
        ]
        size, page = int(query.get("PageSize", "50")), int(query.get("Page", "0"))
        chunk = found[page * size : (page + 1) * size]
        base = request.url.path
        rest = {k: v for k, v in query.items() if k not in ("Page", "PageToken")}

        def uri(number: int) -> str:
            return f"{base}?{urlencode({**rest, 'PageSize': size, 'Page': number})}"

        return JSONResponse(
            {
                "messages": [m.view(self.account_sid) for m in chunk],
                "page": page,
                "page_size": size,
                "start": page * size,
                "end": page * size + max(len(chunk) - 1, 0),
                "uri": uri(page),
                "first_page_uri": uri(0),
                "next_page_uri": uri(page + 1) if (page + 1) * size < len(found) else None,
                "previous_page_uri": uri(page - 1) if page else None,
            }
        )

    async def _account(self, request: Request) -> Response:
        """Fetch the Account resource (read-only): the credentials must be this account's (else 401, code
        20003, as for every other resource)."""
        if refused := self._check(request):
            return refused
        stamp = format_datetime(datetime(2024, 1, 2, tzinfo=UTC))
        base = API.format(account=self.account_sid)
        return JSONResponse(
            {
                "auth_token": self.auth_token,  # Twilio returns it; the plugin must never pass it on
                "date_created": stamp,
                "date_updated": stamp,
                "friendly_name": "Legetime test account",
                "owner_account_sid": self.account_sid,
                "sid": self.account_sid,
                "status": self.account_status,
                "subresource_uris": {"messages": f"{base}/Messages.json"},
                "type": "Full",
                "uri": f"{base}.json",
            }
        )

    async def _fetch(self, request: Request) -> Response:
        if refused := self._check(request):
            return refused
        message = self.messages.get(request.path_params["sid"])
        if message is None:
            return _error(404, 20404, "The requested resource was not found")
        return JSONResponse(message.view(self.account_sid))


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
    except ValueError:
        return None
    return user, password


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status, headers=headers)


# --- The SMS contract's driver ------------------------------------------------------------------------


def contract_driver() -> Any:
    """``SmsDriver`` for the ``twilio`` provider against a fresh fake per test."""
    from legetime.testing import SmsDriver
    from tests.support import ServedFake

    served = ServedFake(TwilioFake)
    statuses = {"delivered": "delivered", "failed": "failed", "sent": "sent", "queued": "queued"}

    async def sent_count(provider: Any, reference: str) -> int:
        # Twilio keeps no reference: a create counts for this one if the provider recorded its Message for
        # it, or for no reference at all (a duplicate, or a request Twilio refused).
        count = 0
        for attempt in served.fake.attempts:
            owner = await provider.reference_of(attempt.sid) if attempt.sid else None
            count += owner in (reference, None)
        return count

    def delivery_report(provider_id: str, status: Any, at: datetime) -> tuple[dict[str, str], bytes]:
        return served.fake.status_callback(provider_id, statuses[status.value])

    return SmsDriver(
        sent_count=sent_count,
        delivery_report=delivery_report,
        build=served.build,
        report_time_is_arrival=True,  # Twilio's callbacks carry no time of their own
    )
