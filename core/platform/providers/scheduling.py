"""Scheduling: the bookable times of clinics and clinicians, and booking one of them.

The built-in provider keeps opening hours that operators set through GraphQL and makes slots from them; a
clinic that runs its own booking or journal system plugs in a provider that reads and books its slots
there. Ids are the provider's own and opaque to the core; a clinician is named by the platform's person
id (a provider maps it to its own resource).

``book`` is where double booking is made impossible: of two concurrent bookings of one slot exactly one
wins, the other gets ``SlotTaken``. ``reference`` (the appointment's id) is the idempotency key: booking
the same slot again with the same reference returns the same booking.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import IntEnum
from typing import Protocol, runtime_checkable


class Weekday(IntEnum):
    """ISO weekdays, as ``date.isoweekday()`` gives them."""

    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7


@dataclass(frozen=True)
class OpeningHours:
    """One weekly period a clinician receives at a clinic, in Europe/Oslo local time, cut into slots of
    ``slot_minutes`` for the appointment types listed (their codes)."""

    clinic_id: uuid.UUID
    clinician_id: uuid.UUID
    weekday: Weekday
    opens: time
    closes: time
    slot_minutes: int
    appointment_types: tuple[str, ...]


@dataclass(frozen=True)
class SlotQuery:
    """Free slots of one appointment type at one clinic that start in ``[not_before, not_after)``
    (timezone-aware instants), optionally of one clinician. A slot that has started is never free, whatever
    ``not_before`` says."""

    clinic_id: uuid.UUID
    appointment_type: str
    not_before: datetime
    not_after: datetime
    clinician_id: uuid.UUID | None = None
    limit: int = 50


@dataclass(frozen=True)
class Slot:
    provider_id: str
    """The provider's id of the slot: what ``book`` takes. Stable while the slot exists."""
    clinic_id: uuid.UUID
    clinician_id: uuid.UUID
    appointment_type: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Booking:
    provider_id: str
    """The provider's id of the booking: what ``release`` takes."""
    slot: Slot
    reference: str


@dataclass(frozen=True)
class ScheduleManagement:
    """What the provider lets operators manage through Legetime: the built-in one everything, a clinic
    system's provider nothing (its hours are kept there)."""

    opening_hours: bool = False
    notes: list[str] = field(default_factory=list)


@runtime_checkable
class SchedulingProvider(Protocol):
    name: str
    management: ScheduleManagement

    async def find_slots(self, query: SlotQuery) -> list[Slot]:
        """Free slots, earliest first, at most ``query.limit``. A booked slot is not free."""
        ...

    async def book(self, slot_id: str, reference: str) -> Booking:
        """Book a free slot for ``reference``. Raises ``SlotTaken`` when someone else has it (exactly one of
        concurrent bookings wins), ``NotFound`` (or ``ValidationError``) when there is no such slot — an id
        the provider did not issue, a slot that has started, or one the hours no longer make. The same slot
        again with the same reference returns the same booking; a reference that holds a live booking of
        another slot raises ``IdempotencyConflict`` (release it first: a moved appointment). After a
        release the reference may book again."""
        ...

    async def release(self, booking_id: str) -> None:
        """Give the slot free again (cancelled or moved). Releasing a released booking is not an error; an
        unknown booking is ``NotFound``."""
        ...

    async def opening_hours(self, clinic_id: uuid.UUID) -> list[OpeningHours]:
        """The clinic's weekly hours as this provider knows them (empty when it does not expose them)."""
        ...

    async def set_opening_hours(self, clinic_id: uuid.UUID, hours: list[OpeningHours]) -> None:
        """Replace the clinic's weekly hours (booked appointments stay). Raises ``NotSupported`` when
        ``management.opening_hours`` is False."""
        ...
