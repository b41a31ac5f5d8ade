"""LiveKit (provider ``livekit``): a room per appointment on a LiveKit server or LiveKit Cloud, a join
token per participant. Live only: nothing here ever asks LiveKit to record.

Documentation followed (docs.livekit.io, "Room service API" and "Tokens & grants"): the server API is
Twirp, ``POST {url}/twirp/livekit.RoomService/<Method>`` with a JSON body and ``Authorization: Bearer
<JWT>``, the JWT signed HS256 with the API secret, ``iss`` the API key and the permission in its ``video``
grant. Calls used:

* ``CreateRoom`` (grant ``roomCreate``) with ``name``, ``emptyTimeout``, ``departureTimeout``,
  ``maxParticipants``; LiveKit returns the existing room for an existing name, so the room's name (a hash
  of the appointment's id, under ``room_prefix``) is the idempotency key. Its ``egress`` field (auto
  egress: recording or streaming) and ``roomPreset`` (a server-side configuration, which may hold an
  egress) are never sent.
* ``DeleteRoom`` (grant ``roomCreate``) with ``room``: ends the room and disconnects everyone; a room
  that is not there (closed, or never joined and timed out) is not an error.
* ``ListRooms`` (grant ``roomList``), read-only, for ``check()``: whether the credentials are accepted and
  whether any of our rooms has ``active_recording`` (a participant with the ``recorder`` permission).

Join tokens are minted here, not by LiveKit (it verifies them when the client connects): ``sub`` the
participant's opaque identity, ``name``, ``nbf``, ``exp`` and the grant ``{room, roomJoin, canPublish,
canSubscribe, canPublishData}`` — never ``roomRecord``, ``recorder``, ``roomAdmin`` or a ``roomConfig``
(see ``legetime.plugins.video``). Twirp errors (``{"code", "msg"}``) map to typed errors:
``unauthenticated`` and ``permission_denied`` to a ``ProviderError`` that retrying does not mend;
``unavailable``, ``resource_exhausted``, ``internal``, other 5xx and network failures to
``ProviderUnavailable``.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

import structlog
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from legetime.plugins import video
from legetime.sdk import (
    Capability,
    ErrorCode,
    HttpsUrl,
    ProviderCheck,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    ProviderSpec,
    ProviderUnavailable,
    VideoJoin,
    VideoParticipant,
    VideoRoom,
    VideoRoomRequest,
    hookimpl,
)

# httpx and joserfc are imported when the provider is built, not when the plugin is loaded: a default
# plugin whose provider is not enabled costs start-up nothing.

NAME = "livekit"
ROOM_SERVICE = "/twirp/livekit.RoomService/"
SERVER_TOKEN_TTL = 60
"""Seconds a server-API token lives: one call."""
UNAVAILABLE = "LiveKit is not answering right now; try again shortly."
REFUSED_CREDENTIALS = ("unauthenticated", "permission_denied")
RETRYABLE = ("unavailable", "resource_exhausted", "internal", "unknown", "deadline_exceeded", "aborted")

log = structlog.get_logger(__name__)


class LiveKitSettings(ProviderSettings):
    """Settings of the LiveKit video provider (``LEGETIME_LIVEKIT_*``)."""

    model_config = SettingsConfigDict(env_prefix="LEGETIME_LIVEKIT_")

    url: HttpsUrl = Field(
        description="The LiveKit server, e.g. https://<project>.livekit.cloud (the server API; clients "
        "connect to the same host over wss://)."
    )
    api_key: str = Field(min_length=1, description="API key (the JWTs' issuer).")
    api_secret: SecretStr = Field(description="API secret (signs the JWTs, HS256); at least 32 characters.")
    room_prefix: str = Field(
        default="legetime-",
        description="Start of the names of this installation's rooms (lowercase letters, digits, -), so "
        "several installations can share a LiveKit project.",
    )
    empty_timeout_seconds: int = Field(
        default=600,
        ge=1,
        le=86_400,
        description="How long LiveKit keeps a room open that no one has joined yet.",
    )
    departure_timeout_seconds: int = Field(
        default=120,
        ge=1,
        le=3_600,
        description="How long LiveKit keeps a room open after the last participant left (a dropped "
        "connection can come back).",
    )
    max_participants: int = Field(
        default=4,
        ge=0,
        le=100,
        description="Most participants in a room at once (patient, guardian, clinician, an interpreter); "
        "0: no limit.",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=60, description="HTTP timeout per server-API call.")

    @field_validator("api_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (LiveKit's own minimum for HS256)")
        return value

    @field_validator("room_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not video.PREFIX_PATTERN.fullmatch(value):
            raise ValueError("use 1–31 lowercase letters, digits and -, starting with a letter or digit")
        return value


class LiveKitVideo:
    """Implements ``legetime.sdk.VideoProvider`` with LiveKit's server API and access tokens."""

    name = NAME
    records: Literal[False] = False

    def __init__(self, settings: LiveKitSettings, *, clock: Callable[[], float] = time.time) -> None:
        importlib.import_module("httpx")  # loaded with the provider, so the first call does not wait
        importlib.import_module("joserfc.jwt")
        self.settings = settings
        self.clock = clock
        """Seconds since the epoch; replaceable so tests can move time forward."""
        self._secret = settings.api_secret.get_secret_value().encode()
        scheme, _, rest = settings.url.partition("://")
        self.client_url = f"{'wss' if scheme == 'https' else 'ws'}://{rest}"
        """Where participants' clients connect (LiveKit's signalling websocket on the same host)."""

    # --- VideoProvider ---------------------------------------------------------------------------------

    async def create_room(self, request: VideoRoomRequest) -> VideoRoom:
        video.check_room_request(request)
        name = video.room_name(self.settings.room_prefix, request.reference)
        body = {
            "name": name,
            "emptyTimeout": self.settings.empty_timeout_seconds,
            "departureTimeout": self.settings.departure_timeout_seconds,
            "maxParticipants": self.settings.max_participants,
        }
        room = await self._call("CreateRoom", body, {"roomCreate": True}, room=name)
        if room.get("name") != name:
            log.warning("video.livekit.unexpected_answer", method="CreateRoom", room=name)
            raise ProviderError("LiveKit answered CreateRoom with another room.", retryable=True)
        log.info("video.livekit.room_ready", room=name, sid=room.get("sid"))
        return VideoRoom(provider_id=name, reference=request.reference)

    async def join(self, room: VideoRoom, participant: VideoParticipant, ttl: timedelta) -> VideoJoin:
        """Minted here, no call to LiveKit: a token whether or not the room is open (LiveKit opens a closed
        room again when someone joins it with a valid token; the core decides who may join when)."""
        video.check_own_room(room, self.settings.room_prefix)
        video.check_join(participant, ttl)
        claims = video.participant_claims(
            issuer=self.settings.api_key,
            room=room.provider_id,
            participant=participant,
            ttl=ttl,
            now=self.clock(),
        )
        log.info("video.livekit.join_token", room=room.provider_id, role=participant.role.value)
        return VideoJoin(
            url=self.client_url,
            token=video.sign_hs256(claims, self._secret),
            expires_at=video.expires_at(claims),
        )

    async def close_room(self, room: VideoRoom) -> None:
        video.check_own_room(room, self.settings.room_prefix)
        name = room.provider_id
        await self._call("DeleteRoom", {"room": name}, {"roomCreate": True}, room=name)
        log.info("video.livekit.room_closed", room=room.provider_id)

    # --- Operators -------------------------------------------------------------------------------------

    async def check(self) -> ProviderCheck:
        """Whether LiveKit accepts the credentials, and whether any of our rooms is being recorded (a
        ``recorder`` participant, started outside Legetime): ``ListRooms`` only, nothing changed."""
        try:
            answer = await self._call("ListRooms", {}, {"roomList": True})
        except ProviderError as exc:
            return ProviderCheck(False, str(exc))
        rooms = [r for r in answer.get("rooms") or [] if isinstance(r, dict)]
        ours = [r for r in rooms if str(r.get("name", "")).startswith(self.settings.room_prefix)]
        recorded = [r for r in ours if r.get("active_recording") or r.get("activeRecording")]
        if recorded:
            return ProviderCheck(
                False, f"LiveKit reports {len(recorded)} of our rooms as recorded; Legetime never records."
            )
        return ProviderCheck(
            True, f"LiveKit accepted the API key; {len(ours)} of our rooms open, none recorded."
        )

    # --- The server API --------------------------------------------------------------------------------

    def server_token(self, grant: dict[str, bool]) -> str:
        """A short-lived token for one server-API call with one permission."""
        now = int(self.clock())
        claims = {"iss": self.settings.api_key, "nbf": now, "exp": now + SERVER_TOKEN_TTL, "video": grant}
        return video.sign_hs256(claims, self._secret)

    async def _call(
        self, method: str, body: dict[str, Any], grant: dict[str, bool], *, room: str | None = None
    ) -> dict[str, Any]:
        """POST one RoomService method; its JSON answer. ``DeleteRoom`` of a room that is not there
        answers ``{}``."""
        import httpx

        headers = {"Authorization": f"Bearer {self.server_token(grant)}", "Accept": "application/json"}
        try:
            async with httpx.AsyncClient(timeout=self.settings.timeout_seconds) as client:
                response = await client.post(
                    f"{self.settings.url}{ROOM_SERVICE}{method}", json=body, headers=headers
                )
        except httpx.TimeoutException:
            log.warning("video.livekit.unavailable", method=method, room=room, reason="timeout")
            raise ProviderUnavailable(
                f"LiveKit did not answer within {self.settings.timeout_seconds:g} s."
            ) from None
        except httpx.HTTPError:
            log.warning("video.livekit.unavailable", method=method, room=room, reason="network")
            raise ProviderUnavailable("LiveKit is unreachable.") from None
        status = response.status_code
        payload = _json(response)
        if status == 200 and payload is not None:
            return payload
        code = str((payload or {}).get("code", ""))
        if method == "DeleteRoom" and code == "not_found":
            return {}
        log.warning("video.livekit.refused", method=method, room=room, http_status=status, twirp_code=code)
        if code in REFUSED_CREDENTIALS or status in (401, 403):
            raise ProviderError(
                f"LiveKit refused the API key or secret (HTTP {status}).", code=ErrorCode.PROVIDER_UNAVAILABLE
            )
        if code in RETRYABLE or status == 429 or status >= 500 or status == 200:
            raise ProviderUnavailable(f"LiveKit answered HTTP {status}.")
        raise ProviderError(f"LiveKit refused {method} (HTTP {status}, {code or 'no code'}).")


def _json(response: Any) -> dict[str, Any] | None:
    try:
        value = response.json()
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _factory(settings: LiveKitSettings, context: ProviderContext) -> LiveKitVideo:
    return LiveKitVideo(settings)


@hookimpl
def register_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.VIDEO,
            name=NAME,
            factory=_factory,
            settings_model=LiveKitSettings,
            description="LiveKit rooms (server or Cloud) and join tokens; never recorded.",
        )
    ]


@hookimpl
def plugin_info() -> dict[str, str]:
    return {"description": "Video consultations on LiveKit: a room per appointment, never recorded."}
