"""The contract every SMS provider keeps, run against each one the plugins offer.

Provider-specific setup (credentials, a fake server, how to sign a delivery report, how to see what was
sent) lives in a driver per provider name. A provider without a driver fails here on purpose: a new
provider is not done until the contract runs against it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pytest

from legetime.core.platform.errors import IdempotencyConflict, ProviderError, ValidationError
from legetime.core.platform.providers import Capability, ProviderSpec
from legetime.core.platform.providers.sms import DeliveryStatus, SmsMessage, SmsProvider
from legetime.core.platform.providers.sms_segments import encode_info
from tests.support import build_provider, offered_specs


class SmsDriver(Protocol):
    def build(self, spec: ProviderSpec, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any: ...

    async def sent_count(self, provider: Any, reference: str) -> int:
        """How many messages with this reference went (or would go) to the network."""
        ...

    def delivery_report(
        self, provider_id: str, status: DeliveryStatus, at: datetime
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of a validly signed delivery report, as the provider's network sends it."""
        ...


class OutboxDriver:
    secret = "contract-test-outbox-dlr-secret"

    def build(self, spec: ProviderSpec, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
        monkeypatch.setenv("LEGETIME_SMS_OUTBOX_SIGNING_SECRET", self.secret)
        return build_provider(spec, data_dir)

    async def sent_count(self, provider: Any, reference: str) -> int:
        return sum(stored.reference == reference for stored in await provider.messages(limit=1000))

    def delivery_report(
        self, provider_id: str, status: DeliveryStatus, at: datetime
    ) -> tuple[dict[str, str], bytes]:
        body = json.dumps({"id": provider_id, "status": status.value, "at": at.isoformat()}).encode()
        signature = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return {"X-Outbox-Signature": signature, "Content-Type": "application/json"}, body


DRIVERS: dict[str, SmsDriver] = {"outbox": OutboxDriver()}


@pytest.fixture(params=offered_specs(Capability.SMS), ids=lambda spec: spec.name)
def spec(request: pytest.FixtureRequest) -> ProviderSpec:
    spec: ProviderSpec = request.param
    return spec


@pytest.fixture
def driver(spec: ProviderSpec) -> SmsDriver:
    if spec.name not in DRIVERS:
        pytest.fail(f"SMS provider {spec.name!r} has no contract driver; add one to DRIVERS")
    return DRIVERS[spec.name]


@pytest.fixture
def provider(spec: ProviderSpec, driver: SmsDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return driver.build(spec, tmp_path, monkeypatch)


def message(body: str = "Hei! Legen har svart. Logg inn for å lese svaret.", **changes: str) -> SmsMessage:
    fields = {"to": "+4791234567", "body": body, "sender": "Legetime", "reference": "case-1:answered"}
    return SmsMessage(**{**fields, **changes})


def test_implements_the_protocol(provider: Any, spec: ProviderSpec) -> None:
    assert isinstance(provider, SmsProvider)
    assert provider.name == spec.name


@pytest.mark.parametrize(
    "body",
    [
        "Hei",
        "Svar på henvendelsen din er klart. Vennlig hilsen Legetime — æøå ÆØÅ",
        "Pris: 350 kr [betalt] {ok} €",
        "æøå" * 60,
        "Hei 😀",
        "Cześć " * 20,
    ],
    ids=["short", "norwegian", "extension", "two-gsm-segments", "emoji", "ucs2-long"],
)
async def test_receipt_counts_like_the_core(provider: Any, body: str) -> None:
    receipt = await provider.send(message(body))
    assert isinstance(receipt.provider_id, str) and receipt.provider_id
    assert (receipt.encoding, receipt.segments) == encode_info(body)


async def test_same_reference_sends_once(provider: Any, driver: SmsDriver) -> None:
    first = await provider.send(message())
    second = await provider.send(message())
    assert second.provider_id == first.provider_id
    assert second == first
    assert await driver.sent_count(provider, "case-1:answered") == 1


async def test_different_references_send_twice(provider: Any, driver: SmsDriver) -> None:
    first = await provider.send(message(reference="a"))
    second = await provider.send(message(reference="b"))
    assert first.provider_id != second.provider_id
    assert await driver.sent_count(provider, "a") == await driver.sent_count(provider, "b") == 1


@pytest.mark.parametrize("changes", [{"body": "Et annet budskap"}, {"to": "+4799999999"}])
async def test_reused_reference_for_another_message_conflicts(
    provider: Any, driver: SmsDriver, changes: dict[str, str]
) -> None:
    await provider.send(message())
    with pytest.raises(IdempotencyConflict):
        await provider.send(message(**changes))
    assert await driver.sent_count(provider, "case-1:answered") == 1


@pytest.mark.parametrize(
    "to",
    [
        "91234567",
        "004791234567",
        "+47 912 34 567",
        "+0791234567",
        "+47",
        "",
        "+4791234567x",
        "+4791234567\n",
        "+47٩١٢٣٤٥٦٧",  # Arabic-Indic digits
        "+4791234567123456",  # longer than E.164 allows
    ],
)
async def test_invalid_number_is_rejected(provider: Any, driver: SmsDriver, to: str) -> None:
    with pytest.raises(ValidationError) as info:
        await provider.send(message(to=to))
    assert info.value.field == "to"
    assert await driver.sent_count(provider, "case-1:answered") == 0


@pytest.mark.parametrize("body", ["", "   "])
async def test_empty_body_is_rejected(provider: Any, body: str) -> None:
    with pytest.raises(ValidationError) as info:
        await provider.send(message(body))
    assert info.value.field == "body"


@pytest.mark.parametrize("status", [DeliveryStatus.DELIVERED, DeliveryStatus.FAILED])
async def test_delivery_report_round_trip(provider: Any, driver: SmsDriver, status: DeliveryStatus) -> None:
    receipt = await provider.send(message())
    at = datetime(2025, 3, 5, 14, 30, 12, tzinfo=UTC)
    headers, body = driver.delivery_report(receipt.provider_id, status, at)
    report = await provider.parse_delivery_report(headers, body)
    assert report.provider_id == receipt.provider_id
    assert report.status is status
    assert report.at == at


async def test_forged_delivery_reports_are_rejected(provider: Any, driver: SmsDriver) -> None:
    receipt = await provider.send(message())
    headers, body = driver.delivery_report(
        receipt.provider_id, DeliveryStatus.FAILED, datetime(2025, 3, 5, 14, 30, tzinfo=UTC)
    )
    forgeries = [
        (headers, body.replace(b"failed", b"delivered")),  # body changed under a valid signature
        (headers, body + b" "),
        ({k: v for k, v in headers.items() if k.lower() == "content-type"}, body),  # signature missing
        ({k: ("0" * len(v) if k.lower() != "content-type" else v) for k, v in headers.items()}, body),
    ]
    for forged_headers, forged_body in forgeries:
        with pytest.raises(ProviderError):
            await provider.parse_delivery_report(forged_headers, forged_body)
