"""Video consultations: a room per appointment, a short-lived join token per verified participant.

Video is live and **never recorded** (the privacy policy's promise): a provider must not start recording,
egress or transcription, and says so with ``records = False``; the platform refuses to enable one that
says otherwise, and a provider's ``check()`` looks that the service is not set to record by itself.
The core issues a join token only to the appointment's patient (or her guardian) after BankID and to its
clinician; the provider only mints what it is asked for. ``identity`` is an opaque id, never a national ID.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable


class VideoRole(StrEnum):
    PATIENT = "patient"
    GUARDIAN = "guardian"
    CLINICIAN = "clinician"


@dataclass(frozen=True)
class VideoRoomRequest:
    reference: str
    """The appointment's id: the idempotency key (the same reference gives the same room)."""
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class VideoRoom:
    provider_id: str
    """The provider's name of the room."""
    reference: str


@dataclass(frozen=True)
class VideoParticipant:
    identity: str
    """Opaque and stable per person and room (never a national ID or a phone number)."""
    display_name: str
    role: VideoRole


@dataclass(frozen=True)
class VideoJoin:
    url: str
    """Where the participant's client connects (the service's websocket or page URL)."""
    token: str
    """Grants this participant, in this room only, until ``expires_at``; never recording."""
    expires_at: datetime


@runtime_checkable
class VideoProvider(Protocol):
    name: str
    records: Literal[False]

    async def create_room(self, request: VideoRoomRequest) -> VideoRoom:
        """Create (or return, for the same reference) the appointment's room, with recording off. A room no
        one joins may be closed by the service after a while: call this again when a participant is about
        to join, and the same room opens again."""
        ...

    async def join(self, room: VideoRoom, participant: VideoParticipant, ttl: timedelta) -> VideoJoin:
        """A join token for one participant, valid for ``ttl`` (at most 12 hours). Minted whether or not the
        room is open (providers keep no state of who may join: the core decides that); a ``room`` that is
        not this provider's room for its reference, an identity that is not opaque or a bad ``ttl`` is a
        ``ValidationError``."""
        ...

    async def close_room(self, room: VideoRoom) -> None:
        """End the room and disconnect everyone. Closing a closed or unknown room is not an error."""
        ...
