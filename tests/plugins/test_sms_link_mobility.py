"""LINK Mobility SMS against a local Common SMS REST API (``tests/fakes/link_mobility.py``) over HTTP: the
message as documented, one SMS per reference across restarts (a claim before the call, a lost answer
settled by a delivery report or sent again after a while), refusals (``ProviderError``) apart from
outages (``ProviderUnavailable``), 429, delivery reports and their HTTP Basic credentials, logs free of
numbers and text, and the reference map in the plugin's table (shared by processes on one database). The
shared SMS contract runs it as well."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError as SettingsError
from structlog.testing import capture_logs

from legetime.core.platform.db.plugin_tables import PluginDatabase
from legetime.core.platform.errors import (
    ErrorCode,
    IdempotencyConflict,
    ProviderError,
    ProviderUnavailable,
    ValidationError,
)
from legetime.core.platform.providers import Capability
from legetime.core.platform.providers.sms import DeliveryStatus, SmsEncoding, SmsMessage
from legetime.plugins.sms.link_mobility import LinkMobilitySettings, LinkMobilitySms, messages
from legetime.testing import build_provider
from tests.fakes.link_mobility import LinkMobilityFake
from tests.fakes.server import serve_fake
from tests.support import HeldOpen, offered_specs, settings_for_fake, until_a_session_waits_for_a_lock

SPEC = next(spec for spec in offered_specs(Capability.SMS) if spec.name == "link-mobility")
TO = "+4791234567"
TEXT = "Hei! Legen har svart. Logg inn for å lese svaret."
AT = datetime(2025, 3, 5, 14, 30, 12, tzinfo=UTC)


@pytest.fixture
def fake() -> Iterator[LinkMobilityFake]:
    with serve_fake(LinkMobilityFake()) as fake:
        yield fake


def build(
    fake: LinkMobilityFake, data_dir: Path, *, database_url: str | None = None, **changes: Any
) -> LinkMobilitySms:
    """A provider of a platform in ``data_dir`` (a new instance is a new process), on its embedded database
    or on ``database_url``."""
    settings = settings_for_fake(SPEC, fake, **changes)
    platform = {"database_url": database_url} if database_url else {}
    provider: LinkMobilitySms = build_provider(SPEC, data_dir, settings, **platform)
    return provider


def own_files(data_dir: Path) -> list[Path]:
    """State files of the plugin's own in the data directory (there must be none)."""
    return [path for path in data_dir.iterdir() if path.name.startswith("sms-link-mobility")]


async def stored(provider: LinkMobilitySms, reference: str = "case-1:answered") -> Any:
    """The reference's row in the plugin's table, as the provider's database has it."""
    async with provider._db.transaction() as session:
        return (await session.execute(messages.select().where(messages.c.reference == reference))).first()


async def backdate(provider: LinkMobilitySms, seconds: float, reference: str = "case-1:answered") -> None:
    """Move the reference's last attempt ``seconds`` into the past, as if that much time had gone by."""
    row = await stored(provider, reference)
    attempt_at = row.attempt_at if row.attempt_at.tzinfo else row.attempt_at.replace(tzinfo=UTC)
    async with provider._db.transaction() as session:
        await session.execute(
            messages.update()
            .where(messages.c.reference == reference)
            .values(attempt_at=attempt_at - timedelta(seconds=seconds))
        )


@pytest.fixture
def link(fake: LinkMobilityFake, tmp_path: Path) -> LinkMobilitySms:
    return build(fake, tmp_path)


def sms(reference: str = "case-1:answered", sender: str = "Legetime", body: str = TEXT) -> SmsMessage:
    return SmsMessage(to=TO, body=body, sender=sender, reference=reference)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- Sending ------------------------------------------------------------------------------------------


async def test_the_message_is_sent_as_documented(link: LinkMobilitySms, fake: LinkMobilityFake) -> None:
    receipt = await link.send(sms())
    (sent,) = fake.messages
    assert sent["source"] == "Legetime" and sent["sourceTON"] == "ALPHANUMERIC"
    assert (sent["destination"], sent["destinationTON"], sent["userData"]) == (TO, "MSISDN", TEXT)
    assert (sent["platformId"], sent["platformPartnerId"]) == (fake.platform_id, fake.platform_partner_id)
    assert sent["useDeliveryReport"] is True and sent["deliveryReportGates"] == [fake.gate_id]
    assert sent["ignoreResponse"] is False and sent["dcs"] == "TEXT"
    assert sent["refId"] == link.ref_id("case-1:answered") and "case" not in sent["refId"]
    assert fake.calls[0]["headers"]["authorization"] == basic(fake.username, fake.password)
    assert receipt.provider_id == sent["messageId"]
    assert (receipt.status, receipt.segments, receipt.encoding) == (
        DeliveryStatus.QUEUED,
        1,
        SmsEncoding.GSM7,
    )


