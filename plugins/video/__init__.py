"""Video providers, and what both of them mint and check the same way: room names, the checks of a
request, and the claims of a participant's join token. It lives in the package, which Python loads with
either provider, because a provider module never imports another one.

The claims are LiveKit's access-token claims (``iss``, ``sub``, ``name``, ``nbf``, ``exp`` and the video
grant), so the simulation hands out tokens shaped like the real ones. The grant lets a participant join
one room and publish and subscribe there, nothing else: never ``roomRecord``, ``recorder``, ``roomAdmin``,
``roomCreate``, ``hidden`` or a room configuration (which could start an egress). joserfc is imported
when a token is signed, not when the plugin is loaded (the default start loads no JOSE library).
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

from legetime.sdk import ValidationError, VideoParticipant, VideoRole, VideoRoom, VideoRoomRequest

MAX_TTL = timedelta(hours=12)
"""The longest a join token may live: a consultation and its margins, never days."""
MAX_REFERENCE = 200
MAX_DISPLAY_NAME = 100
# Opaque ids only (a UUID, a keyed hash, "clinician-12"): no "+", no spaces, nothing to be a phone number.
IDENTITY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}", re.ASCII)
ALL_DIGITS = re.compile(r"[0-9]{8,}", re.ASCII)
"""Eight or more digits and nothing else looks like a phone number or a national ID: refused."""
PREFIX_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,30}", re.ASCII)

PARTICIPANT_GRANT: dict[str, bool] = {
    "roomJoin": True,
    "canPublish": True,
    "canSubscribe": True,
    "canPublishData": True,
}
"""Everything a participant of a consultation may do, and all she may do: talk, listen, chat."""


def room_name(prefix: str, reference: str) -> str:
    """The room of a reference: the same reference always gives the same name (the idempotency key), and
    the name tells the video service nothing of ours (a hash of the appointment's id)."""
    digest = hashlib.sha256(reference.encode()).hexdigest()[:32]
    return f"{prefix}{digest}"


def check_room_request(request: VideoRoomRequest) -> None:
    if not request.reference or len(request.reference) > MAX_REFERENCE:
        raise ValidationError(
            f"The room's reference must be 1–{MAX_REFERENCE} characters.", field="reference"
        )
    if request.starts_at.tzinfo is None or request.ends_at.tzinfo is None:
        raise ValidationError("The appointment's times must carry a time zone.", field="starts_at")
    if request.ends_at <= request.starts_at:
        raise ValidationError("The appointment must end after it starts.", field="ends_at")


def check_own_room(room: VideoRoom, prefix: str) -> None:
    """A room this provider made for its reference; anything else (another provider's room, a name that
    does not belong to the reference) gets no token."""
    if room.provider_id != room_name(prefix, room.reference):
        raise ValidationError("Not a room of this video provider.", field="room")


def check_join(participant: VideoParticipant, ttl: timedelta) -> None:
    identity = participant.identity
    if not IDENTITY_PATTERN.fullmatch(identity) or ALL_DIGITS.fullmatch(identity):
        raise ValidationError(
            "The participant's identity must be an opaque id (letters, digits, _ . : -; not a number).",
            field="identity",
        )
    name = participant.display_name
    if (
        not name.strip()
        or len(name) > MAX_DISPLAY_NAME
        or any(unicodedata.category(char).startswith("C") for char in name)
    ):
        raise ValidationError(
            f"The display name must be 1–{MAX_DISPLAY_NAME} printable characters.", field="display_name"
        )
    if not isinstance(participant.role, VideoRole):
        raise ValidationError("Unknown participant role.", field="role")
    if ttl <= timedelta(0) or ttl > MAX_TTL:
        raise ValidationError("A join token lives more than 0 s and at most 12 hours.", field="ttl")


def participant_claims(
    *, issuer: str, room: str, participant: VideoParticipant, ttl: timedelta, now: float
) -> dict[str, Any]:
    """The join token's claims: valid from now (whole seconds) until ``now + ttl`` (rounded up)."""
    issued = math.floor(now)
    return {
        "iss": issuer,
        "sub": participant.identity,
        "name": participant.display_name,
        "nbf": issued,
        "exp": math.ceil(now + ttl.total_seconds()),
        "attributes": {"role": participant.role.value},
        "video": {"room": room, **PARTICIPANT_GRANT},
    }


def expires_at(claims: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(int(claims["exp"]), UTC)


def sign_hs256(claims: dict[str, Any], secret: bytes) -> str:
    """A compact JWS, HS256 (LiveKit's algorithm for access tokens)."""
    from joserfc import jwt
    from joserfc.jwk import OctKey

    return jwt.encode({"alg": "HS256", "typ": "JWT"}, claims, OctKey.import_key(secret))
