"""A local clinic booking system (the kind a clinic runs with its journal): the HTTP API that the example
clinic-system scheduling provider (``tests/plugins/clinic_booking_provider.py``) talks to.

No real product stands behind it; it keeps the contract such systems document, which the provider relies
on:

* **Bearer authentication** on every call (``Authorization: Bearer <token>``): 401 without or with a
  wrong token.
* ``GET /v1/practitioners``: who receives (a cheap authenticated read; the provider's ``check``).
* ``GET /v1/slots?from=&to=&type=[&practitioner=][&limit=]``: free slots of one appointment type starting
  in ``[from, to)`` (ISO 8601 with offset), earliest first — ``{"slots": [{id, practitioner, type, start,
  end}]}``; 400 for a malformed query.
* ``POST /v1/bookings`` ``{"slotId", "externalReference"}``: books a free slot (201). **One booking per
  slot**: a slot booked by another reference is 409 ``slot_taken``; the same slot with the same reference
  returns the existing booking (200, idempotent); a reference that holds a booking of another slot is 409
  ``reference_in_use``; an unknown slot is 404; a slot that has started is 422 ``slot_started``.
* ``DELETE /v1/bookings/{id}``: cancels (204), again 204; an unknown booking is 404.

The store is in memory, changed under a lock with no ``await`` between check and change, so concurrent
requests cannot book one slot twice. Controls for tests: ``add_slot``/``add_slots`` (the clinic's own
hours, kept here), ``down`` (503 for everything).
"""

from __future__ import annotations

import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class StoredSlot:
    id: str
    practitioner: uuid.UUID
    type: str
    start: datetime
    end: datetime

    def dump(self) -> dict[str, str]:
        return {
            "id": self.id,
            "practitioner": str(self.practitioner),
            "type": self.type,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }


@dataclass
class StoredBooking:
    id: str
    slot_id: str
    reference: str
    cancelled: bool = False


@dataclass
class ClinicBookingFake:
    token: str = field(default_factory=lambda: f"cbs_{secrets.token_hex(16)}")
    base_url: str = ""
    down: bool = False
    slots: dict[str, StoredSlot] = field(default_factory=dict)
    bookings: dict[str, StoredBooking] = field(default_factory=dict)
    calls: list[tuple[str, str, int]] = field(default_factory=list)
    """(method, path, status) of every request."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def plugin_settings(self) -> dict[str, str]:
        """The provider's settings for this fake (variable names without their prefix)."""
        return {"BASE_URL": self.base_url, "API_TOKEN": self.token}

    # --- Controls ---------------------------------------------------------------------------------

    def add_slot(self, practitioner: uuid.UUID, type: str, start: datetime, minutes: int = 20) -> StoredSlot:
        start = start.astimezone(UTC)
        slot = StoredSlot(
            f"slt_{secrets.token_hex(8)}", practitioner, type, start, start + timedelta(minutes=minutes)
        )
        with self._lock:
            self.slots[slot.id] = slot
        return slot

    def live_bookings(self, slot_id: str) -> list[StoredBooking]:
        with self._lock:
            return [b for b in self.bookings.values() if b.slot_id == slot_id and not b.cancelled]

    # --- The app ----------------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/practitioners", self._guarded(self._practitioners), methods=["GET"]),
                Route("/v1/slots", self._guarded(self._find), methods=["GET"]),
                Route("/v1/bookings", self._guarded(self._book), methods=["POST"]),
                Route("/v1/bookings/{booking_id}", self._guarded(self._cancel), methods=["DELETE"]),
            ]
        )

    def _guarded(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            if self.down:
                response: Response = _error(503, "unavailable")
            elif request.headers.get("authorization") != f"Bearer {self.token}":
                response = _error(401, "unauthorized")
            else:
                response = await handler(request)
            self.calls.append((request.method, request.url.path, response.status_code))
            return response

        return endpoint

    async def _practitioners(self, request: Request) -> Response:
        with self._lock:
            people = sorted({str(slot.practitioner) for slot in self.slots.values()})
        return JSONResponse({"practitioners": [{"id": person} for person in people]})

    async def _find(self, request: Request) -> Response:
        params = request.query_params
        try:
            start, end = _instant(params["from"]), _instant(params["to"])
            kind = params["type"]
            practitioner = uuid.UUID(params["practitioner"]) if "practitioner" in params else None
            limit = int(params.get("limit", "50"))
        except (KeyError, ValueError):
            return _error(400, "bad_query")
        with self._lock:
            taken = {b.slot_id for b in self.bookings.values() if not b.cancelled}
            free = [
                slot
                for slot in self.slots.values()
                if slot.type == kind
                and start <= slot.start < end
                and slot.id not in taken
                and (practitioner is None or slot.practitioner == practitioner)
            ]
        free.sort(key=lambda slot: (slot.start, str(slot.practitioner)))
        return JSONResponse({"slots": [slot.dump() for slot in free[:limit]]})

    async def _book(self, request: Request) -> Response:
        try:
            body = await request.json()
            slot_id, reference = body["slotId"], body["externalReference"]
        except (KeyError, TypeError, ValueError):
            return _error(400, "bad_request")
        if not isinstance(slot_id, str) or not isinstance(reference, str) or not reference:
            return _error(400, "bad_request")
        with self._lock:  # check and change with nothing in between: one booking per slot
            slot = self.slots.get(slot_id)
            if slot is None:
                return _error(404, "slot_not_found")
            live = [b for b in self.bookings.values() if not b.cancelled]
            held = next((b for b in live if b.reference == reference), None)
            if held is not None:
                if held.slot_id == slot_id:
                    return JSONResponse(self._dump(held), status_code=200)
                return _error(409, "reference_in_use")
            if any(b.slot_id == slot_id for b in live):
                return _error(409, "slot_taken")
            if slot.start <= datetime.now(UTC):
                return _error(422, "slot_started")
            booking = StoredBooking(f"bkg_{secrets.token_hex(8)}", slot_id, reference)
            self.bookings[booking.id] = booking
            return JSONResponse(self._dump(booking), status_code=201)

    async def _cancel(self, request: Request) -> Response:
        with self._lock:
            booking = self.bookings.get(request.path_params["booking_id"])
            if booking is None:
                return _error(404, "booking_not_found")
            booking.cancelled = True
        return Response(status_code=204)

    def _dump(self, booking: StoredBooking) -> dict[str, Any]:
        return {
            "id": booking.id,
            "externalReference": booking.reference,
            "slot": self.slots[booking.slot_id].dump(),
        }


def _instant(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("an instant needs its offset")
    return moment


def _error(status: int, error: str) -> Response:
    return JSONResponse({"error": error}, status_code=status)
