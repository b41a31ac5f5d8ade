"""An ``SmsProvider`` for the Example SMS gateway, a made-up HTTP API shaped like real SMS gateways.

- ``POST /v1/messages`` with ``Authorization: Bearer <api key>`` and JSON
  ``{"to", "from", "text", "client_ref"}`` answers ``201 {"id"}`` for a new message and ``200 {"id"}``
  when ``client_ref`` was already used for the same message (which is not sent again), ``409`` when it was
  used for another message;
- delivery reports are POSTed to the platform as JSON ``{"id", "status", "timestamp", "error"}`` signed in
  ``X-Gateway-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook secret>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from legetime.sdk import (
    DeliveryReport,
    DeliveryStatus,
    ErrorCode,
    HttpsUrl,
    IdempotencyConflict,
    ProviderError,
    ProviderSettings,
    ProviderUnavailable,
    SmsEncoding,
    SmsMessage,
    SmsReceipt,
    ValidationError,
    encode_info,
)
from legetime_example_sms.ledger import Ledger

NAME = "example-gateway"
SIGNATURE_HEADER = "X-Gateway-Signature"
# fullmatch and ASCII: "$" alone would accept a trailing newline and "\d" other scripts' digits.
E164 = re.compile(r"\+[1-9]\d{6,14}", re.ASCII)
REPORTED_STATUS = {"delivered": DeliveryStatus.DELIVERED, "failed": DeliveryStatus.FAILED}


class ExampleGatewaySettings(ProviderSettings):
    """Settings of the Example SMS gateway (``LEGETIME_SMS_EXAMPLE_GATEWAY_*``)."""

    model_config = SettingsConfigDict(env_prefix="LEGETIME_SMS_EXAMPLE_GATEWAY_")

    base_url: HttpsUrl = Field(default="https://sms.example.net", description="Address of the gateway's API.")
    api_key: SecretStr = Field(description="API key of the gateway account.")
    webhook_secret: SecretStr = Field(description="Secret the gateway signs delivery reports with.")
    timeout_seconds: float = Field(default=10.0, gt=0, description="Timeout of one call to the gateway.")


class ExampleGatewaySms:
    """Sends through the gateway; the gateway's ``client_ref`` carries our idempotency ``reference``."""

    name = NAME

    def __init__(self, settings: ExampleGatewaySettings, ledger: Ledger) -> None:
        self.settings = settings
        self.ledger = ledger

    async def send(self, message: SmsMessage) -> SmsReceipt:
        if not E164.fullmatch(message.to):
            raise ValidationError("The phone number must be in E.164 format, e.g. +4791234567.", field="to")
        if not message.body.strip():
            raise ValidationError("The message is empty.", field="body", code=ErrorCode.REQUIRED)
        known = await self.ledger.find(message)
        if known is not None:  # sent before (by any process): the same receipt, no call
            gateway_id, segments, encoding = known
            return SmsReceipt(gateway_id, segments, SmsEncoding(encoding), DeliveryStatus.SENT)
        encoding_used, segments = encode_info(message.body)
        answer = await self._post_message(
            {"to": message.to, "from": message.sender, "text": message.body, "client_ref": message.reference}
        )
        await self.ledger.record(message, answer["id"], segments, encoding_used.value)
        return SmsReceipt(
            provider_id=answer["id"], segments=segments, encoding=encoding_used, status=DeliveryStatus.SENT
        )

    async def _post_message(self, payload: dict[str, str]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.settings.api_key.get_secret_value()}"}
        # A client per call: the platform may call from more than one event loop (API, worker).
        try:
            async with httpx.AsyncClient(
                base_url=self.settings.base_url, timeout=self.settings.timeout_seconds
            ) as client:
                response = await client.post("/v1/messages", json=payload, headers=headers)
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"The SMS gateway is unreachable ({type(exc).__name__}).") from None
        if response.status_code == 409:
            raise IdempotencyConflict(
                "This reference was already used for a different message.", field="reference"
            )
        if response.status_code >= 500:
            raise ProviderUnavailable(f"The SMS gateway failed ({response.status_code}).")
        if response.status_code not in (200, 201):
            raise ProviderError(f"The SMS gateway refused the message ({response.status_code}).")
        answer: dict[str, Any] = response.json()
        if not isinstance(answer.get("id"), str) or not answer["id"]:
            raise ProviderError("The SMS gateway answered without a message id.")
        return answer

    async def parse_delivery_report(self, headers: Mapping[str, str], body: bytes) -> DeliveryReport:
        """Verify the report's signature, then parse it; it changes nothing (the platform decides)."""
        signature = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), "")
        secret = self.settings.webhook_secret.get_secret_value().encode()
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.strip().encode(), expected.encode()):
            raise ProviderError("Delivery report signature is missing or invalid.", code=ErrorCode.INVALID)
        try:
            data = json.loads(body)
            provider_id, status, at = data["id"], REPORTED_STATUS[data["status"]], data["timestamp"]
            error = data.get("error")
            if not isinstance(provider_id, str) or not provider_id or not isinstance(at, str):
                raise ValueError("id and timestamp must be strings")
            when = datetime.fromisoformat(at)
            if when.tzinfo is None:
                raise ValueError("timestamp must carry a UTC offset")
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(f"Malformed delivery report: {exc}", code=ErrorCode.INVALID) from None
        return DeliveryReport(provider_id=provider_id, status=status, at=when, error=error)
