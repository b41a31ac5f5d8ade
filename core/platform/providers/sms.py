"""SMS: tell the patient something happened. Never health content in the text.

``reference`` is our idempotency key: sending the same reference twice must not send two messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from legetime.core.platform.errors import ErrorCode, ValidationError

E164 = re.compile(r"\+[1-9]\d{6,14}", re.ASCII)
r"""A phone number in E.164 (``fullmatch``; ASCII: "$" would accept a trailing newline, "\d" other digits)."""


class SmsEncoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class SmsMessage:
    to: str
    """E.164, already validated."""
    body: str
    sender: str
    reference: str


@dataclass(frozen=True)
class SmsReceipt:
    provider_id: str
    segments: int
    encoding: SmsEncoding
    status: DeliveryStatus = DeliveryStatus.QUEUED


@dataclass(frozen=True)
class DeliveryReport:
    provider_id: str
    status: DeliveryStatus
    at: datetime
    error: str | None = None


@runtime_checkable
class SmsProvider(Protocol):
    name: str

    async def send(self, message: SmsMessage) -> SmsReceipt: ...

    async def parse_delivery_report(self, headers: Mapping[str, str], body: bytes) -> DeliveryReport: ...


def check_sms_message(message: SmsMessage) -> None:
    """What every provider refuses alike, before its own checks (sender, length): a recipient not in
    E.164, an empty body, no reference (the idempotency key)."""
    if not E164.fullmatch(message.to):
        raise ValidationError("The phone number must be in E.164 format, e.g. +4791234567.", field="to")
    if not message.body.strip():
        raise ValidationError("The message is empty.", field="body", code=ErrorCode.REQUIRED)
    if not message.reference:
        raise ValidationError("A reference (idempotency key) is required.", field="reference")