@pytest.mark.parametrize(
    ("sender", "ton"), [("+4791234567", "MSISDN"), ("2333", "SHORTNUMBER"), ("LT", "ALPHANUMERIC")]
)
async def test_the_sender_type_of_number(
    link: LinkMobilitySms, fake: LinkMobilityFake, sender: str, ton: str
) -> None:
    await link.send(sms(sender=sender))
    assert fake.messages[0]["sourceTON"] == ton


@pytest.mark.parametrize(
    "sender", ["", "L", "1Legetime", "Legetime AS", "Legetimeklinikk", "Lege-time", "Læge"]
)
async def test_a_bad_sender_is_refused_before_anything_is_sent(
    link: LinkMobilitySms, fake: LinkMobilityFake, sender: str
) -> None:
    with pytest.raises(ValidationError) as info:
        await link.send(sms(sender=sender))
    assert info.value.field == "sender" and fake.calls == []


async def test_more_than_ten_segments_is_refused(link: LinkMobilitySms, fake: LinkMobilityFake) -> None:
    with pytest.raises(ValidationError) as info:
        await link.send(sms(body="a" * 1531))
    assert info.value.field == "body" and fake.calls == []


async def test_without_a_gate_no_reports_are_asked_for(fake: LinkMobilityFake, tmp_path: Path) -> None:
    link = build(fake, tmp_path, delivery_report_gate=None, report_password=None)
    await link.send(sms())
    assert fake.messages[0]["useDeliveryReport"] is False and "deliveryReportGates" not in fake.messages[0]
    with pytest.raises(ProviderError, match="not configured"):
        await link.parse_delivery_report(*fake.report(fake.messages[0]["messageId"], 1001, AT))


# --- One SMS per reference -------------------------------------------------------------------------------


async def test_a_reference_sends_once_across_restarts(fake: LinkMobilityFake, tmp_path: Path) -> None:
    first = await build(fake, tmp_path).send(sms())
    assert await build(fake, tmp_path).send(sms()) == first  # another process, or after a restart
    assert len(fake.messages) == 1
    with pytest.raises(IdempotencyConflict):
        await build(fake, tmp_path).send(sms(sender="Annen"))
    row = await stored(build(fake, tmp_path))
    assert (row.state, row.provider_id, row.ref_id) == ("sent", first.provider_id, fake.messages[0]["refId"])
    held = " ".join(str(value) for value in row)  # references, keyed hashes and LINK's ids only
    assert "91234567" not in held and "Legen" not in held and "Legetime" not in held
    assert not own_files(tmp_path)


async def test_a_lost_answer_is_settled_by_the_delivery_report(
    link: LinkMobilitySms, fake: LinkMobilityFake
) -> None:
    fake.lose_next_answer = True  # LINK took it; its answer never came
    with pytest.raises(ProviderUnavailable):
        await link.send(sms())
    with pytest.raises(ProviderUnavailable):  # a retry cannot know: it does not send again
        await link.send(sms())
    assert len(fake.messages) == 1
    message_id = fake.messages[0]["messageId"]
    report = await link.parse_delivery_report(*fake.report(message_id, 1001, AT))
    assert report.provider_id == message_id
    receipt = await link.send(sms())  # the report named the refId: the retry has its receipt
    assert (receipt.provider_id, receipt.status) == (message_id, DeliveryStatus.DELIVERED)
    assert len(fake.messages) == 1


async def test_a_crash_while_sending_is_sent_again_only_after_the_wait(
    fake: LinkMobilityFake, tmp_path: Path
) -> None:
    timing: dict[str, Any] = {"timeout_seconds": 2.0, "resend_unknown_after_seconds": 2.5}
    fake.stall_seconds = 3
    sending = asyncio.create_task(build(fake, tmp_path, **timing).send(sms()))
    assert await asyncio.to_thread(fake.taken.wait, 5)  # LINK has it; the process dies before the answer
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert len(fake.messages) == 1
    fake.stall_seconds = 0
    restarted = build(fake, tmp_path, **timing)
    with pytest.raises(ProviderUnavailable):
        await restarted.send(sms())
    assert len(fake.messages) == 1
    await asyncio.sleep(2.6)  # no report named it: at least once, with the same refId
    receipt = await restarted.send(sms())
    assert [m["refId"] for m in fake.messages] == [restarted.ref_id("case-1:answered")] * 2
    assert receipt.provider_id == fake.messages[1]["messageId"]
    assert await restarted.send(sms()) == receipt and len(fake.messages) == 2


