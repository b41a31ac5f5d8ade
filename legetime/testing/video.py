"""The contract every video provider keeps.

Its driver knows how to build the provider, how to read one of its join tokens as the video service does
when a participant connects (checking the signature and expiry: a token it cannot verify raises), and,
where the service keeps rooms, whether a room is open.

The documented choices the suite holds providers to: the same reference gives the same room; a join token
grants one identity one room until ``ttl`` from now and never recording; ``records`` is ``False``;
closing is idempotent (closing a closed room, which the service no longer knows, is not an error); a
token is still minted after a room was closed (providers keep no state of who may join: the core decides
that, and creating the room again opens the same room). The join URL is https or wss (plain on the
loopback only, where tests run local fakes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from legetime.sdk import (
    ProviderSpec,
    ValidationError,
    VideoJoin,
    VideoParticipant,
    VideoProvider,
    VideoRole,
    VideoRoom,
    VideoRoomRequest,
)
from legetime.testing._common import BuildProvider, build_default, in_event_loop

NEVER_GRANTED = ("roomRecord", "recorder", "roomAdmin", "roomCreate", "roomList", "hidden", "agent")
"""LiveKit-style grants a join token must not carry: recording, or powers over rooms and others."""


@dataclass(frozen=True)
class GrantedAccess:
    """What a join token lets its holder do, as the video service reads it."""

    room: str
    identity: str
    display_name: str
    expires_at: datetime
    may_join: bool
    may_record: bool
    """Any recording permission, or power over the room (admin, hidden, room configuration)."""

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> GrantedAccess:
        """From LiveKit-shaped claims (``sub``, ``name``, ``exp``, ``video`` grant)."""
        video = claims.get("video") or {}
        return cls(
            room=str(video.get("room", "")),
            identity=str(claims.get("sub", "")),
            display_name=str(claims.get("name", "")),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            may_join=video.get("roomJoin") is True,
            may_record=any(video.get(grant) for grant in NEVER_GRANTED) or "roomConfig" in claims,
        )


@dataclass(frozen=True)
class VideoDriver:
    """How the suite makes one video provider do what the contract needs."""

    verify_token: Callable[[Any, str], GrantedAccess]
    """``(provider, token)``: read a join token as the service does on connect; raise if it is not valid."""
    is_open: Callable[[Any, VideoRoom], bool] | None = None
    """Whether the service holds the room open now (None: the provider keeps no rooms, a simulation)."""
    build: BuildProvider = build_default
    """Builds the provider (and starts whatever fake it talks to) for one test."""


STARTS = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
REQUEST = VideoRoomRequest("appointment-1", starts_at=STARTS, ends_at=STARTS + timedelta(minutes=20))
PATIENT = VideoParticipant(identity="p-3f2a9c", display_name="Kari Nordmann", role=VideoRole.PATIENT)
CLINICIAN = VideoParticipant(identity="c-77b1e0", display_name="Dr. Ola Hansen", role=VideoRole.CLINICIAN)
TTL = timedelta(minutes=30)


def _secure_url(url: str) -> bool:
    parts = urlsplit(url)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    return parts.scheme in ("https", "wss") or (parts.scheme in ("http", "ws") and loopback)


def _close_to(value: datetime, expected: datetime) -> bool:
    return abs((value - expected).total_seconds()) <= 5


class VideoContract:
    """The video contract (see ``legetime.testing`` for how to run it against a provider)."""

    pytestmark = pytest.mark.legetime_contract

    def test_implements_the_protocol_and_never_records(
        self, legetime_provider: Any, legetime_spec: ProviderSpec
    ) -> None:
        assert isinstance(legetime_provider, VideoProvider)
        assert legetime_provider.name == legetime_spec.name
        assert legetime_provider.records is False

    @in_event_loop
    async def test_create_room_is_idempotent_by_reference(self, legetime_provider: Any) -> None:
        room = await legetime_provider.create_room(REQUEST)
        assert isinstance(room, VideoRoom) and room.provider_id and room.reference == REQUEST.reference
        assert await legetime_provider.create_room(REQUEST) == room
        later = VideoRoomRequest(REQUEST.reference, STARTS + timedelta(hours=1), STARTS + timedelta(hours=2))
        assert await legetime_provider.create_room(later) == room  # the reference decides, nothing else
        other = await legetime_provider.create_room(
            VideoRoomRequest("appointment-2", REQUEST.starts_at, REQUEST.ends_at)
        )
        assert other.provider_id != room.provider_id

    @in_event_loop
    async def test_a_join_token_grants_one_identity_one_room_until_ttl(
        self, legetime_provider: Any, legetime_driver: VideoDriver
    ) -> None:
        room = await legetime_provider.create_room(REQUEST)
        before = datetime.now(UTC)
        joined = await legetime_provider.join(room, PATIENT, TTL)
        assert isinstance(joined, VideoJoin)
        assert _secure_url(joined.url) and joined.token
        assert _close_to(joined.expires_at, before + TTL)
        access = legetime_driver.verify_token(legetime_provider, joined.token)
        assert access == GrantedAccess(
            room=room.provider_id,
            identity=PATIENT.identity,
            display_name=PATIENT.display_name,
            expires_at=joined.expires_at,
            may_join=True,
            may_record=False,
        )

    @in_event_loop
    async def test_each_participant_gets_a_token_of_her_own(
        self, legetime_provider: Any, legetime_driver: VideoDriver
    ) -> None:
        room = await legetime_provider.create_room(REQUEST)
        patient = await legetime_provider.join(room, PATIENT, TTL)
        clinician = await legetime_provider.join(room, CLINICIAN, timedelta(minutes=5))
        assert patient.token != clinician.token
        access = legetime_driver.verify_token(legetime_provider, clinician.token)
        assert (access.identity, access.room, access.may_record) == (
            CLINICIAN.identity,
            room.provider_id,
            False,
        )
        assert _close_to(access.expires_at, datetime.now(UTC) + timedelta(minutes=5))

    @in_event_loop
    async def test_a_forged_token_is_not_accepted(
        self, legetime_provider: Any, legetime_driver: VideoDriver
    ) -> None:
        room = await legetime_provider.create_room(REQUEST)
        patient = await legetime_provider.join(room, PATIENT, TTL)
        clinician = await legetime_provider.join(room, CLINICIAN, TTL)
        header, _, signature = patient.token.split(".")
        forged = f"{header}.{clinician.token.split('.')[1]}.{signature}"  # her signature, his claims
        with pytest.raises(Exception):  # noqa: B017 - whatever the service's reader raises
            legetime_driver.verify_token(legetime_provider, forged)

    @in_event_loop
    async def test_no_token_for_a_room_that_is_not_the_references(self, legetime_provider: Any) -> None:
        room = await legetime_provider.create_room(REQUEST)
        other = await legetime_provider.create_room(
            VideoRoomRequest("appointment-2", REQUEST.starts_at, REQUEST.ends_at)
        )
        for forged in (
            VideoRoom(provider_id=other.provider_id, reference=room.reference),
            VideoRoom(provider_id="someone-elses-room", reference=room.reference),
        ):
            with pytest.raises(ValidationError) as info:
                await legetime_provider.join(forged, PATIENT, TTL)
            assert info.value.field == "room"

    @pytest.mark.parametrize(
        ("participant", "ttl", "field"),
        [
            (VideoParticipant("17889200022", "Kari", VideoRole.PATIENT), TTL, "identity"),  # a national ID
            (VideoParticipant("+4799999999", "Kari", VideoRole.PATIENT), TTL, "identity"),  # a phone
            (VideoParticipant("", "Kari", VideoRole.PATIENT), TTL, "identity"),
            (VideoParticipant("p-1", "", VideoRole.PATIENT), TTL, "display_name"),
            (VideoParticipant("p-1", "Kari\nNordmann", VideoRole.PATIENT), TTL, "display_name"),
            (PATIENT, timedelta(0), "ttl"),
            (PATIENT, timedelta(seconds=-1), "ttl"),
            (PATIENT, timedelta(days=2), "ttl"),
        ],
        ids=["national-id", "phone", "no-identity", "no-name", "control-char", "zero", "negative", "days"],
    )
    @in_event_loop
    async def test_invalid_joins_are_refused(
        self, legetime_provider: Any, participant: VideoParticipant, ttl: timedelta, field: str
    ) -> None:
        room = await legetime_provider.create_room(REQUEST)
        with pytest.raises(ValidationError) as info:
            await legetime_provider.join(room, participant, ttl)
        assert info.value.field == field

    @in_event_loop
    async def test_invalid_rooms_are_refused(self, legetime_provider: Any) -> None:
        for request, field in (
            (VideoRoomRequest("", REQUEST.starts_at, REQUEST.ends_at), "reference"),
            (VideoRoomRequest("x" * 201, REQUEST.starts_at, REQUEST.ends_at), "reference"),
            (VideoRoomRequest("a-1", REQUEST.ends_at, REQUEST.starts_at), "ends_at"),
            (VideoRoomRequest("a-1", REQUEST.starts_at.replace(tzinfo=None), REQUEST.ends_at), "starts_at"),
        ):
            with pytest.raises(ValidationError) as info:
                await legetime_provider.create_room(request)
            assert info.value.field == field

    @in_event_loop
    async def test_close_room_is_idempotent(
        self, legetime_provider: Any, legetime_driver: VideoDriver
    ) -> None:
        room = await legetime_provider.create_room(REQUEST)
        if legetime_driver.is_open is not None:
            assert legetime_driver.is_open(legetime_provider, room)
        await legetime_provider.close_room(room)
        await legetime_provider.close_room(room)  # closed already: to the service, a room it does not know
        if legetime_driver.is_open is not None:
            assert not legetime_driver.is_open(legetime_provider, room)

    @in_event_loop
    async def test_after_close_a_token_is_still_minted_and_the_room_opens_again(
        self, legetime_provider: Any, legetime_driver: VideoDriver
    ) -> None:
        room = await legetime_provider.create_room(REQUEST)
        await legetime_provider.close_room(room)
        joined = await legetime_provider.join(room, PATIENT, TTL)
        assert legetime_driver.verify_token(legetime_provider, joined.token).room == room.provider_id
        assert await legetime_provider.create_room(REQUEST) == room
        if legetime_driver.is_open is not None:
            assert legetime_driver.is_open(legetime_provider, room)
