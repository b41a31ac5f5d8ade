"""The scheduling contract (``legetime.testing.scheduling``), run against every provider the plugins offer,
and against the example of a clinic system's provider (registered only in tests).

The built-in provider keeps its hours and bookings in its own tables, so it runs on SQLite and on
PostgreSQL: the parallel bookings of one slot are then real concurrent transactions on separate
connections, and the partial unique index is what lets exactly one of them commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from legetime.core.platform.providers import Capability, ProviderSpec
from legetime.core.platform.providers.scheduling import OpeningHours, Weekday
from legetime.testing import Schedule, SchedulingContract, SchedulingDriver, build_provider
from tests.contracts.builtin import check_against_driver
from tests.fakes.clinic_booking import ClinicBookingFake
from tests.plugins import clinic_booking_provider
from tests.support import ServedFake, offered_specs

TYPE = "kontroll"

# --- Drivers ---------------------------------------------------------------------------------------


async def _builtin_hours(provider: Any) -> Schedule:
    """Every day 08:00–20:00 in half hours: free slots within the suite's window whenever it runs."""
    schedule = Schedule(clinic_id=uuid.uuid4(), clinician_id=uuid.uuid4(), appointment_type=TYPE)
    hours = [
        OpeningHours(
            clinic_id=schedule.clinic_id,
            clinician_id=schedule.clinician_id,
            weekday=day,
            opens=time(8, 0),
            closes=time(20, 0),
            slot_minutes=30,
            appointment_types=(TYPE, "samtale"),
        )
        for day in Weekday
    ]
    await provider.set_opening_hours(schedule.clinic_id, hours)
    return schedule


def _builtin_on(database_url: str) -> Any:
    @contextmanager
    def build(spec: ProviderSpec, data_dir: Path) -> Iterator[Any]:
        yield build_provider(spec, data_dir, database_url=database_url)

    return build


class _ClinicBooking(ServedFake[ClinicBookingFake]):
    """The clinic's own booking system, served locally; the driver enters its slots there."""

    async def prepare(self, provider: Any) -> Schedule:
        clinician = uuid.uuid4()
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
        for n in range(8):
            self.fake.add_slot(clinician, TYPE, tomorrow + timedelta(minutes=20 * n))
        self.fake.add_slot(clinician, "samtale", tomorrow + timedelta(hours=3))
        return Schedule(provider.settings.clinic_id, clinician, TYPE)


_clinic_booking = _ClinicBooking(ClinicBookingFake)

DRIVERS: dict[str, SchedulingDriver] = {
    "builtin": SchedulingDriver(prepare=_builtin_hours),
    clinic_booking_provider.NAME: SchedulingDriver(
        prepare=_clinic_booking.prepare, build=_clinic_booking.build
    ),
}

SPECS = offered_specs(Capability.SCHEDULING)
EXAMPLES = [clinic_booking_provider.SPEC]
CASES = (
    [pytest.param((spec, "sqlite"), id=f"{spec.name}-sqlite") for spec in SPECS]
    + [
        pytest.param((spec, "postgresql"), id=f"{spec.name}-postgresql", marks=pytest.mark.postgres)
        for spec in SPECS
        if spec.name == "builtin"  # the providers with tables of their own
    ]
    + [pytest.param((spec, "http"), id=spec.name) for spec in EXAMPLES]
)


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest) -> tuple[ProviderSpec, str]:
    found: tuple[ProviderSpec, str] = request.param
    return found


@pytest.fixture
def legetime_spec(case: tuple[ProviderSpec, str]) -> ProviderSpec:
    return case[0]


@pytest.fixture
def legetime_driver(case: tuple[ProviderSpec, str], request: pytest.FixtureRequest) -> SchedulingDriver:
    spec, backend = case
    if spec.name not in DRIVERS:
        pytest.fail(
            f"scheduling provider {spec.name!r} has no contract driver: add one to DRIVERS in {__file__}",
            pytrace=False,
        )
    driver = DRIVERS[spec.name]
    if backend == "postgresql":
        return SchedulingDriver(
            prepare=driver.prepare, build=_builtin_on(request.getfixturevalue("fresh_postgres_url"))
        )
    return driver


def test_the_suite_has_providers_to_check() -> None:
    # An empty parameter set would silently skip the whole contract.
    assert "builtin" in [spec.name for spec in SPECS], "the built-in scheduling provider is not offered"


def test_every_offered_provider_has_a_driver() -> None:
    missing = [spec.name for spec in SPECS if spec.name not in DRIVERS]
    assert not missing, f"add contract drivers for scheduling providers {missing}"


class TestSchedulingContract(SchedulingContract):
    pass


async def test_the_check_is_ok_against_the_driver(
    legetime_spec: ProviderSpec, legetime_driver: SchedulingDriver, tmp_path: Path
) -> None:
    await check_against_driver(legetime_spec, legetime_driver, tmp_path)