async def test_a_timeout_leaves_the_outcome_unknown(fake: LinkMobilityFake, tmp_path: Path) -> None:
    link = build(fake, tmp_path, timeout_seconds=0.3, resend_unknown_after_seconds=30)
    fake.stall_seconds = 1
    with pytest.raises(ProviderUnavailable):
        await link.send(sms())
    fake.stall_seconds = 0
    with pytest.raises(ProviderUnavailable):
        await link.send(sms())
    assert len(fake.messages) == 1


async def test_a_claim_left_by_a_dead_process_waits_then_sends_again(
    fake: LinkMobilityFake, tmp_path: Path
) -> None:
    """LINK took the message, the process died before its answer: the row stays "sending" (made so here)."""
    link = build(fake, tmp_path, resend_unknown_after_seconds=60)
    fake.lose_next_answer = True
    with pytest.raises(ProviderUnavailable):
        await link.send(sms())
    assert (await stored(link)).state == "sending"
    await backdate(link, 59)
    with pytest.raises(ProviderUnavailable, match="being sent"):
        await build(fake, tmp_path, resend_unknown_after_seconds=60).send(sms())
    assert len(fake.messages) == 1
    await backdate(link, 2)  # past the wait, and no report named it: sent again with the same refId
    receipt = await build(fake, tmp_path, resend_unknown_after_seconds=60).send(sms())
    assert [m["refId"] for m in fake.messages] == [link.ref_id("case-1:answered")] * 2
    assert receipt.provider_id == fake.messages[1]["messageId"] and (await stored(link)).state == "sent"


async def test_a_refused_resend_keeps_the_earlier_lost_answer(fake: LinkMobilityFake, tmp_path: Path) -> None:
    link = build(fake, tmp_path, resend_unknown_after_seconds=60)
    fake.lose_next_answer = True
    with pytest.raises(ProviderUnavailable):
        await link.send(sms())
    await backdate(link, 120)
    before = await stored(link)
    fake.down = True  # the resend is refused (503): LINK did not take it
    with pytest.raises(ProviderUnavailable):
        await link.send(sms())
    after = await stored(link)
    assert (after.state, after.attempt_at) == ("sending", before.attempt_at)  # still the lost answer's
    fake.down = False
    message_id = fake.messages[0]["messageId"]
    await link.parse_delivery_report(*fake.report(message_id, 1001, AT))  # the report settles it after all
    assert (await link.send(sms())).provider_id == message_id and len(fake.messages) == 1


async def test_an_unreachable_database_is_unavailable_and_nothing_is_sent(fake: LinkMobilityFake) -> None:
    settings = settings_for_fake(SPEC, fake)
    database = PluginDatabase("postgresql+asyncpg://nobody@127.0.0.1:9/x")
    link = LinkMobilitySms(settings, key=b"k" * 32, database=database)
    with capture_logs() as logs, pytest.raises(ProviderUnavailable):
        await link.send(sms())
    assert fake.calls == [], "nothing may be sent without its claim"
    assert [(e["event"], e["operation"]) for e in logs] == [("sms.link_mobility.store_unavailable", "_claim")]


@pytest.mark.postgres
async def test_processes_on_one_postgresql_database_send_a_reference_once(
    fake: LinkMobilityFake, tmp_path: Path, fresh_postgres_url: str
) -> None:
    build(fake, tmp_path, database_url=fresh_postgres_url)  # migrates the database
    held = HeldOpen(fresh_postgres_url)
    settings = settings_for_fake(SPEC, fake)
    a = LinkMobilitySms(settings, key=b"k" * 32, database=held)
    b = LinkMobilitySms(settings, key=b"k" * 32, database=PluginDatabase(fresh_postgres_url))
    first = asyncio.create_task(a.send(sms()))
    async with asyncio.timeout(10):
        await held.holding.wait()  # the first has claimed the reference, not committed yet
    second = asyncio.create_task(b.send(sms()))
    await until_a_session_waits_for_a_lock(fresh_postgres_url)  # the second finds no row; its insert waits
    held.commit.set()
    with pytest.raises(ProviderUnavailable, match="being sent"):
        await second
    receipt = await first
    assert len(fake.messages) == 1
    assert await b.send(sms()) == receipt and len(fake.messages) == 1  # the map is shared


