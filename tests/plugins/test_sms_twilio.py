"""Twilio Programmable Messaging through Twilio's SDK, against a local Twilio API (``tests/fakes/twilio.py``):
what is sent, refusals against outages (the core fails over on one and retries on the other), sending once
per reference across lost answers, timeouts and crashes, signed status callbacks, and logs without numbers
or text, the reference map in the plugin's table (shared by processes on one database). The shared SMS
contract runs it as well."""

from __future__ import annotations

import asyncio
import logging
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from structlog.testing import capture_logs

from legetime.core.platform.config import Settings
from legetime.core.platform.db.plugin_tables import PluginDatabase
from legetime.core.platform.errors import (
    IdempotencyConflict,
    ProviderError,
    ProviderUnavailable,
    ValidationError,
)
from legetime.core.platform.providers import Capability
from legetime.core.platform.providers.sms import DeliveryReport, DeliveryStatus, SmsEncoding, SmsMessage
from legetime.plugins.sms.twilio import TwilioSettings, TwilioSmsProvider, messages
from legetime.testing import build_provider, plugin_database
from tests.fakes.server import serve, serve_fake
from tests.fakes.twilio import TwilioFake, sign
from tests.support import HeldOpen, offered_specs, settings_for_fake, until_a_session_waits_for_a_lock

SPEC = next(spec for spec in offered_specs(Capability.SMS) if spec.name == "twilio")
PUBLIC_URL = "https://legetime.example"
CALLBACK_URL = f"{PUBLIC_URL}/webhooks/sms/twilio"
TO, BODY = "+4791234567", "Hei! Legen har svart. Logg inn for å lese svaret."
KEY = b"k" * 32


@pytest.fixture
def fake() -> Iterator[TwilioFake]:
    with serve_fake(TwilioFake()) as fake:
        yield fake


def settings_for(fake: TwilioFake, **changes: Any) -> TwilioSettings:
    settings: TwilioSettings = settings_for_fake(SPEC, fake, **changes)
    return settings


def build(
    fake: TwilioFake,
    data_dir: Path,
    *,
    later: timedelta = timedelta(0),
    database: PluginDatabase | None = None,
    **changes: Any,
) -> Any:
    """A provider on the database of a platform in ``data_dir`` (a new instance is a new process), or on
    ``database``; its clock ``later`` ahead."""
    return TwilioSmsProvider(
        settings_for(fake, **changes),
        callback_url=CALLBACK_URL,
        database=database or plugin_database(Settings.defaults(data_dir=data_dir).resolved_database_url),
        fingerprint_key=KEY,
        now=lambda: datetime.now(UTC) + later,
    )


async def stored(provider: TwilioSmsProvider, reference: str) -> Any:
    """The reference's row in the plugin's table, as the provider's database has it."""
    async with provider._db.transaction() as session:
        return (await session.execute(messages.select().where(messages.c.reference == reference))).first()


def companion_files(data_dir: Path) -> bytes:
    """What the embedded default's plugin database holds (its file and WAL), each file private; and no
    state file of the plugin's own beside them."""
    files = sorted(data_dir.glob("legetime-plugins.db*"))
    assert files and all(stat.S_IMODE(file.stat().st_mode) == 0o600 for file in files)
    assert not list(data_dir.glob("sms-twilio*"))
    return b"".join(file.read_bytes() for file in files)


def sms(reference: str = "case-1:answered", **changes: str) -> SmsMessage:
    return SmsMessage(**{"to": TO, "body": BODY, "sender": "Legetime", "reference": reference, **changes})


AFTER_LEASE = timedelta(minutes=1)


# --- Sending --------------------------------------------------------------------------------------


async def test_a_message_is_created_as_twilio_documents(fake: TwilioFake, tmp_path: Path) -> None:
    provider = build_provider(SPEC, tmp_path, settings_for(fake), public_url=PUBLIC_URL)
    receipt = await provider.send(sms())
    (attempt,) = fake.attempts
    assert attempt.form == {
        "To": TO,
        "From": "Legetime",
        "Body": BODY,
        "StatusCallback": CALLBACK_URL,
        "SmartEncoded": "false",
    }
    assert receipt.provider_id == attempt.sid and receipt.provider_id.startswith("SM")
    assert (receipt.status, receipt.segments, receipt.encoding) == (
        DeliveryStatus.QUEUED,
        1,
        SmsEncoding.GSM7,
    )
    row = await stored(provider, "case-1:answered")
    assert (row.state, row.sid, row.segments) == ("sent", receipt.provider_id, 1)
    # On the embedded default the table is in the companion file next to the platform's database: it is
    # private, and holds the MessageSid but neither the number nor the text.
    written = companion_files(tmp_path)
    assert receipt.provider_id.encode() in written
    assert b"91234567" not in written and b"Legen" not in written


