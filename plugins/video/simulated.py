"""A simulated video service (provider ``video-test``): rooms and join tokens without a video server.

Why it exists: development, demos and tests need a consultation's video link without a LiveKit project.
It keeps no state: a room's name is a hash of its reference (so creating it again gives the same room),
and a join token is a LiveKit-shaped JWT (HS256) signed with a key derived from the master secret, so any
process of the platform mints and can verify the same tokens. Its URL, ``https://video.invalid/<room>``,
leads nowhere (``.invalid`` is reserved, RFC 2606): nothing is streamed and nothing is recorded. Like
every simulation it is refused in production.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

from legetime.plugins import video
from legetime.sdk import (
    Capability,
    ProviderCheck,
    ProviderContext,
    ProviderSettings,
    ProviderSpec,
    VideoJoin,
    VideoParticipant,
    VideoRoom,
    VideoRoomRequest,
    hookimpl,
)

NAME = "video-test"
KEY_PURPOSE = "video-test-token"
ROOM_PREFIX = "sim-"
BASE_URL = "https://video.invalid"


class SimulatedVideo:
    """Implements ``legetime.sdk.VideoProvider`` without a video service."""

    name = NAME
    records: Literal[False] = False

    def __init__(self, key: bytes, *, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.clock = clock
        """Seconds since the epoch; replaceable so tests can move time forward."""

    async def create_room(self, request: VideoRoomRequest) -> VideoRoom:
        video.check_room_request(request)
        name = video.room_name(ROOM_PREFIX, request.reference)
        return VideoRoom(provider_id=name, reference=request.reference)

    async def join(self, room: VideoRoom, participant: VideoParticipant, ttl: timedelta) -> VideoJoin:
        """A token whether or not the room was closed: the provider keeps no state (the core decides who
        may join when), as with LiveKit."""
        video.check_own_room(room, ROOM_PREFIX)
        video.check_join(participant, ttl)
        claims = video.participant_claims(
            issuer=NAME, room=room.provider_id, participant=participant, ttl=ttl, now=self.clock()
        )
        return VideoJoin(
            url=f"{BASE_URL}/{room.provider_id}",
            token=video.sign_hs256(claims, self._key),
            expires_at=video.expires_at(claims),
        )

    async def close_room(self, room: VideoRoom) -> None:
        """Nothing to end: no one is ever connected to a simulated room."""
        video.check_own_room(room, ROOM_PREFIX)

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a token this provider signed (signature, ``nbf`` and ``exp`` checked); for tests
        and a demo's fake video page. Raises joserfc's errors for anything else."""
        from joserfc import jwt
        from joserfc.jwk import OctKey
        from joserfc.jwt import JWTClaimsRegistry

        decoded = jwt.decode(token, OctKey.import_key(self._key), algorithms=["HS256"])
        registry = JWTClaimsRegistry(now=int(self.clock()), leeway=0, iss={"essential": True, "value": NAME})
        registry.validate(decoded.claims)
        return dict(decoded.claims)

    async def check(self) -> ProviderCheck:
        return ProviderCheck(True, "Simulated video: no service to reach; nothing is streamed or recorded.")


def _factory(settings: ProviderSettings, context: ProviderContext) -> SimulatedVideo:
    return SimulatedVideo(context.derive_key(KEY_PURPOSE))


@hookimpl
def register_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.VIDEO,
            name=NAME,
            factory=_factory,
            description="Simulated video rooms and join tokens; nothing is streamed or recorded.",
            test_only=True,
        )
    ]


@hookimpl
def plugin_info() -> dict[str, str]:
    return {"description": "Simulated video consultations (rooms and join tokens, no video service)."}
