"""LiveKit video against a local LiveKit server API (``tests/fakes/livekit.py``) over HTTP: the rooms as
documented, the join token's claims exactly, refused credentials (``ProviderError``) apart from outages
(``ProviderUnavailable``, retryable), ``check()`` read-only, logs without tokens or names, and never a
request that could record. The registry refuses any video provider that does not say ``records = False``.
The shared video contract runs the provider as well."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError as SettingsError
from structlog.testing import capture_logs

from legetime.core.hookspecs import hookimpl
from legetime.core.platform.config import Settings
from legetime.core.platform.errors import PluginError, ProviderError, ProviderUnavailable
from legetime.core.platform.providers import Capability, ProviderCheck, ProviderSpec
from legetime.core.platform.providers.video import VideoParticipant, VideoRole, VideoRoomRequest
from legetime.core.platform.runtime import Platform
from legetime.plugins.video.livekit import LiveKitSettings, LiveKitVideo
from legetime.plugins.video.simulated import SimulatedVideo
from legetime.testing import build_provider
from tests.fakes.livekit import LiveKitFake
from tests.fakes.server import serve_fake
from tests.support import offered_specs, settings_for_fake

SPEC = next(spec for spec in offered_specs(Capability.VIDEO) if spec.name == "livekit")
WRONG = "wrong-secret-0123456789-abcdefghijklmnop"
STARTS = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
REQUEST = VideoRoomRequest("appointment-7f3c", STARTS, STARTS + timedelta(minutes=20))
PATIENT = VideoParticipant("p-3f2a9c", "Kari Nordmann", VideoRole.PATIENT)
NOW = 1_900_000_000.4


@pytest.fixture
def fake() -> Iterator[LiveKitFake]:
    with serve_fake(LiveKitFake()) as fake:
        yield fake


def build(fake: LiveKitFake, data_dir: Path, **changes: Any) -> LiveKitVideo:
    provider: LiveKitVideo = build_provider(SPEC, data_dir, settings_for_fake(SPEC, fake, **changes))
    return provider


async def test_create_room_as_documented_and_idempotent(fake: LiveKitFake, tmp_path: Path) -> None:
    provider = build(fake, tmp_path)
    room = await provider.create_room(REQUEST)
    again = await build(fake, tmp_path).create_room(REQUEST)  # another process, the same room
    assert again == room and room.provider_id.startswith("legetime-")
    assert REQUEST.reference not in room.provider_id  # LiveKit learns a hash, not our id
    assert list(fake.rooms) == [room.provider_id]
    created = [r for r in fake.requests if r["path"].endswith("/CreateRoom")]
    assert [r["body"] for r in created] == [
        {"name": room.provider_id, "emptyTimeout": 600, "departureTimeout": 120, "maxParticipants": 4}
    ] * 2
    assert all(r["grant"] == {"roomCreate": True} and r["status"] == 200 for r in created)


async def test_the_join_token_claims_exactly(fake: LiveKitFake, tmp_path: Path) -> None:
    provider = build(fake, tmp_path)
    provider.clock = fake.clock = lambda: NOW
    room = await provider.create_room(REQUEST)
    joined = await provider.join(room, PATIENT, timedelta(minutes=30))
    claims = fake.verify_access_token(joined.token)
    assert claims == {
        "iss": fake.api_key,
        "sub": PATIENT.identity,
        "name": PATIENT.display_name,
        "nbf": 1_900_000_000,
        "exp": 1_900_001_801,  # now + 30 min, rounded up: never shorter than asked
        "attributes": {"role": "patient"},
        "video": {
            "room": room.provider_id,
            "roomJoin": True,
            "canPublish": True,
            "canSubscribe": True,
            "canPublishData": True,
        },
    }
    assert joined.expires_at == datetime.fromtimestamp(1_900_001_801, UTC)
    assert joined.url == fake.base_url.replace("http://", "ws://")
    assert [r["path"] for r in fake.requests] == ["/twirp/livekit.RoomService/CreateRoom"]  # minted here
    fake.clock = lambda: NOW + 1802
    with pytest.raises(Exception, match="expired"):
        fake.verify_access_token(joined.token)


def test_clients_connect_over_wss() -> None:
    settings = LiveKitSettings(url="https://legetime.livekit.cloud", api_key="API1", api_secret="s" * 32)
    assert LiveKitVideo(settings).client_url == "wss://legetime.livekit.cloud"


async def test_close_room_deletes_it_and_a_missing_room_is_no_error(
    fake: LiveKitFake, tmp_path: Path
) -> None:
    provider = build(fake, tmp_path)
    room = await provider.create_room(REQUEST)
    await provider.close_room(room)
    assert fake.rooms == {}
    await provider.close_room(room)  # LiveKit: not_found
    deletes = [r for r in fake.requests if r["path"].endswith("/DeleteRoom")]
    assert [(r["body"], r["grant"], r["status"]) for r in deletes] == [
        ({"room": room.provider_id}, {"roomCreate": True}, 200),
        ({"room": room.provider_id}, {"roomCreate": True}, 404),
    ]


@pytest.mark.parametrize("changes", [{"api_secret": WRONG}, {"api_key": "APIunknown"}], ids=["secret", "key"])
async def test_refused_credentials_are_a_typed_error_not_retried(
    fake: LiveKitFake, tmp_path: Path, changes: dict[str, str]
) -> None:
    provider = build(fake, tmp_path, **changes)
    room = await build(fake, tmp_path).create_room(REQUEST)
    for attempt in (provider.create_room(REQUEST), provider.close_room(room)):
        with pytest.raises(ProviderError) as info:
            await attempt
        assert not isinstance(info.value, ProviderUnavailable) and not info.value.retryable
        assert str(info.value) == "LiveKit refused the API key or secret (HTTP 401)."
        assert WRONG not in str(info.value)
    assert list(fake.rooms) == [room.provider_id]  # nothing deleted with bad credentials


async def test_a_server_down_or_gone_is_retryable(fake: LiveKitFake, tmp_path: Path) -> None:
    provider = build(fake, tmp_path)
    room = await provider.create_room(REQUEST)
    fake.down = True
    with pytest.raises(ProviderUnavailable) as info:
        await provider.create_room(REQUEST)
    assert info.value.retryable and str(info.value) == "LiveKit answered HTTP 503."
    gone = LiveKitVideo(provider.settings.model_copy(update={"url": "http://127.0.0.1:9"}))
    with pytest.raises(ProviderUnavailable, match="unreachable") as info:
        await gone.close_room(room)
    assert info.value.retryable


async def test_no_request_ever_asks_to_record(fake: LiveKitFake, tmp_path: Path) -> None:
    provider = build(fake, tmp_path)
    room = await provider.create_room(REQUEST)
    await provider.join(room, PATIENT, timedelta(minutes=30))
    await provider.join(
        room, VideoParticipant("c-1", "Dr. Ola Hansen", VideoRole.CLINICIAN), timedelta(hours=1)
    )
    await provider.check()
    await provider.close_room(room)
    assert fake.recording_requests == []
    assert all("Egress" not in r["path"] for r in fake.requests)
    for request in fake.requests:
        body = request["body"] or {}
        assert not {"egress", "roomPreset", "room_preset"} & set(body)
        assert request["grant"] in ({"roomCreate": True}, {"roomList": True})  # one permission per call


def test_the_fake_refuses_and_records_whatever_would_record(fake: LiveKitFake) -> None:
    """The fake enforces the promise the test above relies on."""
    provider = LiveKitVideo(settings_for_fake(SPEC, fake))
    auth = {"Authorization": f"Bearer {provider.server_token({'roomCreate': True})}"}
    base = f"{fake.base_url}/twirp/livekit"
    recorded = httpx.post(
        f"{base}.RoomService/CreateRoom",
        json={"name": "r", "egress": {"room": {"file_outputs": [{"filepath": "x.mp4"}]}}},
        headers=auth,
    )
    egress = httpx.post(f"{base}.Egress/StartRoomCompositeEgress", json={"room_name": "r"}, headers=auth)
    assert (recorded.status_code, egress.status_code) == (403, 403)
    assert len(fake.recording_requests) == 2 and fake.rooms == {}


async def test_check_is_read_only_and_reports_refusals_and_recording(
    fake: LiveKitFake, tmp_path: Path
) -> None:
    provider = build(fake, tmp_path)
    assert await provider.check() == ProviderCheck(
        True, "LiveKit accepted the API key; 0 of our rooms open, none recorded."
    )
    room = await provider.create_room(REQUEST)
    fake.rooms["someone-elses"] = {**fake.rooms[room.provider_id], "name": "someone-elses"}
    assert (
        await provider.check()
    ).message == "LiveKit accepted the API key; 1 of our rooms open, none recorded."
    fake.rooms[room.provider_id]["active_recording"] = True
    assert await provider.check() == ProviderCheck(
        False, "LiveKit reports 1 of our rooms as recorded; Legetime never records."
    )
    wrong = await build(fake, tmp_path, api_secret=WRONG).check()
    assert wrong == ProviderCheck(False, "LiveKit refused the API key or secret (HTTP 401).")
    fake.down = True
    assert await provider.check() == ProviderCheck(False, "LiveKit answered HTTP 503.")
    checks = [r for r in fake.requests if r["path"].endswith("/ListRooms")]
    assert len(checks) == 5 and all(r["body"] == {} for r in checks)
    assert {r["path"] for r in fake.requests} - {r["path"] for r in checks} == {
        "/twirp/livekit.RoomService/CreateRoom"  # the test's own room only
    }


async def test_logs_carry_rooms_and_codes_never_tokens_or_names(fake: LiveKitFake, tmp_path: Path) -> None:
    provider = build(fake, tmp_path)
    with capture_logs() as logs:
        room = await provider.create_room(REQUEST)
        joined = await provider.join(room, PATIENT, timedelta(minutes=30))
        fake.down = True
        with pytest.raises(ProviderUnavailable):
            await provider.close_room(room)
    text = repr(logs)
    assert room.provider_id in text and "twirp_code" in text
    for secret in (joined.token, PATIENT.display_name, PATIENT.identity, REQUEST.reference, fake.api_secret):
        assert secret not in text


def test_settings_refuse_a_short_secret_plain_http_and_a_bad_prefix() -> None:
    good: dict[str, Any] = {"url": "https://x.livekit.cloud", "api_key": "API1", "api_secret": "s" * 32}
    bad_values: list[dict[str, Any]] = [
        {"api_secret": "short"},
        {"url": "http://x.livekit.cloud"},
        {"room_prefix": "Legetime rooms"},
    ]
    for bad in bad_values:
        with pytest.raises(SettingsError):
            LiveKitSettings(**(good | bad))
    assert "s" * 32 not in repr(LiveKitSettings(**good))


# --- The registry's promise ---------------------------------------------------------------------------


class _Recording(SimulatedVideo):
    """Keeps the Protocol's methods, but says it records."""

    name = "recording"
    records = True  # type: ignore[assignment]


class _RecordingPlugin:
    @hookimpl
    def register_providers(self) -> list[ProviderSpec]:
        return [ProviderSpec(Capability.VIDEO, "recording", lambda s, c: _Recording(b"k" * 32))]


def test_the_platform_refuses_a_video_provider_that_records(settings: Settings) -> None:
    with pytest.raises(PluginError, match="Legetime never records video"):
        Platform.create(
            settings.model_copy(update={"video_provider": "recording"}),
            extra_plugins=[_RecordingPlugin()],
            load_entry_points=False,
        )
