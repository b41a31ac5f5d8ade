"""The contract every scheduling provider keeps.

Its driver knows how to build the provider and how to give it bookable times: the built-in provider gets
opening hours, a clinic system's provider gets slots in that system (its fake). The suite then holds every
provider to the same behaviour: free future slots of the type, earliest first; a booked slot is no longer
free; a taken slot is ``SlotTaken``; booking is idempotent by reference; release frees the slot and is
idempotent; a forged slot id is refused; and of concurrent bookings of one slot exactly one wins.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from legetime.sdk import (
    Booking,
    NotFound,
    NotSupported,
    OpeningHours,
    ProviderSpec,
    SchedulingProvider,
    Slot,
    SlotQuery,
    SlotTaken,
    ValidationError,
    Weekday,
)
from legetime.testing._common import BuildProvider, build_default, in_event_loop

WINDOW = timedelta(days=14)
"""The suite looks for slots from now to this far ahead."""
PARALLEL_BOOKINGS = 8


@dataclass(frozen=True)
class Schedule:
    """Where the driver made bookable times: at least ``MIN_SLOTS`` free slots of ``appointment_type``
    with ``clinician_id`` at ``clinic_id``, starting within ``WINDOW`` from now (and none of any other
    type)."""

    clinic_id: uuid.UUID
    clinician_id: uuid.UUID
    appointment_type: str


MIN_SLOTS = 4


@dataclass(frozen=True)
class SchedulingDriver:
    """How the suite makes one scheduling provider do what the contract needs."""

    prepare: Callable[[Any], Awaitable[Schedule]]
    """Give the provider bookable times (opening hours, or slots in the clinic's system) and say where."""
    build: BuildProvider = build_default
    """Builds the provider (and starts whatever fake it talks to) for one test."""


def query(schedule: Schedule, **changes: Any) -> SlotQuery:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "clinic_id": schedule.clinic_id,
        "appointment_type": schedule.appointment_type,
        "not_before": now,
        "not_after": now + WINDOW,
        "clinician_id": schedule.clinician_id,
        "limit": 50,
    } | changes
    return SlotQuery(**values)


async def free_slots(provider: Any, schedule: Schedule, **changes: Any) -> list[Slot]:
    slots: list[Slot] = await provider.find_slots(query(schedule, **changes))
    return slots


async def first_free(provider: Any, schedule: Schedule) -> Slot:
    slots = await free_slots(provider, schedule)
    assert slots, f"{provider.name}: the driver's schedule has no free slot"
    return slots[0]


def references(name: str) -> str:
    """A fresh reference (an appointment's id) per use, so a provider with shared state is not confused."""
    return f"contract-{name}-{uuid.uuid4().hex[:12]}"


def _ids(slots: list[Slot]) -> list[str]:
    return [slot.provider_id for slot in slots]


