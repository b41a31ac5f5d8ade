"""Twilio Programmable Messaging (SMS provider ``twilio``).

Documentation followed (twilio.com/docs): the Message resource (``POST /2010-04-01/Accounts/{AccountSid}/
Messages.json`` with ``To``, ``From`` or ``MessagingServiceSid``, ``Body``, ``StatusCallback``; listing
Messages filtered by ``To``/``From``), "Outbound Message Status in Status Callbacks" (the MessageStatus
values, ``ErrorCode`` on failed and undelivered), "Webhooks security" (``X-Twilio-Signature``: HMAC-SHA1 with
the Auth Token over the exact callback URL and the sorted POST parameters), the alphanumeric sender ID rules
(at most 11 letters, digits and spaces, at least one letter), the error dictionary (20003 authentication,
20429 "Too Many Requests" with HTTP 429, 21211 invalid To, 21212/21606 bad From …) and the 2023 changelog
on ``RawDlrDoneDate`` (minute precision, no time zone, not always present).

What we rely on and why:

* **Twilio's SDK** for the REST calls (``create_async``/``stream_async`` on ``AsyncTwilioHttpClient``: auth
  with the Auth Token or an API key, form encoding, Twilio's error JSON, paging) and its
  ``RequestValidator`` for signatures, as Twilio asks. Worked around: the async client ignores its own
  timeout (every call runs under ``asyncio.timeout``), it logs request URLs and query strings, which hold
  the recipient in a lookup (it gets a disabled logger), and ``TWILIO_EDGE``/``TWILIO_REGION`` would
  rewrite the host (they are pinned empty; ``base_url`` chooses the host).
* **Failure classes by HTTP status, not by error code** (Twilio changes codes): a 4xx other than 429 is a
  definitive refusal (``ProviderError``, the core fails over); 429, 5xx, timeouts and connection errors
  are ``ProviderUnavailable`` (the core retries this provider with the same reference). Codes only name the
  reason; Twilio's message text is never passed on (it repeats the phone number).
* **Idempotency by reference through a map in the platform's database** (Twilio's Message create has no
  idempotency key): the plugin's table ``twilio_message``, which every process that sends shares. The
  reference is recorded as "sending" with a lease *before* the call, then with its MessageSid. A retry of a
  reference whose lease ran out (a crash, a timeout, a 5xx) first lists the Messages to that recipient from
  our sender created since the first attempt and adopts one with the same body that no other reference
  claims; only if there is none does it send. The map holds an HMAC of recipient, sender and body, never
  the number or the text. When the database cannot be reached, ``send`` is unavailable (nothing is sent
  without its lease).

  What remains: a second SMS can go out if Twilio no longer shows the first one's body (content retention,
  redaction, deletion), if the first request stayed in flight at Twilio longer than the lease (2 × timeout
  + 10 s), if more than ``LOOKUP_LIMIT`` Messages went to the recipient from our sender since the first
  attempt, or if our clock and Twilio's differ by more than ``CLOCK_SKEW``. A reference is never left
  unsent because of a lost answer: a retry sends when the lookup finds nothing.
* **Delivery reports** carry no reliable time (``RawDlrDoneDate`` has neither seconds nor a time zone), so
  ``DeliveryReport.at`` is when the callback was parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import importlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import structlog
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict
from sqlalchemy import (
    CheckConstraint,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.sdk import (
    E164,
    Capability,
    DeliveryReport,
    DeliveryStatus,
    ErrorCode,
    HttpsUrl,
    IdempotencyConflict,
    PluginDatabase,
    PluginTables,
    ProviderCheck,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    ProviderSpec,
    ProviderUnavailable,
    SmsEncoding,
    SmsMessage,
    SmsReceipt,
    UTCDateTime,
    ValidationError,
    check_sms_message,
    encode_info,
    hookimpl,
)

# Twilio's SDK (and aiohttp behind it) is imported when the provider is constructed (``_load_sdk``), not with
# the plugin: a default plugin whose provider is not enabled costs start-up nothing.

NAME = "twilio"
FINGERPRINT_KEY_PURPOSE = "sms-twilio-fingerprint"
ALPHA_SENDER = re.compile(r"(?=[^A-Za-z]*[A-Za-z])[A-Za-z0-9 ]{1,11}", re.ASCII)
MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}", re.ASCII)
MAX_BODY = 1600  # Twilio's limit on Body (21617)
LOOKUP_LIMIT = 100
CLOCK_SKEW = timedelta(minutes=5)
LEASE_MARGIN = timedelta(seconds=10)
UNAVAILABLE = "Twilio is not reachable right now; try again later."

STATUSES = {
    "queued": DeliveryStatus.QUEUED,
    "accepted": DeliveryStatus.QUEUED,
    "scheduled": DeliveryStatus.QUEUED,
    "sending": DeliveryStatus.QUEUED,
    "sent": DeliveryStatus.SENT,
    "partially_delivered": DeliveryStatus.SENT,  # not final
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.FAILED,
    "failed": DeliveryStatus.FAILED,
    "canceled": DeliveryStatus.FAILED,
}
# Short reasons for the codes we expect; the field the refusal concerns, if one.
REASONS: dict[int, tuple[str, str | None]] = {
    20003: ("authentication failed (Account SID, Auth Token or API key)", None),
    20404: ("not found (is the Messaging Service SID right?)", None),
    20429: ("too many requests", None),
    21211: ("invalid 'To' number", "to"),
    21212: ("invalid 'From' (sender ID)", "sender"),
    21408: ("sending to this region is not enabled (geo permissions)", "to"),
    21602: ("the body is required", "body"),
    21603: ("a sender is required", "sender"),
    21604: ("'To' is required", "to"),
    21606: ("'From' is not an SMS-capable number of this account", "sender"),
    21609: ("invalid StatusCallback URL", None),
    21610: ("the recipient has opted out (STOP)", "to"),
    21612: ("Twilio cannot route from this sender to this recipient", "to"),
    21614: ("'To' is not a mobile number", "to"),
    21617: ("the body exceeds 1600 characters", "body"),
    30001: ("queue overflow", None),
    30002: ("account suspended", None),
    30003: ("unreachable destination handset", None),
    30004: ("message blocked", None),
    30005: ("unknown destination handset", None),
    30006: ("landline or unreachable carrier", None),
    30007: ("filtered by the carrier", None),
    30008: ("unknown error", None),
}

log = structlog.get_logger(__name__)

metadata = MetaData()
messages = Table(
    "twilio_message",
    metadata,
    Column("reference", Text, primary_key=True),
    Column("fingerprint", String(64), nullable=False),  # HMAC of recipient, sender and body
    Column("state", String(16), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("lease_until", UTCDateTime(), nullable=False),
    Column("sid", String(64), nullable=True),
    Column("segments", Integer, nullable=False),
    Column("encoding", String(16), nullable=False),
    Column("status", String(16), nullable=True),
    CheckConstraint("state IN ('sending', 'sent')", name="ck_twilio_message_state"),
    UniqueConstraint("sid", name="uq_twilio_message_sid"),
)
"""Which MessageSid each reference got: ``sending`` (leased to an attempt until ``lease_until``) or ``sent``
(with its ``sid``)."""


class TwilioSettings(ProviderSettings):
    """Settings of ``twilio``, from ``LEGETIME_SMS_TWILIO_*`` (the credentials are in Twilio's Console)."""

    model_config = SettingsConfigDict(env_prefix="LEGETIME_SMS_TWILIO_")

    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$", description="The Account SID (AC…).")
    auth_token: SecretStr = Field(
        description="The account's Auth Token: signs status callbacks, and authenticates API calls unless "
        "an API key is given."
    )
    api_key_sid: str | None = Field(
        default=None,
        pattern=r"^SK[0-9a-fA-F]{32}$",
        description="An API key (SK…) for API calls instead of the Auth Token; it must be allowed to create "
        "and list Messages.",
    )
    api_key_secret: SecretStr | None = Field(default=None, description="The API key's secret.")
    messaging_service_sid: str | None = Field(
        default=None,
        pattern=r"^MG[0-9a-fA-F]{32}$",
        description="Send through this Messaging Service (MG…); its sender pool chooses From, and the "
        "platform's sender is not sent.",
    )
    base_url: HttpsUrl = Field(
        default="https://api.twilio.com",
        description="The REST API, e.g. https://api.dublin.ie1.twilio.com for the Dublin edge (a local fake "
        "in tests).",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=60, description="HTTP timeout per call.")

    @model_validator(mode="after")
    def _api_key_pair(self) -> TwilioSettings:
        if (self.api_key_sid is None) != (self.api_key_secret is None):
            raise ValueError("api_key_sid and api_key_secret are given together or not at all")
        return self


class TwilioSmsProvider:
    """Implements ``legetime.sdk.SmsProvider`` with Twilio's Message resource."""

    name = NAME

    def __init__(
        self,
        settings: TwilioSettings,
        *,
        callback_url: str,
        database: PluginDatabase,
        fingerprint_key: bytes,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        _load_sdk()
        self.settings = settings
        self.callback_url = callback_url
        self._fingerprint_key = fingerprint_key
        self._db = database  # the reference map; phone numbers are personal data, so it keeps none
        self._now = now or (lambda: datetime.now(UTC))
        self._lease = timedelta(seconds=2 * settings.timeout_seconds) + LEASE_MARGIN

    # --- The protocol -----------------------------------------------------------------------------

    async def send(self, message: SmsMessage) -> SmsReceipt:
        """Send once per ``reference``; a repeat returns the first receipt (see the module's docstring)."""
        self._validate(message)
        encoding, segments = encode_info(message.body)
        fingerprint = hmac.new(
            self._fingerprint_key,
            "\0".join((message.to, message.sender, message.body)).encode(),
            hashlib.sha256,
        ).hexdigest()
        row, earlier = await self._claim(message.reference, fingerprint, segments, encoding)
        if row is not None:
            return _receipt(row)
        if earlier is not None:  # an earlier attempt may have reached Twilio
            found = await self._recover(message, earlier)
            if found is not None:
                return found
        return await self._create(message, segments, encoding)

    async def parse_delivery_report(self, headers: Mapping[str, str], body: bytes) -> DeliveryReport:
        """Verify a status callback's ``X-Twilio-Signature`` and read it; it changes nothing."""
        from twilio.request_validator import RequestValidator

        signature = next((v for k, v in headers.items() if k.lower() == "x-twilio-signature"), "")
        try:
            pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True, max_num_fields=100)
            params = _Params(pairs)
        except (UnicodeDecodeError, ValueError):
            raise _rejected("not a form-encoded status callback") from None
        validator = RequestValidator(self.settings.auth_token.get_secret_value())
        if not signature or not validator.validate(self.callback_url, params, signature):
            raise _rejected("X-Twilio-Signature is missing or invalid")
        sid, raw_status = (
            params.first("MessageSid"),
            params.first("MessageStatus") or params.first("SmsStatus"),
        )
        if params.first("AccountSid") != self.settings.account_sid:
            raise _rejected("the callback is for another account")
        if sid is None or not MESSAGE_SID.fullmatch(sid) or raw_status not in STATUSES:
            raise _rejected("no MessageSid or an unknown MessageStatus")
        status = STATUSES[raw_status]
        code = params.first("ErrorCode") or ""
        error = _reason(int(code)) if code.isdigit() else None
        if status is DeliveryStatus.FAILED:
            error = f"{raw_status}: {error}" if error else raw_status
        log.info("sms.twilio.status", message_sid=sid, status=raw_status, error_code=code or None)
        return DeliveryReport(provider_id=sid, status=status, at=self._now(), error=error)

    # --- Operators and tests --------------------------------------------------------------------------

    async def check(self) -> ProviderCheck:
        """Fetch the Account resource (``GET /2010-04-01/Accounts/{AccountSid}.json``) with the configured
        credentials: read-only, nothing is sent. Its status must be ``active``."""
        import aiohttp
        from twilio.base.exceptions import TwilioRestException

        try:
            async with asyncio.timeout(self.settings.timeout_seconds), self._client() as client:
                account = await client.api.v2010.accounts(self.settings.account_sid).fetch_async()
        except TwilioRestException as exc:
            if exc.status in (401, 403):
                return ProviderCheck(False, f"Twilio refused the credentials (HTTP {exc.status}).")
            return ProviderCheck(False, f"Twilio answered HTTP {exc.status}.")
        except TimeoutError:
            return ProviderCheck(False, f"Twilio did not answer within {self.settings.timeout_seconds:g} s.")
        except aiohttp.ClientError:
            return ProviderCheck(False, "Twilio is unreachable.")
        if account.status != "active":
            return ProviderCheck(
                False, f"Twilio accepted the credentials, but the account is {account.status}."
            )
        return ProviderCheck(True, "Twilio accepted the credentials; the account is active.")

    async def reference_of(self, message_sid: str) -> str | None:
        """The reference whose message Twilio gave this MessageSid (None: not one of ours, or not known)."""
        return await self._reference_of(message_sid)

    # --- Sending ------------------------------------------------------------------------------------

    def _validate(self, message: SmsMessage) -> None:
        check_sms_message(message)
        if len(message.body) > MAX_BODY:
            raise ValidationError(f"Twilio takes at most {MAX_BODY} characters.", field="body")
        if self.settings.messaging_service_sid is None and not (
            E164.fullmatch(message.sender) or ALPHA_SENDER.fullmatch(message.sender)
        ):
            raise ValidationError(
                "The sender must be an E.164 number or an alphanumeric sender ID: at most 11 letters, digits "
                "and spaces, at least one letter.",
                field="sender",
            )

    async def _recover(self, message: SmsMessage, started: datetime) -> SmsReceipt | None:
        """For a reference left "sending": adopt the Message an earlier attempt made, if Twilio has it."""
        service = self.settings.messaging_service_sid
        filters: dict[str, Any] = (
            {"to": message.to} if service else {"to": message.to, "from_": message.sender}
        )
        try:
            async with asyncio.timeout(self.settings.timeout_seconds), self._messages() as messages:
                candidates = [
                    m
                    async for m in await messages.stream_async(**filters, limit=LOOKUP_LIMIT, page_size=50)
                    if m.body == message.body
                    and (m.direction or "").startswith("outbound")
                    and (service is None or m.messaging_service_sid == service)
                    and m.date_created is not None
                    and m.date_created >= started - CLOCK_SKEW
                ]
        except Exception as exc:
            error, _ = _translate(exc)
            await self._release(message.reference)  # nothing was sent: a retry may look again
            log.warning("sms.twilio.lookup_failed", reference=message.reference, error=type(exc).__name__)
            raise error from None
        for found in sorted(candidates, key=lambda m: m.date_created):
            if await self._reference_of(found.sid) is None:
                row = await self._record(message.reference, found.sid, found.status)
                log.info("sms.twilio.recovered", reference=message.reference, message_sid=found.sid)
                return _receipt(row)
        return None

    async def _create(self, message: SmsMessage, segments: int, encoding: SmsEncoding) -> SmsReceipt:
        params: dict[str, Any] = {
            "to": message.to,
            "body": message.body,
            "status_callback": self.callback_url,
            "smart_encoded": False,  # the body Twilio keeps must be ours, for recovery and segment counts
        }
        if self.settings.messaging_service_sid:
            params["messaging_service_sid"] = self.settings.messaging_service_sid
        else:
            params["from_"] = message.sender
        try:
            async with asyncio.timeout(self.settings.timeout_seconds), self._messages() as messages:
                created = await messages.create_async(**params)
        except Exception as exc:
            error, action = _translate(exc)
            await getattr(self, action)(message.reference)
            log.warning(
                "sms.twilio.not_sent",
                reference=message.reference,
                to=_mask(message.to),
                error=type(exc).__name__,
                http_status=getattr(exc, "status", None),
                error_code=getattr(exc, "code", None),
            )
            raise error from None
        row = await self._record(message.reference, created.sid, created.status)
        log.info(
            "sms.twilio.sent",
            reference=message.reference,
            message_sid=created.sid,
            to=_mask(message.to),
            segments=segments,
            encoding=encoding.value,
        )
        return _receipt(row)

    @contextlib.asynccontextmanager
    async def _messages(self) -> AsyncIterator[Any]:
        async with self._client() as client:
            yield client.api.v2010.accounts(self.settings.account_sid).messages

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[Any]:
        from twilio.http.async_http_client import AsyncTwilioHttpClient
        from twilio.rest import Client

        settings = self.settings
        if settings.api_key_sid and settings.api_key_secret:
            username, password = settings.api_key_sid, settings.api_key_secret.get_secret_value()
        else:
            username, password = settings.account_sid, settings.auth_token.get_secret_value()
        # One HTTP client per call: the platform calls from several event loops (API and worker threads).
        http = AsyncTwilioHttpClient(logger=_SILENT)
        try:
            client = Client(username, password, settings.account_sid, http_client=http, environment=_NO_ENV)
            client.api.base_url = settings.base_url
            yield client
        finally:
            await http.close()

    # --- The reference map (the plugin's table) ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        """A transaction on the map; the database out of reach is an outage of this provider."""
        try:
            async with self._db.transaction() as session:
                yield session
        except (DBAPIError, OSError) as error:
            log.error("sms.twilio.state_unavailable", error=type(error).__name__)
            raise ProviderUnavailable("The SMS provider's state is not available.") from None

    async def _claim(
        self, reference: str, fingerprint: str, segments: int, encoding: SmsEncoding
    ) -> tuple[Any, datetime | None]:
        """``(row, None)`` for a reference already sent. Otherwise the reference is now leased to this
        attempt: ``(None, None)`` for a first attempt, ``(None, started)`` when an earlier attempt that
        began at ``started`` may have reached Twilio."""
        now = self._now()
        lease_until = now + self._lease
        async with self._transaction() as session:
            row = (
                await session.execute(
                    select(messages).where(messages.c.reference == reference).with_for_update()
                )
            ).first()
            if row is None:
                claimed = insert(messages).values(
                    reference=reference,
                    fingerprint=fingerprint,
                    state="sending",
                    started_at=now,
                    lease_until=lease_until,
                    segments=segments,
                    encoding=encoding.value,
                )
                try:
                    await session.execute(claimed)
                except IntegrityError:  # a concurrent first attempt inserted it and holds the lease
                    raise _being_sent() from None
                return None, None
            if not hmac.compare_digest(row.fingerprint, fingerprint):
                raise IdempotencyConflict(
                    "This reference was already used for a different message.", field="reference"
                )
            if row.state == "sent":
                return row, None
            if row.lease_until > now:
                raise _being_sent()
            await session.execute(
                update(messages).where(messages.c.reference == reference).values(lease_until=lease_until)
            )
            return None, row.started_at

    async def _record(self, reference: str, sid: str, status: str | None) -> Any:
        async with self._transaction() as session:
            await session.execute(
                update(messages)
                .where(messages.c.reference == reference)
                .values(state="sent", sid=sid, status=STATUSES.get(status or "", DeliveryStatus.QUEUED).value)
            )
            return (await session.execute(select(messages).where(messages.c.reference == reference))).first()

    async def _forget(self, reference: str) -> None:
        """Twilio made nothing: the next attempt starts afresh."""
        async with self._transaction() as session:
            await session.execute(
                delete(messages).where(messages.c.reference == reference, messages.c.state == "sending")
            )

    async def _release(self, reference: str) -> None:
        """Twilio answered (an error): whatever it made is listed now, so a retry may look at once."""
        async with self._transaction() as session:
            await session.execute(
                update(messages)
                .where(messages.c.reference == reference, messages.c.state == "sending")
                .values(lease_until=self._now())
            )

    async def _keep(self, reference: str) -> None:
        """Outcome unknown and perhaps still in flight at Twilio: the lease stands until it runs out."""

    async def _reference_of(self, sid: str) -> str | None:
        async with self._transaction() as session:
            found = await session.scalar(select(messages.c.reference).where(messages.c.sid == sid))
        return None if found is None else str(found)


def _being_sent() -> ProviderUnavailable:
    return ProviderUnavailable("This message is being sent right now; try again later.")


def _translate(exc: Exception) -> tuple[ProviderError, str]:
    """The typed error for a failed call, and what it means for the reference's lease: ``_forget`` (Twilio
    made nothing), ``_release`` (it answered: a retry may look at once) or ``_keep`` (it may still be at
    work)."""
    import aiohttp
    from twilio.base.exceptions import TwilioRestException

    if isinstance(exc, TwilioRestException):
        if exc.status == 429:
            return ProviderUnavailable(f"{UNAVAILABLE} ({_reason(exc.code or 20429)})"), "_forget"
        if exc.status >= 500:
            return ProviderUnavailable(UNAVAILABLE), "_release"
        _, field = REASONS.get(exc.code or 0, ("", None))
        code = ErrorCode.INVALID_PHONE if field == "to" else ErrorCode.INVALID if field else None
        why = _reason(exc.code) if exc.code else f"HTTP {exc.status}"
        return ProviderError(f"Twilio refused the message: {why}.", field=field, code=code), "_forget"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ProviderUnavailable(UNAVAILABLE), "_forget"  # never connected: nothing sent
    return ProviderUnavailable(UNAVAILABLE), "_keep"  # a timeout, a dropped connection, a garbled answer


def _reason(code: int) -> str:
    reason, _ = REASONS.get(code, ("see Twilio's error dictionary", None))
    return f"{code} {reason}"


def _receipt(row: Any) -> SmsReceipt:
    return SmsReceipt(
        provider_id=row.sid,
        segments=row.segments,
        encoding=SmsEncoding(row.encoding),
        status=DeliveryStatus(row.status),
    )


def _rejected(why: str) -> ProviderError:
    log.warning("sms.twilio.callback_rejected", reason=why)
    return ProviderError(f"Twilio status callback rejected: {why}.", code=ErrorCode.INVALID)


def _mask(number: str) -> str:
    """Only the last two digits, so a log line cannot be tied to a person."""
    return "***" + number[-2:]


class _Params(dict[str, list[str]]):
    """Form parameters as Twilio's validator reads a multi-dict (``getlist``)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        super().__init__()
        for name, value in pairs:
            self.setdefault(name, []).append(value)

    def getlist(self, name: str) -> list[str]:
        return self[name]

    def first(self, name: str) -> str | None:
        values = self.get(name)
        return values[0] if values else None


def _load_sdk() -> None:
    """Import Twilio's SDK with the provider (about a second), so that its first SMS does not wait for it
    with the event loop blocked."""
    for module in ("twilio.rest", "twilio.http.async_http_client", "twilio.request_validator"):
        importlib.import_module(module)


def _silent_logger() -> logging.Logger:
    logger = logging.Logger("legetime.sms.twilio.sdk")  # outside the hierarchy: no handler reaches it
    logger.disabled = True
    return logger


_SILENT = _silent_logger()
_NO_ENV = {"TWILIO_EDGE": "", "TWILIO_REGION": ""}  # not os.environ: base_url alone chooses the host

# --- Plugin ----------------------------------------------------------------------------------------


def create_provider(settings: TwilioSettings, context: ProviderContext) -> TwilioSmsProvider:
    return TwilioSmsProvider(
        settings,
        callback_url=f"{context.settings.public_url.rstrip('/')}/webhooks/sms/{NAME}",
        database=context.database,
        fingerprint_key=context.derive_key(FINGERPRINT_KEY_PURPOSE),
    )


@hookimpl
def register_tables() -> PluginTables:
    return PluginTables("twilio", metadata, Path(__file__).parent / "migrations" / "twilio")


@hookimpl
def register_providers() -> Iterable[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.SMS,
            name=NAME,
            factory=create_provider,
            settings_model=TwilioSettings,
            description="Twilio Programmable Messaging (SMS, status callbacks).",
        )
    ]


@hookimpl
def plugin_info() -> Mapping[str, str]:
    return {"description": "SMS through Twilio: send once per reference, signed delivery status callbacks."}
