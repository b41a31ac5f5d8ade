"""LINK Mobility "Common" platform SMS REST API (SMS provider ``link-mobility``).

Documentation followed (LINK Mobility, "SMS REST API - MT and Delivery Reports" v1.18 and its later
editions, and "Common Platform API - Gate API" v1.2): ``POST <base>/sms/send`` with HTTP Basic
authentication and a JSON body (``source``/``sourceTON``, ``destination``, ``userData``, ``platformId``,
``platformPartnerId``, ``refId``, ``useDeliveryReport``, ``deliveryReportGates``, ``ignoreResponse``);
answers 200 ``{messageId, resultCode, description}``, 400/401/403 with an ErrorResponse (``status`` is one
of the 106xxx codes), delivery reports POSTed by a *gate* (set up by LINK Support or the Gate API) as JSON
``{refId, id, timestamp, resultCode, …}``; a gate's destination may use HTTP Basic authentication.

What we rely on and why:

* **Idempotency is ours.** ``refId`` is "not used for anything except as a reference": LINK neither
  deduplicates on it nor can be asked about it. So each reference is claimed in the plugin's table in the
  platform's database (``link_mobility_message``, shared by every process that sends; state ``sending``)
  *before* the call and settled after it (``sent`` with LINK's messageId, or released
  when LINK certainly did not take it: a 4xx, 429, 503 or a connection never made). When the answer is
  lost (a timeout, another 5xx, a crash), the claim stays ``sending``: a retry waits for a delivery report
  naming the claim's ``refId`` (which settles it) and only after ``resend_unknown_after_seconds`` sends
  again with the same ``refId`` (at least once; see docs/providers/link-mobility.md). The table holds
  references, keyed hashes and LINK's ids, never a number or a text; when the database cannot be reached,
  ``send`` is unavailable (nothing is sent without its claim).
* **Delivery reports carry no signature.** The only authentication LINK offers is HTTP Basic on the gate's
  destination: a report must carry those credentials (compared in constant time). Nothing binds the body;
  TLS protects it in transit. The threat model is in the provider's guide.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import importlib
import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
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

# httpx is imported when the provider is built, not when the plugin is loaded (as swedbank_pay does).

NAME = "link-mobility"
SEND_PATH = "/sms/send"
KEY_PURPOSE = "sms-link-mobility-reference"
MAX_SEGMENTS = 10
UNAVAILABLE = "LINK Mobility is not answering right now; the SMS will be retried."
SHORT_NUMBER = re.compile(r"[0-9]{1,14}", re.ASCII)  # LINK: "1-14 digits depending on country"
ALPHANUMERIC = re.compile(
    r"[A-Za-z][A-Za-z0-9]{1,10}", re.ASCII
)  # LINK: 2-11 of a-z A-Z 0-9, not a digit first

log = structlog.get_logger(__name__)

Q, S, D, F = DeliveryStatus.QUEUED, DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.FAILED
# Delivery report resultCode → our status and a short reason (the guide's "Result Codes" table). "FINAL:
# UNKNOWN DELIVERY" codes stay SENT: failing over on them could send the text twice.
RESULT_CODES: dict[int, tuple[DeliveryStatus, str]] = {
    0: (F, "unknown error"),
    1: (F, "temporary routing error"),
    2: (F, "permanent routing error"),
    3: (F, "maximum throttling exceeded"),
    4: (S, "timeout, delivery unknown"),
    5: (S, "operator unknown error, delivery unknown"),
    6: (F, "operator error"),
    104: (F, "configuration error"),
    105: (F, "internal LINK error"),
    1000: (S, "sent to operator"),
    1001: (D, "delivered"),
    1002: (F, "expired"),
    1003: (F, "deleted"),
    1004: (F, "mobile full"),
    1005: (Q, "queued"),
    1006: (F, "not delivered"),
    1007: (D, "delivered, billing delayed"),
    1008: (Q, "billed, not yet sent"),
    1009: (F, "billed, not delivered"),
    1010: (S, "expired without operator report, delivery unknown"),
    1011: (S, "billed and sent to operator"),
    1012: (Q, "delayed, LINK resends"),
    1013: (S, "sent to operator, billing delayed"),
    2000: (F, "invalid source"),
    2001: (F, "source short number not supported"),
    2002: (F, "source alphanumeric not supported"),
    2003: (F, "source MSISDN not supported"),
    2100: (F, "destination short number not supported"),
    2101: (F, "destination alphanumeric not supported"),
    2102: (F, "destination MSISDN not supported"),
    2103: (F, "operation blocked for destination"),
    2104: (F, "unknown subscriber"),
    2105: (F, "destination blocked"),
    2106: (F, "number error"),
    2107: (F, "destination temporarily blocked"),
    2200: (F, "charging error"),
    2201: (F, "subscriber has low balance"),
    2202: (F, "subscriber barred for premium messages"),
    2203: (F, "subscriber too young"),
    2204: (F, "prepaid subscriber not allowed"),
    2205: (F, "service rejected by subscriber"),
    2206: (F, "subscriber not registered in payment system"),
    2207: (F, "subscriber has reached max balance"),
    3000: (F, "GSM encoding not supported"),
    3001: (F, "UCS2 encoding not supported"),
    3002: (F, "binary encoding not supported"),
    4000: (F, "delivery report not supported"),
    4001: (F, "invalid message content"),
    4002: (F, "invalid tariff"),
    4003: (F, "invalid user data"),
    4004: (F, "invalid user data header"),
    4005: (F, "invalid data coding"),
    4006: (F, "invalid VAT"),
    4007: (F, "unsupported content for destination"),
}
QUIET = {1000, 1001, 1005}  # plain progress: no error text on the report
# The send API's ErrorResponse codes ("Error Result Codes"); LINK's own description is not passed on.
SUBMIT_ERRORS = {
    106000: "unknown error",
    106100: "invalid authentication",
    106101: "access denied",
    106200: "invalid or missing platformId",
    106201: "invalid or missing platformPartnerId",
    106202: "invalid or missing currency",
    106300: "no gates available",
    106301: "delivery report gate unavailable",
}


def result(code: int) -> tuple[DeliveryStatus, str | None]:
    """A delivery report's (or send answer's) resultCode as our status, with ``LINK <code>: reason``."""
    status, reason = RESULT_CODES.get(code, (F if 2000 <= code < 5000 else S, "unlisted result code"))
    return status, None if code in QUIET else f"LINK {code}: {reason}"


def mask_phone(number: str) -> str:
    """Only the last two digits, so a log line cannot be tied to a person."""
    return "***" + number[-2:]


class LinkMobilitySettings(ProviderSettings):
    """Settings of ``link-mobility``, from ``LEGETIME_SMS_LINK_MOBILITY_*`` (values from LINK Support)."""

    model_config = SettingsConfigDict(env_prefix="LEGETIME_SMS_LINK_MOBILITY_")

    base_url: HttpsUrl = Field(
        default="https://n-eu.linkmobility.io",
        description="The address LINK assigned to the account, without /sms: https://n-eu.linkmobility.io, "
        "https://no.linkmobility.io, https://c-eu.linkmobility.io, https://s-eu.linkmobility.io, "
        "https://deb.linkmobility.io or https://wsx.sp247.net.",
    )
    username: str = Field(min_length=1, description="API user name (HTTP Basic), from LINK Support.")
    password: SecretStr = Field(description="API password (HTTP Basic), from LINK Support.")
    platform_id: str = Field(min_length=1, description="Your platformId, from LINK Support.")
    platform_partner_id: str = Field(min_length=1, description="Your platformPartnerId, from LINK Support.")
    delivery_report_gate: str | None = Field(
        default=None,
        description="The gateId whose destination is <public URL>/webhooks/sms/link-mobility; without it "
        "no delivery reports are asked for (useDeliveryReport false).",
    )
    report_username: str = Field(
        default="legetime", min_length=1, description="User name the gate's destination sends (HTTP Basic)."
    )
    report_password: SecretStr | None = Field(
        default=None,
        description="Password the gate's destination sends (HTTP Basic), at least 24 characters; required "
        "with DELIVERY_REPORT_GATE. Reports without it are refused.",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=60, description="HTTP timeout per call.")
    resend_unknown_after_seconds: float = Field(
        default=900.0,
        gt=0,
        description="When LINK's answer to a send was lost (timeout, 5xx, crash), how long a retry waits "
        "for a delivery report naming the message before it sends again (at least once). Must exceed the "
        "timeout.",
    )

    @field_validator("base_url")
    @classmethod
    def _without_service_path(cls, value: str) -> str:
        return value.removesuffix("/sms")  # LINK lists the addresses with /sms; the path adds it

    @field_validator("report_password")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 24:
            raise ValueError("must be at least 24 characters (it is the only thing authenticating reports)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LinkMobilitySettings:
        if self.delivery_report_gate and self.report_password is None:
            raise ValueError("REPORT_PASSWORD is required with DELIVERY_REPORT_GATE")
        if self.resend_unknown_after_seconds <= self.timeout_seconds:
            raise ValueError("RESEND_UNKNOWN_AFTER_SECONDS must exceed TIMEOUT_SECONDS")
        return self


SENDING, OPEN, SENT = "sending", "open", "sent"  # claimed (outcome open), free to send, settled

metadata = MetaData()
messages = Table(
    "link_mobility_message",
    metadata,
    Column("reference", Text, primary_key=True),
    Column("fingerprint", String(64), nullable=False),  # keyed hash of recipient, body and sender
    Column("ref_id", String(32), nullable=False),  # the refId LINK got: a keyed hash of the reference
    Column("state", String(16), nullable=False),
    Column("attempt_at", UTCDateTime(), nullable=False),
    Column("provider_id", Text, nullable=True),  # LINK's messageId, once known
    Column("segments", Integer, nullable=False),
    Column("encoding", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    UniqueConstraint("ref_id", name="uq_link_mobility_message_ref_id"),
)
"""Which LINK message each reference made: ``sending`` (claimed, outcome open), ``open`` or ``sent``."""


class LinkMobilitySms:
    """Implements ``legetime.sdk.SmsProvider`` with LINK Mobility's Common SMS REST API."""

    name = NAME

    def __init__(self, settings: LinkMobilitySettings, *, key: bytes, database: PluginDatabase) -> None:
        importlib.import_module("httpx")  # loaded with the provider, so the first SMS does not wait for it
        self.settings = settings
        self._key = key
        self._db = database  # the reference map: references, keyed hashes and LINK's ids, no numbers

    def ref_id(self, reference: str) -> str:
        """The ``refId`` sent for a reference: a keyed hash, so LINK's logs hold nothing of ours."""
        return "lt" + hmac.new(self._key, reference.encode(), hashlib.sha256).hexdigest()[:30]

    # --- SmsProvider -------------------------------------------------------------------------------

    async def send(self, message: SmsMessage) -> SmsReceipt:
        source_ton = _validate(message)
        encoding, segments = encode_info(message.body)
        fingerprint = hmac.new(
            self._key, json.dumps([message.to, message.body, message.sender]).encode(), hashlib.sha256
        ).hexdigest()
        claim = await self._claim(message.reference, fingerprint, encoding, segments)
        if isinstance(claim, SmsReceipt):
            return claim
        previous_state, previous_at = claim
        body = {
            "source": message.sender,
            "sourceTON": source_ton,
            "destination": message.to,
            "destinationTON": "MSISDN",
            "userData": message.body,
            "dcs": "TEXT",  # LINK encodes and splits (its recommendation)
            "platformId": self.settings.platform_id,
            "platformPartnerId": self.settings.platform_partner_id,
            "refId": self.ref_id(message.reference),
            "useDeliveryReport": self.settings.delivery_report_gate is not None,
            "ignoreResponse": False,  # the default (true) answers 204 without the messageId
        }
        if self.settings.delivery_report_gate:
            body["deliveryReportGates"] = [self.settings.delivery_report_gate]
        try:
            receipt = await self._submit(body, message.reference, encoding, segments)
        except _NotTaken as refused:  # certainly not sent: the reference may be sent again at once
            await self._release(message.reference, previous_state, previous_at)
            raise refused.error from None
        # Anything else (unknown outcome, a crash, a cancellation) leaves the claim "sending".
        await self._settle(message.reference, receipt)  # failing, the claim stays "sending"
        log.info(
            "sms.link_mobility.sent",
            reference=message.reference,
            provider_id=receipt.provider_id,
            to=mask_phone(message.to),
            segments=segments,
            encoding=encoding.value,
            status=receipt.status.value,
        )
        return receipt

    async def parse_delivery_report(self, headers: Mapping[str, str], body: bytes) -> DeliveryReport:
        """Check the gate's HTTP Basic credentials, then read LINK's JSON report (see the module doc)."""
        self._authenticate(headers)
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            message_id, code = data.get("id"), data.get("resultCode")
            if not isinstance(message_id, str) or not message_id:
                raise ValueError("id must be a non-empty string")
            if isinstance(code, str) and code.isascii() and code.isdigit():
                code = int(code)  # a gate template sends it as text
            if not isinstance(code, int) or isinstance(code, bool):
                raise ValueError("resultCode must be an integer")
            at = _timestamp(data.get("timestamp") or data.get("sentTimestamp"))
            ref_id = data.get("refId")
        except (ValueError, TypeError) as exc:
            raise ProviderError(f"Malformed delivery report: {exc}", code=ErrorCode.INVALID) from None
        provider_id = message_id.split("$", 1)[0]  # a part of a long message is "<messageId>$<n>"
        status, error = result(code)
        if isinstance(ref_id, str) and ref_id:
            await self._recover(ref_id, provider_id, status)
        log.info("sms.link_mobility.report", provider_id=provider_id, result_code=code, status=status.value)
        return DeliveryReport(provider_id=provider_id, status=status, at=at, error=error)

    # --- Operators --------------------------------------------------------------------------------------

    async def check(self) -> ProviderCheck:
        """Whether LINK accepts the credentials, without sending anything.

        LINK's SMS REST API has no read-only call (its only resource is ``POST /sms/send``), so the check is
        a send request that cannot be a message: the account's ``platformId``/``platformPartnerId`` and no
        ``source``, ``destination`` or ``userData``. LINK authenticates first (401, 106100), then checks the
        platform pair (403, 106101) and the message (400): a 400 means the credentials and the platform were
        accepted and nothing was sent, since there is no one to send to.
        """
        import httpx

        probe = {
            "platformId": self.settings.platform_id,
            "platformPartnerId": self.settings.platform_partner_id,
            "useDeliveryReport": False,
        }
        try:
            async with httpx.AsyncClient(timeout=self.settings.timeout_seconds) as client:
                response = await client.post(
                    f"{self.settings.base_url}{SEND_PATH}",
                    json=probe,
                    auth=(self.settings.username, self.settings.password.get_secret_value()),
                    headers={"Accept": "application/json"},
                )
        except httpx.TimeoutException:
            return ProviderCheck(
                False, f"LINK Mobility did not answer within {self.settings.timeout_seconds:g} s."
            )
        except httpx.HTTPError:
            return ProviderCheck(False, "LINK Mobility is unreachable.")
        status = response.status_code
        if status == 401:
            return ProviderCheck(False, "LINK Mobility refused the user name or password (HTTP 401).")
        if status == 403:
            return ProviderCheck(
                False,
                "LINK Mobility accepted the credentials but refused platformId/platformPartnerId (HTTP 403).",
            )
        if status == 400:
            return ProviderCheck(
                True, "LINK Mobility accepted the credentials (a probe without recipient; nothing was sent)."
            )
        return ProviderCheck(False, f"LINK Mobility answered HTTP {status}.")

    # --- HTTP ----------------------------------------------------------------------------------------

    async def _submit(
        self, body: dict[str, Any], reference: str, encoding: SmsEncoding, segments: int
    ) -> SmsReceipt:
        """POST the message; LINK's answer as a receipt. Raises ``_NotTaken`` when LINK certainly did not
        take it, ``ProviderUnavailable`` when that is unknown."""
        import httpx

        try:
            async with httpx.AsyncClient(timeout=self.settings.timeout_seconds) as client:
                response = await client.post(
                    f"{self.settings.base_url}{SEND_PATH}",
                    json=body,
                    auth=(self.settings.username, self.settings.password.get_secret_value()),
                    headers={"Accept": "application/json"},
                )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            log.warning("sms.link_mobility.unavailable", reference=reference, reason="connect", taken="no")
            raise _NotTaken(ProviderUnavailable(UNAVAILABLE)) from None
        except httpx.HTTPError as exc:  # the request may have arrived
            log.warning(
                "sms.link_mobility.unavailable",
                reference=reference,
                reason=type(exc).__name__,
                taken="unknown",
            )
            raise ProviderUnavailable(UNAVAILABLE) from None
        status_code = response.status_code
        if status_code in (408, 429, 503):  # LINK did not take it (busy, rate limited, unavailable)
            log.warning(
                "sms.link_mobility.unavailable", reference=reference, http_status=status_code, taken="no"
            )
            raise _NotTaken(ProviderUnavailable(UNAVAILABLE))
        if status_code >= 500:
            log.warning(
                "sms.link_mobility.unavailable", reference=reference, http_status=status_code, taken="unknown"
            )
            raise ProviderUnavailable(UNAVAILABLE)
        try:
            data = response.json() if response.content else {}
        except ValueError:
            data = {}
        data = data if isinstance(data, dict) else {}
        if status_code >= 400:
            given = data.get("status")
            code = given if isinstance(given, int) else status_code
            reason = SUBMIT_ERRORS.get(code, f"HTTP {status_code}")
            log.warning("sms.link_mobility.refused", reference=reference, http_status=status_code, code=code)
            kind = ErrorCode.FORBIDDEN if status_code in (401, 403) else ErrorCode.INVALID
            raise _NotTaken(
                ProviderError(f"LINK Mobility refused the SMS (LINK {code}: {reason}).", code=kind)
            )
        message_id, result_code = data.get("messageId"), data.get("resultCode")
        if not isinstance(message_id, str) or not message_id:  # a 204, or an answer we cannot read
            log.warning(
                "sms.link_mobility.unavailable", reference=reference, http_status=status_code, taken="unknown"
            )
            raise ProviderUnavailable(UNAVAILABLE)
        status = result(result_code)[0] if isinstance(result_code, int) else DeliveryStatus.QUEUED
        return SmsReceipt(provider_id=message_id, segments=segments, encoding=encoding, status=status)

    # --- Delivery report credentials ------------------------------------------------------------------

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        password = self.settings.report_password
        if password is None:
            raise ProviderError(
                "Delivery reports are not configured (REPORT_PASSWORD).", code=ErrorCode.INVALID
            )
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, encoded = value.strip().partition(" ")
        try:
            user, _, given = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            user, given = b"", b""
        expected_user = self.settings.report_username.encode()
        same_user = hmac.compare_digest(user, expected_user)
        same_password = hmac.compare_digest(given, password.get_secret_value().encode())
        if scheme.lower() != "basic" or not (same_user and same_password):
            log.warning("sms.link_mobility.report_rejected", reason="credentials")
            raise ProviderError("Delivery report credentials are missing or wrong.", code=ErrorCode.INVALID)

    # --- The reference map (the plugin's table) ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _transaction(self, operation: str) -> AsyncIterator[AsyncSession]:
        """A transaction on the map; the database out of reach is an outage, not a library error."""
        try:
            async with self._db.transaction() as session:
                yield session
        except (DBAPIError, OSError):
            log.warning("sms.link_mobility.store_unavailable", operation=operation)
            raise ProviderUnavailable(UNAVAILABLE) from None

    async def _claim(
        self, reference: str, fingerprint: str, encoding: SmsEncoding, segments: int
    ) -> SmsReceipt | tuple[str | None, datetime | None]:
        """Claim the reference for one send; a settled one gives its first receipt. Returns what the claim
        replaced, so a send LINK certainly did not take can be undone."""
        now = datetime.now(UTC)
        async with self._transaction("_claim") as session:
            row = (
                await session.execute(
                    select(messages).where(messages.c.reference == reference).with_for_update()
                )
            ).first()
            if row is None:
                claimed = insert(messages).values(
                    reference=reference,
                    fingerprint=fingerprint,
                    ref_id=self.ref_id(reference),
                    state=SENDING,
                    attempt_at=now,
                    segments=segments,
                    encoding=encoding.value,
                    status=DeliveryStatus.QUEUED.value,
                )
                try:
                    await session.execute(claimed)
                except IntegrityError:  # a concurrent first attempt claimed it: as if it were found claimed
                    raise _being_sent() from None
                return None, None
            if not hmac.compare_digest(row.fingerprint, fingerprint):
                raise IdempotencyConflict(
                    "This reference was already used for a different message.", field="reference"
                )
            if row.state == SENT:
                return SmsReceipt(
                    provider_id=row.provider_id,
                    segments=row.segments,
                    encoding=SmsEncoding(row.encoding),
                    status=DeliveryStatus(row.status),
                )
            attempt_at = row.attempt_at
            waited = (now - attempt_at).total_seconds()
            if row.state == SENDING and waited < self.settings.resend_unknown_after_seconds:
                raise _being_sent()
            await session.execute(
                update(messages)
                .where(messages.c.reference == reference)
                .values(state=SENDING, attempt_at=now)
            )
            if row.state == SENDING:
                log.warning("sms.link_mobility.resending", reference=reference, waited_seconds=int(waited))
            return str(row.state), attempt_at

    async def _release(
        self, reference: str, previous_state: str | None, previous_at: datetime | None
    ) -> None:
        """LINK did not take this attempt: back to what the claim found (an earlier lost answer stays)."""
        values: dict[str, Any] = {"state": OPEN}
        if previous_state is not None:
            values = {"state": previous_state, "attempt_at": previous_at}
        async with self._transaction("_release") as session:
            await session.execute(update(messages).where(messages.c.reference == reference).values(**values))

    async def _settle(self, reference: str, receipt: SmsReceipt) -> None:
        async with self._transaction("_settle") as session:
            await session.execute(
                update(messages)
                .where(messages.c.reference == reference)
                .values(state=SENT, provider_id=receipt.provider_id, status=receipt.status.value)
            )

    async def _recover(self, ref_id: str, provider_id: str, status: DeliveryStatus) -> None:
        """A report names a send whose answer was lost: now we know LINK's id, and the retry returns it."""
        async with self._transaction("_recover") as session:
            recovered = (
                await session.execute(
                    update(messages)
                    .where(messages.c.ref_id == ref_id, messages.c.state == SENDING)
                    .values(state=SENT, provider_id=provider_id, status=status.value)
                    .returning(messages.c.reference)
                )
            ).first()
        if recovered is not None:
            log.info("sms.link_mobility.recovered", provider_id=provider_id)