async def test_an_api_key_authenticates_and_a_wrong_one_is_a_refusal(
    fake: TwilioFake, tmp_path: Path
) -> None:
    keyed = build(fake, tmp_path, api_key_sid=fake.api_key_sid, api_key_secret=fake.api_key_secret)
    assert (await keyed.send(sms("a"))).provider_id in fake.messages
    wrong = build(fake, tmp_path, api_key_sid=fake.api_key_sid, api_key_secret="not-the-secret")
    with pytest.raises(ProviderError) as caught:
        await wrong.send(sms("b"))
    assert not isinstance(caught.value, ProviderUnavailable) and "20003" in caught.value.message
    assert len(fake.messages) == 1


async def test_a_messaging_service_chooses_the_sender(fake: TwilioFake, tmp_path: Path) -> None:
    (service,) = fake.messaging_services
    provider = build(fake, tmp_path, messaging_service_sid=service)
    receipt = await provider.send(sms(sender="anything"))
    assert fake.attempts[0].form["MessagingServiceSid"] == service and "From" not in fake.attempts[0].form
    assert receipt.status is DeliveryStatus.QUEUED  # "accepted"
    unknown = build(fake, tmp_path, messaging_service_sid="MG" + "0" * 32)
    with pytest.raises(ProviderError, match="20404"):
        await unknown.send(sms("other"))