# --- Refusals and outages -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code", "kind"),
    [
        ({"password": "wrong"}, 106100, ErrorCode.FORBIDDEN),
        ({"platform_partner_id": "999"}, 106101, ErrorCode.FORBIDDEN),
        ({"delivery_report_gate": "gate-nobody"}, 106301, ErrorCode.INVALID),
    ],
)
async def test_a_refusal_is_a_provider_error_with_links_code(
    fake: LinkMobilityFake, tmp_path: Path, changes: dict[str, str], code: int, kind: ErrorCode
) -> None:
    with pytest.raises(ProviderError) as info:
        await build(fake, tmp_path, **changes).send(sms())
    assert not isinstance(info.value, ProviderUnavailable)
    assert f"LINK {code}" in str(info.value) and info.value.code is kind
    assert fake.messages == []
    await build(fake, tmp_path).send(sms())  # nothing went out: fixed, the reference sends at once
    assert len(fake.messages) == 1


async def test_link_down_is_unavailable_and_nothing_is_claimed(
    link: LinkMobilitySms, fake: LinkMobilityFake
) -> None:
    fake.down = True
    with pytest.raises(ProviderUnavailable):
        await link.send(sms())
    fake.down = False
    await link.send(sms())
    assert len(fake.messages) == 1


async def test_no_connection_is_unavailable_and_nothing_is_claimed(
    fake: LinkMobilityFake, tmp_path: Path
) -> None:
    with pytest.raises(ProviderUnavailable):
        await build(fake, tmp_path, base_url="http://127.0.0.1:9").send(sms())
    await build(fake, tmp_path).send(sms())
    assert len(fake.messages) == 1


async def test_rate_limited_is_unavailable_and_the_retry_sends(
    link: LinkMobilitySms, fake: LinkMobilityFake
) -> None:
    fake.max_per_second = 1
    await link.send(sms(reference="a"))
    with pytest.raises(ProviderUnavailable):
        await link.send(sms(reference="b"))
    assert fake.calls[-1]["status"] == 429 and len(fake.messages) == 1
    await asyncio.sleep(1.05)
    await link.send(sms(reference="b"))
    assert [m["refId"] for m in fake.messages] == [link.ref_id("a"), link.ref_id("b")]


# --- Delivery reports -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        (1001, DeliveryStatus.DELIVERED, None),
        (1005, DeliveryStatus.QUEUED, None),
        (1000, DeliveryStatus.SENT, None),
        (1006, DeliveryStatus.FAILED, "LINK 1006: not delivered"),
        (2106, DeliveryStatus.FAILED, "LINK 2106: number error"),
        (1002, DeliveryStatus.FAILED, "LINK 1002: expired"),
        (1010, DeliveryStatus.SENT, "LINK 1010: expired without operator report, delivery unknown"),
        (2999, DeliveryStatus.FAILED, "LINK 2999: unlisted result code"),
        (1999, DeliveryStatus.SENT, "LINK 1999: unlisted result code"),
    ],
)
async def test_result_codes_map_to_statuses(
    link: LinkMobilitySms, fake: LinkMobilityFake, code: int, status: DeliveryStatus, error: str | None
) -> None:
    receipt = await link.send(sms())
    report = await link.parse_delivery_report(*fake.report(receipt.provider_id, code, AT))
    assert (report.provider_id, report.status, report.error, report.at) == (
        receipt.provider_id,
        status,
        error,
        AT,
    )


async def test_a_part_of_a_long_message_reports_for_the_message(
    link: LinkMobilitySms, fake: LinkMobilityFake
) -> None:
    receipt = await link.send(sms(body="a" * 200))
    headers, body = fake.report(receipt.provider_id, 1001, AT, part=1)
    assert json.loads(body)["id"] == f"{receipt.provider_id}$1"
    assert (await link.parse_delivery_report(headers, body)).provider_id == receipt.provider_id