class SchedulingContract:
    """The scheduling contract (see ``legetime.testing`` for how to run it against a provider)."""

    pytestmark = pytest.mark.legetime_contract

    def test_implements_the_protocol(self, legetime_provider: Any, legetime_spec: ProviderSpec) -> None:
        assert isinstance(legetime_provider, SchedulingProvider)
        assert legetime_provider.name == legetime_spec.name

    @in_event_loop
    async def test_finds_free_future_slots_of_the_type_earliest_first(
        self, legetime_provider: Any, legetime_driver: SchedulingDriver
    ) -> None:
        schedule = await legetime_driver.prepare(legetime_provider)
        before = datetime.now(UTC)
        slots = await free_slots(legetime_provider, schedule)
        assert len(slots) >= MIN_SLOTS
        starts = [slot.starts_at for slot in slots]
        assert starts == sorted(starts)
        assert len(set(_ids(slots))) == len(slots)
        for slot in slots:
            assert slot.clinic_id == schedule.clinic_id
            assert slot.clinician_id == schedule.clinician_id
            assert slot.appointment_type == schedule.appointment_type
            assert slot.starts_at.tzinfo is not None
            assert before <= slot.starts_at < before + WINDOW
            assert slot.ends_at > slot.starts_at
        assert await free_slots(legetime_provider, schedule) == slots  # stable ids while free

    @in_event_loop
    async def test_limit_takes_the_earliest(
        self, legetime_provider: Any, legetime_driver: SchedulingDriver
    ) -> None:
        schedule = await legetime_driver.prepare(legetime_provider)
        every = await free_slots(legetime_provider, schedule)
        assert _ids(await free_slots(legetime_provider, schedule, limit=2)) == _ids(every[:2])

    @in_event_loop
    async def test_no_slots_of_another_type_or_clinic(
        self, legetime_provider: Any, legetime_driver: SchedulingDriver
    ) -> None:
        schedule = await legetime_driver.prepare(legetime_provider)
        assert await free_slots(legetime_provider, schedule, appointment_type="ikke-tilbudt") == []
        assert await free_slots(legetime_provider, schedule, clinic_id=uuid.uuid4()) == []

    @in_event_loop
    async def test_a_window_starts_no_earlier_than_asked(
        self, legetime_provider: Any, legetime_driver: SchedulingDriver
    ) -> None:
        schedule = await legetime_driver.prepare(legetime_provider)
        every = await free_slots(legetime_provider, schedule)
        later = await free_slots(legetime_provider, schedule, not_before=every[1].starts_at)
        assert later[0].provider_id == every[1].provider_id
        assert all(slot.starts_at >= every[1].starts_at for slot in later)

    @in_event_loop
    async def test_a_booked_slot_is_no_longer_free(
        self, legetime_provider: Any, legetime_driver: SchedulingDriver
    ) -> None:
        schedule = await legetime_driver.prepare(legetime_provider)
        slot = await first_free(legetime_provider, schedule)
        reference = references("book")
        booking: Booking = await legetime_provider.book(slot.provider_id, reference)
        assert booking.reference == reference
        assert booking.provider_id
        assert (booking.slot.starts_at, booking.slot.ends_at) == (slot.starts_at, slot.ends_at)
        assert (booking.slot.clinic_id, booking.slot.clinician_id) == (slot.clinic_id, slot.clinician_id)
        assert booking.slot.appointment_type == slot.appointment_type
        assert slot.provider_id not in _ids(await free_slots(legetime_provider, schedule))

    @in_event_loop
    async def test_booking_a_taken_slot_is_slot_taken(
        self, legetime_provider: Any, legetime_driver: SchedulingDriver
    ) -> None:
        schedule = await legetime_driver.prepare(legetime_provider)
        slot = await first_free(legetime_provider, schedule)
        await legetime_provider.book(slot.provider_id, references("first"))
        with pytest.raises(SlotTaken):
            await legetime_provider.book(slot.provider_id, references("second"))

    @in_event_loop
    async def test_booking_is_idempotent_by_reference(
        self, legetime_provider: Any, legetime_driver: SchedulingDriver
    ) -> None:
        schedule = await legetime_driver.prepare(legetime_provider)
        slot = await first_free(legetime_provider, schedule)
        reference = references("retried")
        first = await legetime_provider.book(slot.provider_id, reference)
        again = await legetime_provider.book(slot.provider_id, reference)
        assert again.provider_id == first.provider_id
        assert again.slot.starts_at == first.slot.starts_at

    @in_event_loop
    async def test_release_frees_the_slot_and_is_idempotent(
        self, legetime_provider: Any, legetime_driver: SchedulingDriver
    ) -> None:
        schedule = await legetime_driver.prepare(legetime_provider)
        slot = await first_free(legetime_provider, schedule)
        booking = await legetime_provider.book(slot.provider_id, references("released"))
        await legetime_provider.release(booking.provider_id)
        await legetime_provider.release(booking.provider_id)
        free = await free_slots(legetime_provider, schedule)
        assert slot.starts_at in [candidate.starts_at for candidate in free]
        again = next(candidate for candidate in free if candidate.starts_at == slot.starts_at)
        rebooked = await legetime_provider.book(again.provider_id, references("rebooked"))
        assert rebooked.provider_id != booking.provider_id

    @in_event_loop
    async def test_an_unknown_booking_cannot_be_released(
        self, legetime_provider: Any, legetime_driver: SchedulingDriver
    ) -> None:
        await legetime_driver.prepare(legetime_provider)
        with pytest.raises((NotFound, ValidationError)):
            await legetime_provider.release("no-such-booking")

    @in_event_loop
    async def test_unknown_or_forged_slot_ids_are_refused(
        self, legetime_provider: Any, legetime_driver: SchedulingDriver
    ) -> None:
        schedule = await legetime_driver.prepare(legetime_provider)
        slot = await first_free(legetime_provider, schedule)
        last = slot.provider_id[-1]
        forged = [
            "no-such-slot",
            "",
            slot.provider_id[:-1] + ("0" if last != "0" else "1"),
            slot.provider_id + "x",
        ]
        for slot_id in forged:
            with pytest.raises((NotFound, ValidationError)):
                await legetime_provider.book(slot_id, references("forged"))
        assert slot.provider_id in _ids(await free_slots(legetime_provider, schedule))

    @in_event_loop
    async def test_of_parallel_bookings_of_one_slot_exactly_one_wins(
        self, legetime_provider: Any, legetime_driver: SchedulingDriver
    ) -> None:
        schedule = await legetime_driver.prepare(legetime_provider)
        slot = await first_free(legetime_provider, schedule)
        outcomes = await asyncio.gather(
            *(
                legetime_provider.book(slot.provider_id, references(f"parallel-{n}"))
                for n in range(PARALLEL_BOOKINGS)
            ),
            return_exceptions=True,
        )
        won = [outcome for outcome in outcomes if isinstance(outcome, Booking)]
        lost = [outcome for outcome in outcomes if isinstance(outcome, SlotTaken)]
        assert len(won) == 1, outcomes
        assert len(lost) == PARALLEL_BOOKINGS - 1, outcomes
        assert slot.provider_id not in _ids(await free_slots(legetime_provider, schedule))

    @in_event_loop
    async def test_opening_hours_are_managed_as_declared(
        self, legetime_provider: Any, legetime_driver: SchedulingDriver
    ) -> None:
        await legetime_driver.prepare(legetime_provider)
        clinic = uuid.uuid4()
        hours = [
            OpeningHours(
                clinic_id=clinic,
                clinician_id=uuid.uuid4(),
                weekday=Weekday.TUESDAY,
                opens=time(8, 0),
                closes=time(11, 30),
                slot_minutes=15,
                appointment_types=("konsultasjon",),
            )
        ]
        if legetime_provider.management.opening_hours:
            await legetime_provider.set_opening_hours(clinic, hours)
            assert await legetime_provider.opening_hours(clinic) == hours
            await legetime_provider.set_opening_hours(clinic, [])
            assert await legetime_provider.opening_hours(clinic) == []
        else:
            with pytest.raises(NotSupported):
                await legetime_provider.set_opening_hours(clinic, hours)
