"""SMS outbox: stores messages, nothing leaves the machine (development and tests).

Messages live in the plugin's table in the platform's database (``outbox_sms``), not in process memory,
because the API process that sends and the worker or operator that reads the outbox are often different
processes. Idempotency by ``reference`` is enforced by a UNIQUE constraint, so two processes sending the
same reference at once still store one message. Several outboxes may share the table (tests enable two as
two SMS providers): each keeps to the rows of its own name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    exc,
    insert,
    select,
    update,
)

from legetime.sdk import (
    Capability,
    DeliveryReport,
    DeliveryStatus,
    ErrorCode,
    IdempotencyConflict,
    NotFound,
    PluginDatabase,
    PluginTables,
    ProviderCheck,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    ProviderSpec,
    SmsEncoding,
    SmsMessage,
    SmsReceipt,
    UTCDateTime,
    ValidationError,
    check_sms_message,
    encode_info,
    hookimpl,
)

NAME = "outbox"
MAX_SEGMENTS = 10
SIGNATURE_HEADER = "X-Outbox-Signature"
DLR_KEY_PURPOSE = "sms-outbox-dlr"
PREVIEW_CHARS = 40

log = structlog.get_logger(__name__)


class OutboxSettings(ProviderSettings):
    """Settings of the SMS outbox (``LEGETIME_SMS_OUTBOX_*``)."""

    model_config = SettingsConfigDict(env_prefix="LEGETIME_SMS_OUTBOX_")

    signing_secret: SecretStr | None = Field(
        default=None,
        description="HMAC secret of simulated delivery reports; default: derived from the master secret.",
    )
    echo: bool = Field(default=True, description="Log each stored message (recipient masked, body cut).")


@dataclass(frozen=True)
class StoredSms:
    """One message as the outbox keeps it (operators and tests read these)."""

    provider_id: str
    reference: str
    to: str
    sender: str
    body: str
    segments: int
    encoding: SmsEncoding
    status: DeliveryStatus
    created_at: datetime
    status_at: datetime | None


metadata = MetaData()
messages = Table(
    "outbox_sms",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("outbox", String(64), nullable=False),
    Column("provider_id", String(64), nullable=False, unique=True),
    Column("reference", String(300), nullable=False),
    Column("to_number", String(32), nullable=False),
    Column("sender", String(32), nullable=False),
    Column("body", Text, nullable=False),
    Column("segments", Integer, nullable=False),
    Column("encoding", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("status_at", UTCDateTime(), nullable=True),
    UniqueConstraint("outbox", "reference", name="uq_outbox_sms_reference"),
)


def mask_phone(number: str) -> str:
    """Only the last two digits, so a log line cannot be tied to a person."""
    return "***" + number[-2:]


def _row_to_sms(row: Any) -> StoredSms:
    return StoredSms(
        provider_id=row.provider_id,
        reference=row.reference,
        to=row.to_number,
        sender=row.sender,
        body=row.body,
        segments=row.segments,
        encoding=SmsEncoding(row.encoding),
        status=DeliveryStatus(row.status),
        created_at=row.created_at,
        status_at=row.status_at if row.status_at else None,
    )


class OutboxSmsProvider:
    """An ``SmsProvider`` that keeps every message in the platform's database."""

    name = NAME

    def __init__(self, database: PluginDatabase, dlr_key: bytes, *, echo: bool, outbox: str = NAME) -> None:
        self._db = database
        self._dlr_key = dlr_key
        self.echo = echo
        self.outbox = outbox

    # --- storage -----------------------------------------------------------------------------------

    async def _store(
        self, message: SmsMessage, encoding: SmsEncoding, segments: int
    ) -> tuple[StoredSms, bool]:
        """Insert unless the reference exists; return the stored message and whether it is new."""
        mine = (messages.c.outbox == self.outbox, messages.c.reference == message.reference)
        row = {
            "outbox": self.outbox,
            "provider_id": f"outbox-{uuid.uuid4().hex}",
            "reference": message.reference,
            "to_number": message.to,
            "sender": message.sender,
            "body": message.body,
            "segments": segments,
            "encoding": encoding.value,
            "status": DeliveryStatus.SENT.value,
            "created_at": datetime.now(UTC),
        }
        created = True
        try:
            async with self._db.transaction() as session:
                await session.execute(insert(messages).values(**row))
        except exc.IntegrityError:  # the reference was stored already (by this process or another)
            created = False
        async with self._db.transaction() as session:
            stored = (await session.execute(select(messages).where(*mine))).one()
        return _row_to_sms(stored), created

    # --- SmsProvider -------------------------------------------------------------------------------

    async def send(self, message: SmsMessage) -> SmsReceipt:
        """Store the message once per ``reference``; a repeat returns the first receipt."""
        check_sms_message(message)
        encoding, segments = encode_info(message.body)
        if segments > MAX_SEGMENTS:
            raise ValidationError(
                f"The message needs {segments} SMS segments; at most {MAX_SEGMENTS} are allowed.",
                field="body",
            )
        stored, created = await self._store(message, encoding, segments)
        if (stored.to, stored.body, stored.sender) != (message.to, message.body, message.sender):
            raise IdempotencyConflict(
                "This reference was already used for a different message.", field="reference"
            )
        if created and self.echo:
            log.info(
                "sms.outbox.stored",
                provider_id=stored.provider_id,
                reference=stored.reference,
                to=mask_phone(stored.to),
                sender=stored.sender,
                segments=segments,
                encoding=encoding.value,
                body_length=len(stored.body),
                body_preview=stored.body[:PREVIEW_CHARS],
            )
        return SmsReceipt(
            provider_id=stored.provider_id,
            segments=stored.segments,
            encoding=stored.encoding,
            status=DeliveryStatus.SENT,
        )

    async def parse_delivery_report(self, headers: Mapping[str, str], body: bytes) -> DeliveryReport:
        """Verify and parse a simulated delivery report; it changes nothing (the caller decides).

        Body: ``{"id": provider_id, "status": "delivered"|"failed", "at": ISO 8601 with offset,
        "error": optional}``, signed with HMAC-SHA256 (hex) of the raw body in ``X-Outbox-Signature``.
        """
        signature = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), "")
        expected = hmac.new(self._dlr_key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.strip().lower().encode(), expected.encode()):
            raise ProviderError("Delivery report signature is missing or invalid.", code=ErrorCode.INVALID)
        try:
            data = json.loads(body)
            provider_id, status, at = data["id"], DeliveryStatus(data["status"]), data["at"]
            error = data.get("error")
            if not isinstance(provider_id, str) or not provider_id or not isinstance(at, str):
                raise ValueError("id and at must be strings")
            if status not in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED):
                raise ValueError("status must be delivered or failed")
            if error is not None and not isinstance(error, str):
                raise ValueError("error must be a string")
            when = datetime.fromisoformat(at)
            if when.tzinfo is None:
                raise ValueError("at must carry a UTC offset")
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(f"Malformed delivery report: {exc}", code=ErrorCode.INVALID) from None
        return DeliveryReport(provider_id=provider_id, status=status, at=when, error=error)

    # --- operators and tests -------------------------------------------------------------------------

    async def check(self) -> ProviderCheck:
        """Its table answers (nothing is sent: it is a simulation)."""
        async with self._db.transaction() as session:
            await session.execute(select(messages.c.seq).limit(1))
        return ProviderCheck(ok=True, message="The SMS outbox (a simulation) stores messages.")

    async def messages(self, limit: int = 100) -> list[StoredSms]:
        """Stored messages, newest first."""
        if limit < 1:
            raise ValidationError("limit must be at least 1.", field="limit")
        query = select(messages).where(messages.c.outbox == self.outbox).order_by(messages.c.seq.desc())
        async with self._db.transaction() as session:
            rows = (await session.execute(query.limit(limit))).all()
        return [_row_to_sms(row) for row in rows]

    async def mark_delivered(self, provider_id: str) -> None:
        """Pretend the handset confirmed delivery."""
        async with self._db.transaction() as session:
            result = await session.execute(
                update(messages)
                .where(messages.c.outbox == self.outbox, messages.c.provider_id == provider_id)
                .values(status=DeliveryStatus.DELIVERED.value, status_at=datetime.now(UTC))
            )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFound(f"No outbox message {provider_id!r}.", field="provider_id")


def _factory(settings: OutboxSettings, context: ProviderContext) -> OutboxSmsProvider:
    if settings.signing_secret is not None:
        key = settings.signing_secret.get_secret_value().encode()
    else:
        key = context.derive_key(DLR_KEY_PURPOSE)
    return OutboxSmsProvider(context.database, key, echo=settings.echo)


@hookimpl
def register_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.SMS,
            name=NAME,
            factory=_factory,
            settings_model=OutboxSettings,
            description="Stores SMS in the platform's database; nothing is sent.",
            test_only=True,
        )
    ]


@hookimpl
def plugin_info() -> dict[str, str]:
    return {"description": "SMS outbox for development and tests: messages are stored, never sent."}


@hookimpl
def register_tables() -> PluginTables:
    return PluginTables("outbox", metadata, Path(__file__).parent / "migrations" / "outbox")
