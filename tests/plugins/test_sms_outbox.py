"""What the SMS outbox does beyond the SMS contract: persistence, operator methods, settings, logging."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from legetime.core.platform.config import Settings
from legetime.core.platform.errors import (
    ErrorCode,
    IdempotencyConflict,
    NotFound,
    ProviderError,
    ValidationError,
)
from legetime.core.platform.providers import Capability, ProviderContext
from legetime.core.platform.providers.sms import DeliveryStatus, SmsEncoding, SmsMessage
from legetime.plugins.sms import outbox
from legetime.plugins.sms.outbox import OutboxSettings, OutboxSmsProvider
from legetime.testing import plugin_database
from tests.support import offered_specs


def derive_key(purpose: str) -> bytes:
    return hashlib.sha256(b"plugin-test-secret:" + purpose.encode()).digest()


def build(data_dir: Path, **settings: object) -> OutboxSmsProvider:
    platform_settings = Settings(data_dir=data_dir)
    database = plugin_database(platform_settings.resolved_database_url)
    context = ProviderContext(settings=platform_settings, derive_key=derive_key, database=database)
    return outbox._factory(OutboxSettings(**settings), context)  # type: ignore[arg-type]


def sms(reference: str = "ref-1", body: str = "Legen har svart deg.", to: str = "+4791234567") -> SmsMessage:
    return SmsMessage(to=to, body=body, sender="Legetime", reference=reference)


def signed(key: bytes, payload: dict[str, object]) -> tuple[dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    return {"x-outbox-signature": hmac.new(key, body, hashlib.sha256).hexdigest()}, body


def test_registered_as_test_only_sms_provider() -> None:
    (spec,) = [s for s in offered_specs(Capability.SMS) if s.name == "outbox"]
    assert spec.test_only
    assert spec.settings_model is OutboxSettings
    assert outbox.plugin_info()["description"]


async def test_state_survives_a_new_instance(tmp_path: Path) -> None:
    first = await build(tmp_path).send(sms())
    again = build(tmp_path)
    assert [m.provider_id for m in await again.messages()] == [first.provider_id]
    assert await again.send(sms()) == first
    assert len(await again.messages()) == 1


async def test_messages_are_in_the_platforms_database_private_to_its_owner(tmp_path: Path) -> None:
    await build(tmp_path).send(sms())
    database = tmp_path / "legetime-plugins.db"  # beside the platform's own legetime.db
    assert stat.S_IMODE(database.stat().st_mode) == 0o600  # phone numbers are personal data
    assert {path.name for path in tmp_path.iterdir()} <= {  # noqa: ASYNC240 - a test's own directory
        "legetime.db",
        database.name,
        f"{database.name}-wal",
        f"{database.name}-shm",
        "secret_key",
    }


async def test_two_outboxes_keep_to_their_own_messages(tmp_path: Path) -> None:
    first, second = build(tmp_path), build(tmp_path)
    second.outbox = "other"
    await first.send(sms())
    assert await second.messages() == []
    await second.send(sms())  # the same reference, another outbox: stored again
    assert len(await first.messages()) == len(await second.messages()) == 1


async def test_messages_newest_first_with_limit(tmp_path: Path) -> None:
    provider = build(tmp_path)
    for n in range(3):
        await provider.send(sms(reference=f"ref-{n}", body=f"Melding {n}"))
    stored = await provider.messages()
    assert [m.reference for m in stored] == ["ref-2", "ref-1", "ref-0"]
    assert [m.reference for m in await provider.messages(limit=2)] == ["ref-2", "ref-1"]
    newest = stored[0]
    assert (newest.to, newest.body, newest.sender) == ("+4791234567", "Melding 2", "Legetime")
    assert (newest.segments, newest.encoding, newest.status) == (1, SmsEncoding.GSM7, DeliveryStatus.SENT)
    assert newest.created_at.tzinfo is not None and newest.status_at is None
    with pytest.raises(ValidationError):
        await provider.messages(limit=0)


async def test_mark_delivered(tmp_path: Path) -> None:
    provider = build(tmp_path)
    receipt = await provider.send(sms())
    await provider.mark_delivered(receipt.provider_id)
    (stored,) = await provider.messages()
    assert stored.status is DeliveryStatus.DELIVERED and stored.status_at is not None
    with pytest.raises(NotFound):
        await provider.mark_delivered("outbox-unknown")


async def test_concurrent_sends_of_one_reference_store_one_message(tmp_path: Path) -> None:
    provider = build(tmp_path)
    receipts = await asyncio.gather(*(build(tmp_path).send(sms()) for _ in range(8)))
    assert len({r.provider_id for r in receipts}) == 1
    assert len(await provider.messages()) == 1


async def test_conflicting_sender_is_an_idempotency_conflict(tmp_path: Path) -> None:
    provider = build(tmp_path)
    await provider.send(sms())
    with pytest.raises(IdempotencyConflict):
        await provider.send(
            SmsMessage(to="+4791234567", body="Legen har svart deg.", sender="X", reference="ref-1")
        )


async def test_at_most_ten_segments(tmp_path: Path) -> None:
    provider = build(tmp_path)
    receipt = await provider.send(sms(body="a" * 1530))
    assert receipt.segments == 10
    with pytest.raises(ValidationError) as info:
        await provider.send(sms(reference="ref-2", body="a" * 1531))
    assert info.value.field == "body"
    assert len(await provider.messages()) == 1


async def test_default_delivery_report_key_is_derived(tmp_path: Path) -> None:
    provider = build(tmp_path)
    headers, body = signed(
        derive_key("sms-outbox-dlr"), {"id": "outbox-1", "status": "failed", "at": "2025-03-05T12:00:00Z"}
    )
    report = await provider.parse_delivery_report(headers, body)
    assert report.status is DeliveryStatus.FAILED
    assert report.at == datetime(2025, 3, 5, 12, tzinfo=UTC)


async def test_delivery_report_carries_the_error(tmp_path: Path) -> None:
    provider = build(tmp_path, signing_secret="s3cret")
    headers, body = signed(
        b"s3cret",
        {"id": "outbox-1", "status": "failed", "at": "2025-03-05T12:00:00+01:00", "error": "absent"},
    )
    report = await provider.parse_delivery_report(headers, body)
    assert report.error == "absent"


@pytest.mark.parametrize(
    "payload",
    [
        {"id": "outbox-1", "status": "queued", "at": "2025-03-05T12:00:00Z"},
        {"id": "outbox-1", "status": "delivered", "at": "2025-03-05T12:00:00"},  # no offset
        {"id": "outbox-1", "status": "delivered", "at": "yesterday"},
        {"id": "", "status": "delivered", "at": "2025-03-05T12:00:00Z"},
        {"status": "delivered", "at": "2025-03-05T12:00:00Z"},
        ["not", "an", "object"],
    ],
)
async def test_malformed_signed_report_is_invalid(tmp_path: Path, payload: object) -> None:
    provider = build(tmp_path, signing_secret="s3cret")
    body = json.dumps(payload).encode()
    headers = {"X-Outbox-Signature": hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()}
    with pytest.raises(ProviderError) as info:
        await provider.parse_delivery_report(headers, body)
    assert info.value.code is ErrorCode.INVALID


async def test_report_signed_with_another_key_is_rejected(tmp_path: Path) -> None:
    provider = build(tmp_path, signing_secret="s3cret")
    headers, body = signed(b"other", {"id": "outbox-1", "status": "delivered", "at": "2025-03-05T12:00:00Z"})
    with pytest.raises(ProviderError) as info:
        await provider.parse_delivery_report(headers, body)
    assert info.value.code is ErrorCode.INVALID


def test_settings_from_environment_mask_the_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LEGETIME_SMS_OUTBOX_SIGNING_SECRET", "very-secret-value")
    monkeypatch.setenv("LEGETIME_SMS_OUTBOX_ECHO", "false")
    settings = OutboxSettings()
    assert settings.echo is False
    assert settings.signing_secret is not None
    assert settings.signing_secret.get_secret_value() == "very-secret-value"
    assert "very-secret-value" not in repr(settings)
    assert "very-secret-value" not in settings.model_dump_json()


async def test_echo_logs_masked_recipient_and_short_preview(tmp_path: Path) -> None:
    provider = build(tmp_path)
    body = "Hei! Legen har svart på henvendelsen din. Logg inn på legetime.no for å lese svaret."
    with capture_logs() as logs:
        await provider.send(sms(body=body, to="+4791234567"))
        await provider.send(sms(body=body, to="+4791234567"))  # a replay is not logged again
    (entry,) = logs
    assert entry["event"] == "sms.outbox.stored"
    assert entry["to"] == "***67"
    assert entry["body_preview"] == body[:40]
    assert entry["body_length"] == len(body)
    flat = json.dumps(entry, default=str)
    assert "91234567" not in flat
    assert body not in flat


async def test_echo_can_be_turned_off(tmp_path: Path) -> None:
    provider = build(tmp_path, echo=False)
    with capture_logs() as logs:
        await provider.send(sms())
    assert logs == []