def _being_sent() -> ProviderUnavailable:
    return ProviderUnavailable(
        "This SMS is being sent, or LINK's answer was lost; waiting for its delivery report."
    )


class _NotTaken(Exception):
    """LINK certainly did not take the message: ``error`` is what ``send`` raises."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(str(error))
        self.error = error


def _validate(message: SmsMessage) -> str:
    """Check the message; return the sender's type of number (LINK's sourceTON)."""
    check_sms_message(message)
    if encode_info(message.body)[1] > MAX_SEGMENTS:
        raise ValidationError(f"The message needs more than {MAX_SEGMENTS} SMS segments.", field="body")
    if E164.fullmatch(message.sender):
        return "MSISDN"
    if SHORT_NUMBER.fullmatch(message.sender):
        return "SHORTNUMBER"
    if ALPHANUMERIC.fullmatch(message.sender):
        return "ALPHANUMERIC"
    raise ValidationError(
        "The sender must be 2-11 letters and digits starting with a letter, a short number or an "
        "E.164 number.",
        field="sender",
    )


def _timestamp(value: Any) -> datetime:
    """LINK's RFC 3339 time ("UTC time"): an offset is kept, a bare time is read as UTC."""
    if not isinstance(value, str) or not value:
        raise ValueError("timestamp must be an RFC 3339 string")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("timestamp must be an RFC 3339 string") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


# --- Plugin ----------------------------------------------------------------------------------------


def create_provider(settings: LinkMobilitySettings, context: ProviderContext) -> LinkMobilitySms:
    return LinkMobilitySms(
        settings,
        key=context.derive_key(KEY_PURPOSE),
        database=context.database,
    )


@hookimpl
def register_tables() -> PluginTables:
    return PluginTables("link_mobility", metadata, Path(__file__).parent / "migrations" / "link_mobility")


@hookimpl
def register_providers() -> Iterable[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.SMS,
            name=NAME,
            factory=create_provider,
            settings_model=LinkMobilitySettings,
            description="LINK Mobility SMS (Common platform REST API) with delivery reports.",
        )
    ]


@hookimpl
def plugin_info() -> Mapping[str, str]:
    return {"description": "SMS through LINK Mobility's Common platform, with delivery reports."}
