"""The built-in scheduling provider beyond the contract: local time across Oslo's clock changes, the
validation of opening hours, slots in the past, re-validation of a slot id when booked, and hours replaced
under existing bookings."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from legetime.core.platform.errors import IdempotencyConflict, NotFound, SlotTaken, ValidationError
from legetime.core.platform.providers import Capability
from legetime.core.platform.providers.scheduling import Booking, OpeningHours, SlotQuery, Weekday
from legetime.plugins.scheduling.builtin import BuiltinScheduling, SlotIdentity, SlotIds
from legetime.sdk import PluginDatabase
from legetime.testing import plugin_database
from tests.support import offered_specs

KEY = b"k" * 32
CLINIC = uuid.UUID("6f1c8a0e-0000-4000-8000-000000000001")
DOCTOR = uuid.UUID("6f1c8a0e-0000-4000-8000-000000000002")
NURSE = uuid.UUID("6f1c8a0e-0000-4000-8000-000000000003")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


class Clock:
    def __init__(self, now: str) -> None:
        self.now = at(now)

    def __call__(self) -> datetime:
        return self.now


def period(
    weekday: Weekday,
    opens: str,
    closes: str,
    minutes: int = 30,
    types: tuple[str, ...] = ("kontroll",),
    clinician: uuid.UUID = DOCTOR,
) -> OpeningHours:
    return OpeningHours(
        clinic_id=CLINIC,
        clinician_id=clinician,
        weekday=weekday,
        opens=time.fromisoformat(opens),
        closes=time.fromisoformat(closes),
        slot_minutes=minutes,
        appointment_types=types,
    )


def window(start: str, end: str, kind: str = "kontroll", **changes: Any) -> SlotQuery:
    return SlotQuery(
        clinic_id=CLINIC, appointment_type=kind, not_before=at(start), not_after=at(end), **changes
    )


@pytest.fixture
def database(tmp_path: Path) -> PluginDatabase:
    return plugin_database(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database(request: pytest.FixtureRequest, tmp_path: Path) -> PluginDatabase:
    if request.param == "sqlite":
        return plugin_database(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
    return plugin_database(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
def clock() -> Clock:
    return Clock("2026-03-20T12:00:00+01:00")  # a Friday, before summer time


@pytest.fixture
def provider(database: PluginDatabase, clock: Clock) -> BuiltinScheduling:
    return BuiltinScheduling(database, KEY, now=clock)


def starts(slots: list[Any]) -> list[str]:
    return [slot.starts_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") for slot in slots]


# --- Registration ----------------------------------------------------------------------------------


def test_the_builtin_provider_is_offered_as_a_real_provider() -> None:
    spec = next(spec for spec in offered_specs(Capability.SCHEDULING) if spec.name == "builtin")
    assert not spec.test_only
    assert BuiltinScheduling.management.opening_hours


# --- Local time and the clock changes --------------------------------------------------------------


async def test_nine_local_is_eight_utc_in_winter_and_seven_in_summer(provider: BuiltinScheduling) -> None:
    await provider.set_opening_hours(CLINIC, [period(Weekday.MONDAY, "09:00", "10:00")])
    # Summer time starts on the last Sunday of March (29 March 2026, 02:00 → 03:00).
    spring = await provider.find_slots(window("2026-03-21T00:00Z", "2026-04-01T00:00Z"))
    assert starts(spring) == [
        "2026-03-23 08:00",
        "2026-03-23 08:30",
        "2026-03-30 07:00",
        "2026-03-30 07:30",
    ]
    assert all(slot.ends_at - slot.starts_at == timedelta(minutes=30) for slot in spring)
    # It ends on the last Sunday of October (25 October 2026, 03:00 → 02:00).
    autumn = await provider.find_slots(window("2026-10-18T00:00Z", "2026-10-28T00:00Z"))
    assert starts(autumn) == [
        "2026-10-19 07:00",
        "2026-10-19 07:30",
        "2026-10-26 08:00",
        "2026-10-26 08:30",
    ]


async def test_the_hour_skipped_in_spring_has_no_slots(provider: BuiltinScheduling) -> None:
    await provider.set_opening_hours(CLINIC, [period(Weekday.SUNDAY, "01:30", "03:30")])
    slots = await provider.find_slots(window("2026-03-29T00:00+01:00", "2026-03-30T00:00+02:00"))
    # 01:30 CET and 03:00 CEST; 02:00 and 02:30 do not exist that night.
    assert starts(slots) == ["2026-03-29 00:30", "2026-03-29 01:00"]


async def test_the_hour_repeated_in_autumn_is_offered_once(provider: BuiltinScheduling) -> None:
    await provider.set_opening_hours(CLINIC, [period(Weekday.SUNDAY, "02:00", "03:00")])
    slots = await provider.find_slots(window("2026-10-24T22:00Z", "2026-10-25T23:00Z"))
    assert starts(slots) == ["2026-10-25 00:00", "2026-10-25 00:30"]  # the first 02:00 and 02:30 (CEST)
    booking = await provider.book(slots[0].provider_id, "appointment-fold")
    assert booking.slot.starts_at == at("2026-10-25T00:00Z")


# --- Slots -----------------------------------------------------------------------------------------


async def test_slots_already_started_are_not_offered(provider: BuiltinScheduling, clock: Clock) -> None:
    await provider.set_opening_hours(CLINIC, [period(Weekday.MONDAY, "09:00", "11:00")])
    first = await provider.find_slots(window("2026-03-23T00:00Z", "2026-03-24T00:00Z"))
    assert starts(first) == ["2026-03-23 08:00", "2026-03-23 08:30", "2026-03-23 09:00", "2026-03-23 09:30"]
    clock.now = at("2026-03-23T09:40:00+01:00")
    later = await provider.find_slots(window("2026-03-23T00:00Z", "2026-03-24T00:00Z"))
    assert starts(later) == ["2026-03-23 09:00", "2026-03-23 09:30"]  # 10:00 and 10:30 local
    with pytest.raises(NotFound):
        await provider.book(first[0].provider_id, "appointment-late")


async def test_slots_of_clinicians_are_merged_earliest_first(provider: BuiltinScheduling) -> None:
    await provider.set_opening_hours(
        CLINIC,
        [
            period(Weekday.MONDAY, "09:00", "10:00", minutes=20),
            period(Weekday.MONDAY, "09:10", "10:00", minutes=25, clinician=NURSE),
        ],
    )
    slots = await provider.find_slots(window("2026-03-23T00:00Z", "2026-03-24T00:00Z"))
    assert [(s.starts_at.strftime("%H:%M"), s.clinician_id) for s in slots] == [
        ("08:00", DOCTOR),
        ("08:10", NURSE),
        ("08:20", DOCTOR),
        ("08:35", NURSE),
        ("08:40", DOCTOR),
    ]
    only_nurse = await provider.find_slots(
        window("2026-03-23T00:00Z", "2026-03-24T00:00Z", clinician_id=NURSE)
    )
    assert {slot.clinician_id for slot in only_nurse} == {NURSE}
    assert len(await provider.find_slots(window("2026-03-23T00:00Z", "2026-03-24T00:00Z", limit=3))) == 3


async def test_a_slot_of_a_type_not_in_the_hours_is_refused(provider: BuiltinScheduling) -> None:
    await provider.set_opening_hours(CLINIC, [period(Weekday.MONDAY, "09:00", "10:00", types=("kontroll",))])
    assert await provider.find_slots(window("2026-03-23T00:00Z", "2026-03-24T00:00Z", kind="samtale")) == []
    # A correctly signed id of a slot at an offered time, but of a type these hours do not offer.
    signed = SlotIds(KEY).encode(SlotIdentity(CLINIC, DOCTOR, at("2026-03-23T09:00+01:00"), 30, "samtale"))
    with pytest.raises(NotFound):
        await provider.book(signed, "appointment-wrong-type")
    # Nor one of another length, or off the hours' grid.
    for minutes, start in ((20, "09:00"), (30, "09:10"), (30, "10:00")):
        moment = at(f"2026-03-23T{start}+01:00")
        other = SlotIds(KEY).encode(SlotIdentity(CLINIC, DOCTOR, moment, minutes, "kontroll"))
        with pytest.raises(NotFound):
            await provider.book(other, "appointment-off-grid")


async def test_a_slot_id_from_before_the_hours_changed_is_refused(provider: BuiltinScheduling) -> None:
    await provider.set_opening_hours(CLINIC, [period(Weekday.MONDAY, "09:00", "10:00")])
    [slot, _] = await provider.find_slots(window("2026-03-23T00:00Z", "2026-03-24T00:00Z"))
    await provider.set_opening_hours(CLINIC, [period(Weekday.MONDAY, "09:00", "10:00", types=("samtale",))])
    with pytest.raises(NotFound):
        await provider.book(slot.provider_id, "appointment-stale")


async def test_a_slot_id_signed_with_another_key_is_refused(provider: BuiltinScheduling) -> None:
    await provider.set_opening_hours(CLINIC, [period(Weekday.MONDAY, "09:00", "10:00")])
    other = SlotIds(b"x" * 32).encode(
        SlotIdentity(CLINIC, DOCTOR, at("2026-03-23T09:00+01:00"), 30, "kontroll")
    )
    with pytest.raises(NotFound):
        await provider.book(other, "appointment-forged")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"not_before": datetime(2026, 3, 23)}, "not_before"),
        ({"not_after": at("2026-03-22T00:00Z")}, "not_after"),
        ({"not_after": at("2028-03-22T00:00Z")}, "not_after"),
        ({"limit": 0}, "limit"),
        ({"appointment_type": ""}, "appointment_type"),
    ],
)
async def test_a_malformed_query_is_refused(
    provider: BuiltinScheduling, changes: dict[str, Any], field: str
) -> None:
    query = window("2026-03-23T00:00Z", "2026-03-24T00:00Z")
    with pytest.raises(ValidationError) as error:
        await provider.find_slots(SlotQuery(**{**query.__dict__, **changes}))
    assert error.value.field == field


# --- Opening hours ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "field"),
    [
        ([period(Weekday.MONDAY, "10:00", "09:00")], "hours.0.closes"),
        ([period(Weekday.MONDAY, "10:00", "10:00")], "hours.0.closes"),
        ([period(Weekday.MONDAY, "09:00", "10:00", minutes=4)], "hours.0.slot_minutes"),
        ([period(Weekday.MONDAY, "08:00", "13:00", minutes=241)], "hours.0.slot_minutes"),
        ([period(Weekday.MONDAY, "09:00", "09:20", minutes=30)], "hours.0.slot_minutes"),
        ([period(Weekday.MONDAY, "09:00", "10:00", types=())], "hours.0.appointment_types"),
        ([period(Weekday.MONDAY, "09:00", "10:00", types=("",))], "hours.0.appointment_types"),
        ([period(Weekday.MONDAY, "09:00:30", "10:00")], "hours.0.opens"),
        (
            [period(Weekday.MONDAY, "09:00", "12:00"), period(Weekday.MONDAY, "11:30", "13:00")],
            "hours.1.opens",
        ),
        (
            [period(Weekday.MONDAY, "09:00", "12:00"), period(Weekday.MONDAY, "10:00", "11:00")],
            "hours.1.opens",
        ),
        (
            [OpeningHours(uuid.uuid4(), DOCTOR, Weekday.MONDAY, time(9), time(10), 30, ("kontroll",))],
            "hours.0.clinic_id",
        ),
        ([OpeningHours(CLINIC, DOCTOR, 8, time(9), time(10), 30, ("kontroll",))], "hours.0.weekday"),  # type: ignore[arg-type]
    ],
)
async def test_invalid_hours_are_refused_and_nothing_is_stored(
    provider: BuiltinScheduling, hours: list[OpeningHours], field: str
) -> None:
    kept = [period(Weekday.FRIDAY, "08:00", "09:00")]
    await provider.set_opening_hours(CLINIC, kept)
    with pytest.raises(ValidationError) as error:
        await provider.set_opening_hours(CLINIC, hours)
    assert error.value.field == field
    assert await provider.opening_hours(CLINIC) == kept


async def test_adjacent_periods_and_other_clinicians_may_share_a_day(provider: BuiltinScheduling) -> None:
    hours = [
        period(Weekday.MONDAY, "09:00", "12:00"),
        period(Weekday.MONDAY, "12:00", "15:00", minutes=15, types=("samtale", "kontroll")),
        period(Weekday.MONDAY, "09:00", "12:00", clinician=NURSE),
        period(Weekday.TUESDAY, "09:00", "12:00"),
    ]
    await provider.set_opening_hours(CLINIC, hours)
    stored = await provider.opening_hours(CLINIC)
    assert sorted(stored, key=lambda p: (str(p.clinician_id), p.weekday, p.opens)) == sorted(
        hours, key=lambda p: (str(p.clinician_id), p.weekday, p.opens)
    )
    assert await provider.opening_hours(uuid.uuid4()) == []


async def test_replacing_the_hours_keeps_the_bookings(any_database: PluginDatabase, clock: Clock) -> None:
    provider = BuiltinScheduling(any_database, KEY, now=clock)
    await provider.set_opening_hours(CLINIC, [period(Weekday.MONDAY, "09:00", "10:00")])
    query = window("2026-03-23T00:00Z", "2026-03-24T00:00Z")
    [slot, free] = await provider.find_slots(query)
    booking = await provider.book(slot.provider_id, "appointment-kept")
    # The same hours again, widened: the booked slot stays booked.
    await provider.set_opening_hours(CLINIC, [period(Weekday.MONDAY, "08:00", "10:00")])
    assert slot.starts_at not in [s.starts_at for s in await provider.find_slots(query)]
    assert free.starts_at in [s.starts_at for s in await provider.find_slots(query)]
    assert await provider.book(slot.provider_id, "appointment-kept") == booking  # still its booking
    # Closed altogether: the booking still exists and can be released.
    await provider.set_opening_hours(CLINIC, [])
    assert await provider.find_slots(query) == []
    await provider.release(booking.provider_id)
    await provider.release(booking.provider_id)


# --- Booking ---------------------------------------------------------------------------------------


async def test_a_reference_books_one_slot_at_a_time(provider: BuiltinScheduling) -> None:
    await provider.set_opening_hours(CLINIC, [period(Weekday.MONDAY, "09:00", "10:00")])
    [first, second] = await provider.find_slots(window("2026-03-23T00:00Z", "2026-03-24T00:00Z"))
    booking = await provider.book(first.provider_id, "appointment-1")
    with pytest.raises(IdempotencyConflict) as error:
        await provider.book(second.provider_id, "appointment-1")
    assert error.value.field == "reference"
    # Moving the appointment: release, then book the other slot with the same reference.
    await provider.release(booking.provider_id)
    moved = await provider.book(second.provider_id, "appointment-1")
    assert moved.provider_id != booking.provider_id
    assert moved.slot.starts_at == second.starts_at


@pytest.mark.parametrize("reference", ["", "x" * 201])
async def test_a_reference_must_be_given(provider: BuiltinScheduling, reference: str) -> None:
    await provider.set_opening_hours(CLINIC, [period(Weekday.MONDAY, "09:00", "10:00")])
    [slot, _] = await provider.find_slots(window("2026-03-23T00:00Z", "2026-03-24T00:00Z"))
    with pytest.raises(ValidationError):
        await provider.book(slot.provider_id, reference)


async def test_an_unknown_booking_cannot_be_released(provider: BuiltinScheduling) -> None:
    for booking_id in ("not-a-uuid", str(uuid.uuid4())):
        with pytest.raises(NotFound):
            await provider.release(booking_id)


@pytest.mark.postgres
def test_bookings_from_separate_processes_book_a_slot_once(tmp_path: Path, fresh_postgres_url: str) -> None:
    """Eight event loops in eight threads, each with its own provider and database handle (as eight API
    processes would be), book one slot at the same moment: the unique index lets one commit."""
    clock = Clock("2026-03-20T12:00:00+01:00")
    setup = BuiltinScheduling(plugin_database(fresh_postgres_url), KEY, now=clock)
    asyncio.run(setup.set_opening_hours(CLINIC, [period(Weekday.MONDAY, "09:00", "10:00")]))
    [slot, _] = asyncio.run(setup.find_slots(window("2026-03-23T00:00Z", "2026-03-24T00:00Z")))

    def book(n: int) -> Booking | Exception:
        provider = BuiltinScheduling(PluginDatabase(fresh_postgres_url), KEY, now=clock)
        try:
            return asyncio.run(provider.book(slot.provider_id, f"appointment-{n}"))
        except Exception as error:
            return error

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(book, range(8)))
    assert sum(isinstance(outcome, Booking) for outcome in outcomes) == 1, outcomes
    assert sum(isinstance(outcome, SlotTaken) for outcome in outcomes) == 7, outcomes


# --- check -----------------------------------------------------------------------------------------


async def test_the_check_reports_whether_the_database_answers(provider: BuiltinScheduling) -> None:
    assert (await provider.check()).ok
    unreachable = BuiltinScheduling(PluginDatabase("postgresql+asyncpg://nobody@127.0.0.1:9/x"), KEY)
    result = await unreachable.check()
    assert not result.ok
    assert "unreachable" in result.message