@pytest.mark.parametrize("sender", ["Legetime!", "12345", "Twelve chars", "Lege\ntime", "", "+4759990000x"])
async def test_a_sender_twilio_would_refuse_is_refused_before_sending(
    fake: TwilioFake, tmp_path: Path, sender: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await build(fake, tmp_path).send(sms(sender=sender))
    assert caught.value.field == "sender" and not fake.requests


async def test_a_body_over_twilios_limit_is_refused_before_sending(fake: TwilioFake, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        await build(fake, tmp_path).send(sms(body="a" * 1601))
    assert caught.value.field == "body" and not fake.requests


async def test_a_number_of_the_account_may_send(fake: TwilioFake, tmp_path: Path) -> None:
    (number,) = fake.numbers
    receipt = await build(fake, tmp_path).send(sms(sender=number))
    assert fake.messages[receipt.provider_id].from_ == number


@pytest.mark.parametrize(
    ("setup", "changes", "code", "field"),
    [
        (lambda f: f.opted_out.add(TO), {}, "21610", "to"),
        (lambda f: None, {"sender": "+4759990000"}, "21606", "sender"),
    ],
    ids=["opted-out", "not-our-number"],
)
async def test_a_refusal_is_definitive_names_the_code_and_sends_nothing(
    fake: TwilioFake, tmp_path: Path, setup: Any, changes: dict[str, str], code: str, field: str
) -> None:
    setup(fake)
    provider = build(fake, tmp_path)
    with pytest.raises(ProviderError) as caught:
        await provider.send(sms(**changes))
    assert not isinstance(caught.value, ProviderUnavailable)
    assert code in caught.value.message and caught.value.field == field
    assert "91234567" not in caught.value.message and not fake.messages
    # Nothing was made, so the reference is free: fixed, the same reference sends at once.
    fake.opted_out.clear()
    fake.numbers.add("+4759990000")
    assert (await provider.send(sms(**changes))).provider_id in fake.messages


async def test_rate_limited_is_unavailable_and_the_retry_sends_once(fake: TwilioFake, tmp_path: Path) -> None:
    provider = build(fake, tmp_path)
    fake.rate_limited = 1
    with pytest.raises(ProviderUnavailable, match="20429"):
        await provider.send(sms())
    assert not fake.messages
    receipt = await provider.send(sms())  # a 429 made nothing: no lease to wait for, nothing to look up
    assert list(fake.messages) == [receipt.provider_id]
    assert not [r for r in fake.requests if r["method"] == "GET"]


async def test_a_reused_reference_with_another_sender_conflicts(fake: TwilioFake, tmp_path: Path) -> None:
    provider = build(fake, tmp_path)
    await provider.send(sms())
    with pytest.raises(IdempotencyConflict):
        await provider.send(sms(sender="Annen"))
    assert len(fake.messages) == 1


# --- Once per reference, whatever happens between us and Twilio -----------------------------------


async def test_a_lost_answer_is_recovered_without_a_second_sms(fake: TwilioFake, tmp_path: Path) -> None:
    provider = build(fake, tmp_path)
    fake.drop_next_answer = True
    with pytest.raises(ProviderUnavailable):
        await provider.send(sms())
    (made,) = fake.messages  # Twilio made it; we did not hear
    receipt = await provider.send(sms())
    assert receipt.provider_id == made and len(fake.messages) == 1
    assert await provider.send(sms()) == receipt
    assert await provider.reference_of(made) == "case-1:answered"


async def test_a_crash_while_sending_is_recovered_by_another_process(
    fake: TwilioFake, tmp_path: Path
) -> None:
    fake.slow_next_answer = 2.0
    first = asyncio.create_task(build(fake, tmp_path).send(sms()))
    assert await asyncio.to_thread(fake.made.wait, 5)
    first.cancel()  # the process dies after Twilio made the Message, before the MessageSid was recorded
    with pytest.raises(asyncio.CancelledError):
        await first
    (made,) = fake.messages
    with pytest.raises(ProviderUnavailable, match="being sent"):  # still leased to the dead attempt
        await build(fake, tmp_path).send(sms())
    assert len(fake.attempts) == 1
    receipt = await build(fake, tmp_path, later=AFTER_LEASE).send(sms())
    assert receipt.provider_id == made and len(fake.attempts) == 1


async def test_a_timeout_holds_the_reference_until_twilio_must_have_answered(
    fake: TwilioFake, tmp_path: Path
) -> None:
    fake.slow_next_answer = 1.5
    with pytest.raises(ProviderUnavailable):
        await build(fake, tmp_path, timeout_seconds=0.3).send(sms())
    with pytest.raises(ProviderUnavailable, match="being sent"):
        await build(fake, tmp_path, timeout_seconds=0.3).send(sms())
    receipt = await build(fake, tmp_path, later=AFTER_LEASE).send(sms())
    assert list(fake.messages) == [receipt.provider_id] and len(fake.attempts) == 1


async def test_an_attempt_that_never_reached_twilio_is_sent_after_looking(
    fake: TwilioFake, tmp_path: Path
) -> None:
    provider = build(fake, tmp_path)
    fake.down = True
    with pytest.raises(ProviderUnavailable):
        await provider.send(sms())
    fake.down = False
    receipt = await provider.send(sms())
    lookups = [r for r in fake.requests if r["method"] == "GET"]
    assert len(lookups) == 1 and urlencode({"To": TO, "From": "Legetime"}) in lookups[0]["query"]
    assert list(fake.messages) == [receipt.provider_id]


async def test_recovery_never_adopts_another_references_message(fake: TwilioFake, tmp_path: Path) -> None:
    provider = build(fake, tmp_path)
    first = await provider.send(sms("a"))  # the same recipient, sender and text, moments earlier
    fake.down = True
    with pytest.raises(ProviderUnavailable):
        await provider.send(sms("b"))
    fake.down = False
    second = await provider.send(sms("b"))
    assert second.provider_id != first.provider_id and len(fake.messages) == 2


async def test_an_unreachable_twilio_is_unavailable(fake: TwilioFake, tmp_path: Path) -> None:
    provider = build(fake, tmp_path, base_url="http://127.0.0.1:9")
    with pytest.raises(ProviderUnavailable):
        await provider.send(sms())
    with pytest.raises(ProviderUnavailable, match="not reachable"):  # never connected: tried again at once
        await provider.send(sms())


async def test_a_lease_left_in_the_table_is_honoured_then_recovered(fake: TwilioFake, tmp_path: Path) -> None:
    """A process died after Twilio made the Message: its row stayed "sending", leased (edited in here)."""
    provider = build(fake, tmp_path)
    made = await provider.send(sms())
    async with provider._db.transaction() as session:
        await session.execute(
            messages.update()
            .where(messages.c.reference == "case-1:answered")
            .values(state="sending", sid=None, lease_until=datetime.now(UTC) + timedelta(seconds=30))
        )
    with pytest.raises(ProviderUnavailable, match="being sent"):
        await build(fake, tmp_path).send(sms())
    receipt = await build(fake, tmp_path, later=AFTER_LEASE).send(sms())  # looks, finds it, adopts it
    assert receipt.provider_id == made.provider_id and len(fake.attempts) == 1
    assert [r["method"] for r in fake.requests].count("GET") == 1
    assert (await stored(provider, "case-1:answered")).state == "sent"


async def test_an_unreachable_database_is_unavailable_and_nothing_is_sent(fake: TwilioFake) -> None:
    provider = build(
        fake, Path("unused"), database=PluginDatabase("postgresql+asyncpg://nobody@127.0.0.1:9/x")
    )
    with capture_logs() as logs, pytest.raises(ProviderUnavailable, match="state is not available"):
        await provider.send(sms())
    assert not fake.requests, "nothing may be sent without its lease"
    assert [entry["event"] for entry in logs] == ["sms.twilio.state_unavailable"]


@pytest.mark.postgres
async def test_processes_on_one_postgresql_database_send_a_reference_once(
    fake: TwilioFake, tmp_path: Path, fresh_postgres_url: str
) -> None:
    plugin_database(fresh_postgres_url)  # migrated
    held = HeldOpen(fresh_postgres_url)
    a, b = (
        build(fake, tmp_path, database=held),
        build(fake, tmp_path, database=PluginDatabase(fresh_postgres_url)),
    )
    first = asyncio.create_task(a.send(sms()))
    async with asyncio.timeout(10):
        await held.holding.wait()  # the first has claimed the reference, not committed yet
    second = asyncio.create_task(b.send(sms()))
    await until_a_session_waits_for_a_lock(fresh_postgres_url)  # the second finds no row; its insert waits
    held.commit.set()
    with pytest.raises(ProviderUnavailable, match="being sent"):
        await second
    receipt = await first
    assert len(fake.attempts) == 1
    assert await b.send(sms()) == receipt  # the map is shared
    assert await b.reference_of(receipt.provider_id) == "case-1:answered" and len(fake.attempts) == 1


# --- Status callbacks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("twilio_status", "status"),
    [
        ("queued", DeliveryStatus.QUEUED),
        ("accepted", DeliveryStatus.QUEUED),
        ("scheduled", DeliveryStatus.QUEUED),
        ("sending", DeliveryStatus.QUEUED),
        ("sent", DeliveryStatus.SENT),
        ("delivered", DeliveryStatus.DELIVERED),
        ("read", DeliveryStatus.DELIVERED),
        ("undelivered", DeliveryStatus.FAILED),
        ("failed", DeliveryStatus.FAILED),
        ("canceled", DeliveryStatus.FAILED),
    ],
)
async def test_message_status_maps_onto_delivery_status(
    fake: TwilioFake, tmp_path: Path, twilio_status: str, status: DeliveryStatus
) -> None:
    provider = build(fake, tmp_path)
    receipt = await provider.send(sms())
    report = await provider.parse_delivery_report(*fake.status_callback(receipt.provider_id, twilio_status))
    assert (report.provider_id, report.status) == (receipt.provider_id, status)
    assert report.at.tzinfo is not None and abs(datetime.now(UTC) - report.at) < timedelta(seconds=5)


async def test_a_failure_names_twilios_code_and_no_number(fake: TwilioFake, tmp_path: Path) -> None:
    provider = build(fake, tmp_path)
    receipt = await provider.send(sms())
    headers, body = fake.status_callback(receipt.provider_id, "undelivered", error_code=30003)
    report = await provider.parse_delivery_report(headers, body)
    assert report.error == "undelivered: 30003 unreachable destination handset"


async def test_twilio_posts_its_signed_callback_to_the_platforms_url(
    fake: TwilioFake, tmp_path: Path
) -> None:
    reports: list[DeliveryReport | int] = []
    provider: Any = None

    async def receive(request: Request) -> Response:
        try:
            reports.append(await provider.parse_delivery_report(dict(request.headers), await request.body()))
        except ProviderError:
            reports.append(403)
            return Response(status_code=403)
        return Response(status_code=204)

    app = Starlette(routes=[Route("/webhooks/sms/twilio", receive, methods=["POST"])])
    with serve(app) as public_url:
        provider = build_provider(SPEC, tmp_path, settings_for(fake), public_url=public_url)
        receipt = await provider.send(sms())
        status = await asyncio.to_thread(fake.fire_status_callback, receipt.provider_id, "delivered")
    assert fake.attempts[0].form["StatusCallback"] == f"{public_url}/webhooks/sms/twilio"
    assert status == 204
    (report,) = reports
    assert isinstance(report, DeliveryReport) and report.status is DeliveryStatus.DELIVERED


async def test_forged_callbacks_are_rejected(fake: TwilioFake, tmp_path: Path) -> None:
    provider = build(fake, tmp_path)
    sid = (await provider.send(sms())).provider_id
    headers, body = fake.status_callback(sid, "failed")
    params = [
        ("AccountSid", fake.account_sid),
        ("MessageSid", sid),
        ("MessageStatus", "delivered"),
    ]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    forgeries = [
        (headers, body.replace(b"failed", b"delivered")),
        (headers, body + b"&Extra=1"),
        (form, body),
        (
            {**form, "X-Twilio-Signature": sign("wrong-token", CALLBACK_URL, params)},
            urlencode(params).encode(),
        ),
        (  # signed for another address than ours (a callback replayed from elsewhere)
            {**form, "X-Twilio-Signature": sign(fake.auth_token, "https://evil.example/x", params)},
            urlencode(params).encode(),
        ),
        (  # validly signed, but for another account
            {
                **form,
                "X-Twilio-Signature": sign(
                    fake.auth_token, CALLBACK_URL, [*params[1:], ("AccountSid", "AC" + "9" * 32)]
                ),
            },
            urlencode([*params[1:], ("AccountSid", "AC" + "9" * 32)]).encode(),
        ),
        (headers, b"\xff\xfe not form"),
    ]
    for forged_headers, forged_body in forgeries:
        with pytest.raises(ProviderError):
            await provider.parse_delivery_report(forged_headers, forged_body)
    genuine = {**form, "X-Twilio-Signature": sign(fake.auth_token, CALLBACK_URL, params)}
    report = await provider.parse_delivery_report(genuine, urlencode(params).encode())
    assert report.status is DeliveryStatus.DELIVERED  # the same callback, signed right, is taken


# --- Logs, settings, registration -------------------------------------------------------------------


async def test_logs_hold_ids_and_codes_never_the_number_or_the_text(
    fake: TwilioFake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    provider = build(fake, tmp_path)
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        receipt = await provider.send(sms())
        fake.drop_next_answer = True
        with pytest.raises(ProviderUnavailable):
            await provider.send(sms("b"))
        await provider.send(sms("b"))  # recovered: the lookup's query holds the number
        fake.opted_out.add(TO)
        with pytest.raises(ProviderError):
            await provider.send(sms("c"))
        await provider.parse_delivery_report(*fake.status_callback(receipt.provider_id, "delivered"))
    events = {entry["event"] for entry in logs}
    assert {"sms.twilio.sent", "sms.twilio.recovered", "sms.twilio.not_sent", "sms.twilio.status"} <= events
    written = repr(logs) + caplog.text
    for secret in ("91234567", "4791234567", "Legen har svart", fake.auth_token):
        assert secret not in written
    assert "***67" in written and receipt.provider_id in written


def test_settings_mask_secrets_and_check_their_shape(fake: TwilioFake) -> None:
    settings = settings_for(fake, api_key_sid=fake.api_key_sid, api_key_secret=fake.api_key_secret)
    shown = repr(settings) + str(settings.model_dump())
    assert fake.auth_token not in shown and fake.api_key_secret not in shown
    base: dict[str, Any] = {"account_sid": fake.account_sid, "auth_token": "t"}
    for wrong in (
        {"account_sid": "SK" + "0" * 32},
        {"api_key_sid": fake.api_key_sid},  # without its secret
        {"messaging_service_sid": "MG123"},
        {"base_url": "http://api.twilio.com"},
    ):
        with pytest.raises(ValueError):
            TwilioSettings(**(base | wrong))


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, fake: TwilioFake) -> None:
    monkeypatch.setenv("LEGETIME_SMS_TWILIO_ACCOUNT_SID", fake.account_sid)
    monkeypatch.setenv("LEGETIME_SMS_TWILIO_AUTH_TOKEN", fake.auth_token)
    settings = TwilioSettings()
    assert settings.base_url == "https://api.twilio.com" and settings.timeout_seconds == 10.0
    assert all(field.description for field in TwilioSettings.model_fields.values())
    assert "state_path" not in TwilioSettings.model_fields  # the map is in the platform's database


def test_registered_as_a_real_provider_that_loads_twilio_lazily() -> None:
    assert not SPEC.test_only and SPEC.settings_model is TwilioSettings
    probe = "import sys, legetime.plugins.sms.twilio; print(any(m.startswith('twilio') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
