"""SMS: tell the patient something happened. Never health content in the text.

``reference`` is our idempotency key: sending the same reference twice must not send two messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable


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