async def test_a_report_with_text_codes_and_a_bare_utc_time(
    link: LinkMobilitySms, fake: LinkMobilityFake
) -> None:
    receipt = await link.send(sms())
    headers, body = fake.report(receipt.provider_id, 1001, AT)
    data = json.loads(body) | {"resultCode": "1001", "timestamp": "2025-03-05T14:30:12"}
    report = await link.parse_delivery_report(headers, json.dumps(data).encode())
    assert (report.status, report.at) == (DeliveryStatus.DELIVERED, AT)


def _credentials(fake: LinkMobilityFake) -> list[dict[str, str]]:
    good = basic(fake.report_username, fake.report_password)
    return [
        {},
        {"Authorization": ""},
        {"Authorization": basic(fake.report_username, "guessed-password-guessed-pw")},
        {"Authorization": basic("someone", fake.report_password)},
        {"Authorization": good.replace("Basic", "Bearer")},
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "0" * len(good)},
        {"Authorization": basic(fake.report_username, fake.report_password + "x")},
    ]


async def test_reports_without_the_gates_credentials_are_rejected(
    link: LinkMobilitySms, fake: LinkMobilityFake
) -> None:
    receipt = await link.send(sms())
    headers, body = fake.report(receipt.provider_id, 1001, AT)
    assert (await link.parse_delivery_report(headers, body)).status is DeliveryStatus.DELIVERED
    for forged in _credentials(fake):
        with pytest.raises(ProviderError) as info:
            await link.parse_delivery_report({"Content-Type": "application/json", **forged}, body)
        assert info.value.code is ErrorCode.INVALID
    lower = {k.lower(): v for k, v in headers.items()}  # header names are case-insensitive
    assert (await link.parse_delivery_report(lower, body)).provider_id == receipt.provider_id


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"resultCode": 1001, "timestamp": "2025-03-05T14:30:12Z"}',
        b'{"id": "x", "resultCode": true, "timestamp": "2025-03-05T14:30:12Z"}',
        b'{"id": "x", "resultCode": "delivered", "timestamp": "2025-03-05T14:30:12Z"}',
        b'{"id": "x", "resultCode": 1001}',
        b'{"id": "x", "resultCode": 1001, "timestamp": "yesterday"}',
    ],
)
async def test_malformed_reports_are_rejected(
    link: LinkMobilitySms, fake: LinkMobilityFake, body: bytes
) -> None:
    headers = {"Authorization": basic(fake.report_username, fake.report_password)}
    with pytest.raises(ProviderError) as info:
        await link.parse_delivery_report(headers, body)
    assert info.value.code is ErrorCode.INVALID


# --- Settings and logs --------------------------------------------------------------------------------------


def test_settings_are_checked(fake: LinkMobilityFake) -> None:
    values: dict[str, Any] = {k.lower(): v for k, v in fake.plugin_settings().items()}
    values["base_url"] = "https://no.linkmobility.io/sms"
    assert LinkMobilitySettings(**values).base_url == "https://no.linkmobility.io"
    for bad in (
        {"base_url": "http://n-eu.linkmobility.io"},
        {"report_password": None},  # a gate, and reports nobody could authenticate
        {"report_password": "short"},
        {"timeout_seconds": 30, "resend_unknown_after_seconds": 20},
        {"platform_id": ""},
    ):
        with pytest.raises(SettingsError):
            LinkMobilitySettings(**(values | bad))
    assert SPEC.settings_model is LinkMobilitySettings and not SPEC.test_only
    assert LinkMobilitySettings.model_config["env_prefix"] == "LEGETIME_SMS_LINK_MOBILITY_"
    assert "database_path" not in LinkMobilitySettings.model_fields  # the map is in the platform's database


async def test_logs_hold_ids_and_codes_only(
    link: LinkMobilitySms, fake: LinkMobilityFake, tmp_path: Path
) -> None:
    with capture_logs() as logs:
        receipt = await link.send(sms())
        await link.parse_delivery_report(*fake.report(receipt.provider_id, 2106, AT))
        with pytest.raises(ProviderError):
            await build(fake, tmp_path / "other", password="wrong").send(sms())
        with pytest.raises(ProviderError):
            await link.parse_delivery_report({}, b"{}")
    events = {entry["event"] for entry in logs}
    assert {"sms.link_mobility.sent", "sms.link_mobility.report", "sms.link_mobility.refused"} <= events
    text = repr(logs)
    assert "91234567" not in text and "***67" in text
    assert "Legen" not in text and fake.password not in text and fake.report_password not in text
