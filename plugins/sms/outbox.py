"""SMS outbox: stores messages, nothing leaves the machine (development and tests).

State lives in a SQLite file (stdlib ``sqlite3`` through ``asyncio.to_thread``), not in process memory,
because the API process that sends and the worker or operator that reads the outbox are often different
processes. Idempotency by ``reference`` is enforced by a UNIQUE constraint, so two processes sending the
same reference at once still store one message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from legetime.sdk import (
    Capability,
    DeliveryReport,
    DeliveryStatus,
    ErrorCode,
    IdempotencyConflict,
    NotFound,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    ProviderSpec,
    SmsEncoding,
    SmsMessage,
    SmsReceipt,
    SqliteFile,
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

    path: Path | None = Field(
        default=None, description="SQLite file of the outbox; default: <data_dir>/sms-outbox.sqlite3."
    )
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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    provider_id TEXT NOT NULL UNIQUE,
    reference   TEXT NOT NULL UNIQUE,
    to_number   TEXT NOT NULL,
    sender      TEXT NOT NULL,
    body        TEXT NOT NULL,
    segments    INTEGER NOT NULL,
    encoding    TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    status_at   TEXT
)
"""
_COLUMNS = (
    "provider_id, reference, to_number, sender, body, segments, encoding, status, created_at, status_at"
)


def mask_phone(number: str) -> str:
    """Only the last two digits, so a log line cannot be tied to a person."""
    return "***" + number[-2:]


def _row_to_sms(row: sqlite3.Row) -> StoredSms:
    provider_id, reference, to, sender, body, segments, encoding, status, created_at, status_at = row
    return StoredSms(
        provider_id=provider_id,
        reference=reference,
        to=to,
        sender=sender,
        body=body,
        segments=segments,
        encoding=SmsEncoding(encoding),
        status=DeliveryStatus(status),
        created_at=datetime.fromisoformat(created_at),
        status_at=datetime.fromisoformat(status_at) if status_at else None,
    )


class OutboxSmsProvider:
    """An ``SmsProvider`` that keeps every message in a local SQLite file."""

    name = NAME

    def __init__(self, path: Path, dlr_key: bytes, *, echo: bool) -> None:
        self.path = path
        self._dlr_key = dlr_key
        self.echo = echo
        # Phone numbers are personal data: the file is private to the owner (SqliteFile creates it 0600).
        self._db = SqliteFile(path, _SCHEMA)

    # --- storage -----------------------------------------------------------------------------------

    def _store(self, message: SmsMessage, encoding: SmsEncoding, segments: int) -> tuple[StoredSms, bool]:
        """Insert unless the reference exists; return the stored message and whether it is new."""
        now = datetime.now(UTC).isoformat()
        provider_id = f"outbox-{uuid.uuid4().hex}"
        with self._db.transaction() as conn:
            cursor = conn.execute(
                f"INSERT INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) "
                "ON CONFLICT(reference) DO NOTHING",
                (
                    provider_id,
                    message.reference,
                    message.to,
                    message.sender,
                    message.body,
                    segments,
                    encoding.value,
                    DeliveryStatus.SENT.value,
                    now,
                ),
            )
            created = cursor.rowcount == 1
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE reference = ?", (message.reference,)
            ).fetchone()
        return _row_to_sms(row), created

    def _list(self, limit: int) -> list[StoredSms]:
        with contextlib.closing(self._db.connect()) as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM messages ORDER BY seq DESC LIMIT ?", (limit,))
            return [_row_to_sms(row) for row in rows.fetchall()]

    def _set_status(self, provider_id: str, status: DeliveryStatus) -> bool:
        with contextlib.closing(self._db.connect()) as conn:
            cursor = conn.execute(
                "UPDATE messages SET status = ?, status_at = ? WHERE provider_id = ?",
                (status.value, datetime.now(UTC).isoformat(), provider_id),
            )
            return cursor.rowcount == 1

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
        stored, created = await asyncio.to_thread(self._store, message, encoding, segments)
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

    async def messages(self, limit: int = 100) -> list[StoredSms]:
        """Stored messages, newest first."""
        if limit < 1:
            raise ValidationError("limit must be at least 1.", field="limit")
        return await asyncio.to_thread(self._list, limit)

    async def mark_delivered(self, provider_id: str) -> None:
        """Pretend the handset confirmed delivery."""
        if not await asyncio.to_thread(self._set_status, provider_id, DeliveryStatus.DELIVERED):
            raise NotFound(f"No outbox message {provider_id!r}.", field="provider_id")


def _factory(settings: OutboxSettings, context: ProviderContext) -> OutboxSmsProvider:
    path = settings.path or context.settings.data_dir / "sms-outbox.sqlite3"
    if settings.signing_secret is not None:
        key = settings.signing_secret.get_secret_value().encode()
    else:
        key = context.derive_key(DLR_KEY_PURPOSE)
    return OutboxSmsProvider(path, key, echo=settings.echo)


@hookimpl
def register_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.SMS,
            name=NAME,
            factory=_factory,
            settings_model=OutboxSettings,
            description="Stores SMS in a local SQLite outbox; nothing is sent.",
            test_only=True,
        )
    ]


@hookimpl
def plugin_info() -> dict[str, str]:
    return {"description": "SMS outbox for development and tests: messages are stored, never sent."}
