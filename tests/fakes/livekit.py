"""A local LiveKit server API (Twirp RoomService) that keeps the documented contract, for the ``livekit``
video plugin's tests.

It enforces, per call: ``POST /twirp/livekit.RoomService/<Method>`` with a JSON object body; a bearer JWT
signed HS256 with the API secret, ``iss`` the API key, within ``nbf``/``exp``; the method's permission in
the token's ``video`` grant (``roomCreate`` for CreateRoom and DeleteRoom, ``roomList`` for ListRooms).
Failures answer as Twirp does: ``{"code", "msg"}`` with ``unauthenticated`` (401), ``permission_denied``
(403), ``malformed``/``invalid_argument`` (400), ``not_found`` (404), ``bad_route`` (404),
``unavailable`` (503). CreateRoom returns the existing room for an existing name (unchanged); DeleteRoom of
a room that is not there is ``not_found``. Rooms are answered with the protobuf field names (snake_case,
every field), as LiveKit's Twirp server does; requests may use either casing. Unknown fields are refused
(``malformed``), as protojson does.

It refuses, and records in ``recording_requests``, anything that would record: a CreateRoom with
``egress`` (auto egress) or ``room_preset`` (a server-side room configuration, which may hold one), and
every call to ``/twirp/livekit.Egress/*``. A test asserts ``fake.recording_requests == []``.

The JWT checks are written here from LiveKit's description (HMAC-SHA256 over ``header.payload``), not
with the JOSE library the plugin uses, so the plugin's tokens are checked by an independent reader.
``verify_access_token`` reads a participant's join token the way the LiveKit server does on connect.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PERMISSION = {"CreateRoom": "roomCreate", "DeleteRoom": "roomCreate", "ListRooms": "roomList"}
CREATE_FIELDS = {
    "name": "name",
    "room_preset": "room_preset",
    "roomPreset": "room_preset",
    "empty_timeout": "empty_timeout",
    "emptyTimeout": "empty_timeout",
    "departure_timeout": "departure_timeout",
    "departureTimeout": "departure_timeout",
    "max_participants": "max_participants",
    "maxParticipants": "max_participants",
    "node_id": "node_id",
    "nodeId": "node_id",
    "metadata": "metadata",
    "egress": "egress",
    "min_playout_delay": "min_playout_delay",
    "minPlayoutDelay": "min_playout_delay",
    "max_playout_delay": "max_playout_delay",
    "maxPlayoutDelay": "max_playout_delay",
    "sync_streams": "sync_streams",
    "syncStreams": "sync_streams",
}
RECORDING_FIELDS = ("egress", "room_preset")
STATUS = {
    "unauthenticated": 401,
    "permission_denied": 403,
    "malformed": 400,
    "invalid_argument": 400,
    "not_found": 404,
    "bad_route": 404,
    "unavailable": 503,
}


class TokenRefused(Exception):
    """A JWT LiveKit would not accept; ``code`` is the Twirp code it answers with."""

    def __init__(self, message: str, code: str = "unauthenticated") -> None:
        super().__init__(message)
        self.code = code


@dataclass
class LiveKitFake:
    api_key: str = "APIfakeLiveKitKey"
    api_secret: str = "fake-livekit-secret-0123456789abcdefghij"
    base_url: str = ""
    down: bool = False
    """Answer every call 503 ``unavailable``."""
    clock: Callable[[], float] = time.time
    rooms: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Open rooms by name, as LiveKit answers them (snake_case fields)."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    """Every request: method path, JSON body (or None), grant of the token (or None), answer status."""
    recording_requests: list[dict[str, Any]] = field(default_factory=list)
    """Requests that asked for recording or streaming (refused): must stay empty."""

    def plugin_settings(self) -> dict[str, str]:
        """The ``livekit`` plugin's settings for this fake (variable names without their prefix)."""
        return {"URL": self.base_url, "API_KEY": self.api_key, "API_SECRET": self.api_secret}

    # --- Tokens ---------------------------------------------------------------------------------------

    def verify(self, token: str, *, secret: str | None = None) -> dict[str, Any]:
        """The claims of an HS256 JWT signed with the API secret, ``iss`` the API key, valid now."""
        try:
            header_part, payload_part, signature_part = token.split(".")
            header = json.loads(_unb64(header_part))
            claims = json.loads(_unb64(payload_part))
            signature = _unb64(signature_part)
        except (ValueError, binascii.Error):
            raise TokenRefused("malformed token") from None
        if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
            raise TokenRefused("unsupported token")
        key = (secret or self.api_secret).encode()
        expected = hmac.new(key, f"{header_part}.{payload_part}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            raise TokenRefused("invalid token signature")
        if claims.get("iss") != self.api_key:
            raise TokenRefused("unknown API key")
        now = self.clock()
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            raise TokenRefused("token expired")
        if isinstance(claims.get("nbf"), int) and claims["nbf"] > now + 1:
            raise TokenRefused("token not valid yet")
        if not isinstance(claims.get("video"), dict):
            raise TokenRefused("token has no video grant", "permission_denied")
        return claims

    def verify_access_token(self, token: str) -> dict[str, Any]:
        """A participant's join token as the LiveKit server reads it when the client connects: valid, an
        identity, ``roomJoin`` for a named room."""
        claims = self.verify(token)
        video = claims["video"]
        if not claims.get("sub") or video.get("roomJoin") is not True or not video.get("room"):
            raise TokenRefused("not a join token", "permission_denied")
        return claims

    # --- The app --------------------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/twirp/livekit.RoomService/{method}", self._room_service, methods=["POST"]),
                Route("/twirp/livekit.Egress/{method}", self._egress, methods=["POST", "GET"]),
            ]
        )

    async def _egress(self, request: Request) -> Response:
        """No egress ever: refused, and recorded as a violation."""
        entry = {"path": request.url.path, "body": await _body(request), "grant": None, "status": 403}
        self.requests.append(entry)
        self.recording_requests.append(entry)
        return _twirp("permission_denied", "egress is not allowed")

    async def _room_service(self, request: Request) -> Response:
        method = request.path_params["method"]
        body = await _body(request)
        entry: dict[str, Any] = {"path": request.url.path, "body": body, "grant": None, "status": 0}
        self.requests.append(entry)
        answer = self._answer(request, method, body, entry)
        entry["status"] = answer.status_code
        return answer

    def _answer(self, request: Request, method: str, body: Any, entry: dict[str, Any]) -> Response:
        if self.down:
            return _twirp("unavailable", "service unavailable")
        if method not in PERMISSION:
            return _twirp("bad_route", f"no handler for path {request.url.path}")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _twirp("unauthenticated", "authorization header is missing")
        try:
            claims = self.verify(token)
        except TokenRefused as refused:
            return _twirp(refused.code, str(refused))
        entry["grant"] = claims["video"]
        if claims["video"].get(PERMISSION[method]) is not True:
            return _twirp("permission_denied", f"{PERMISSION[method]} permission required")
        if not isinstance(body, dict):
            return _twirp("malformed", "the body must be a JSON object")
        if method == "CreateRoom":
            return self._create(body, entry)
        if method == "DeleteRoom":
            return self._delete(body)
        return self._list(body)

    def _create(self, body: dict[str, Any], entry: dict[str, Any]) -> Response:
        unknown = set(body) - set(CREATE_FIELDS)
        if unknown:
            return _twirp("malformed", f"unknown field {sorted(unknown)[0]!r}")
        request = {CREATE_FIELDS[key]: value for key, value in body.items()}
        if any(request.get(key) not in (None, "", {}) for key in RECORDING_FIELDS):
            self.recording_requests.append(entry)
            return _twirp("permission_denied", "recording is not allowed here")
        name = request.get("name")
        if not isinstance(name, str) or not name:
            return _twirp("invalid_argument", "room name is required")
        for key in ("empty_timeout", "departure_timeout", "max_participants"):
            if not isinstance(request.get(key, 0), int) or request.get(key, 0) < 0:
                return _twirp("malformed", f"{key} must be an unsigned integer")
        if name not in self.rooms:
            self.rooms[name] = {
                "sid": "RM_" + secrets.token_hex(6),
                "name": name,
                "empty_timeout": request.get("empty_timeout") or 300,
                "departure_timeout": request.get("departure_timeout") or 20,
                "max_participants": request.get("max_participants", 0),
                "creation_time": str(int(self.clock())),  # protojson writes int64 as a string
                "turn_password": "",
                "enabled_codecs": [{"mime": "audio/opus", "fmtp_line": ""}],
                "metadata": request.get("metadata", ""),
                "num_participants": 0,
                "num_publishers": 0,
                "active_recording": False,
                "version": None,
            }
        return JSONResponse(self.rooms[name])

    def _delete(self, body: dict[str, Any]) -> Response:
        name = body.get("room")
        if not isinstance(name, str) or not name:
            return _twirp("invalid_argument", "room name is required")
        if self.rooms.pop(name, None) is None:
            return _twirp("not_found", "requested room does not exist")
        return JSONResponse({})

    def _list(self, body: dict[str, Any]) -> Response:
        names = body.get("names")
        if names is not None and not isinstance(names, list):
            return _twirp("malformed", "names must be a list")
        rooms = [room for name, room in self.rooms.items() if not names or name in names]
        return JSONResponse({"rooms": rooms})


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _twirp(code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "msg": message}, status_code=STATUS[code])


# --- The video contract's driver ------------------------------------------------------------------------


def contract_driver() -> Any:
    """``VideoDriver`` for the ``livekit`` provider against a fresh fake per test: tokens read as the
    LiveKit server reads them on connect, rooms open as the fake holds them."""
    from legetime.testing import GrantedAccess, VideoDriver
    from tests.support import ServedFake

    served = ServedFake(LiveKitFake)

    def verify_token(provider: Any, token: str) -> GrantedAccess:
        claims = served.fake.verify_access_token(token)
        return GrantedAccess.from_claims(claims)

    def is_open(provider: Any, room: Any) -> bool:
        return room.provider_id in served.fake.rooms

    return VideoDriver(verify_token=verify_token, is_open=is_open, build=served.build)
