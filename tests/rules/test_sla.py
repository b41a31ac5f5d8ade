"""SLA deadline: before 20:00 Oslo time → the same day, from 20:00 → the next day; every day of the week."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from legetime.core.consultation.sla import is_overdue, sla_due_at, sla_due_date

OSLO = ZoneInfo("Europe/Oslo")
CUTOFF = time(20, 0)
END_OF_DAY = time(23, 59, 59, 999999)


def oslo(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=OSLO)


def due(received_at: datetime, cutoff: time = CUTOFF) -> datetime:
    return sla_due_at(received_at, cutoff=cutoff, zone=OSLO)


def end_of_oslo_day(day: date) -> datetime:
    return datetime.combine(day, END_OF_DAY, tzinfo=OSLO)


# --- the rule ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "due_day"),
    [
        (oslo(2025, 6, 11, 0, 0), date(2025, 6, 11)),
        (oslo(2025, 6, 11, 8, 30), date(2025, 6, 11)),
        (oslo(2025, 6, 11, 19, 59, 59, 999999), date(2025, 6, 11)),
        (oslo(2025, 6, 11, 20, 0), date(2025, 6, 12)),  # exactly at the cutoff: next day
        (oslo(2025, 6, 11, 20, 0, 0, 1), date(2025, 6, 12)),
        (oslo(2025, 6, 11, 23, 59, 59), date(2025, 6, 12)),
        # Weekends are ordinary days.
        (oslo(2025, 6, 14, 12, 0), date(2025, 6, 14)),  # Saturday
        (oslo(2025, 6, 14, 21, 0), date(2025, 6, 15)),  # Saturday evening -> Sunday
        (oslo(2025, 6, 15, 19, 0), date(2025, 6, 15)),  # Sunday
        (oslo(2025, 6, 15, 22, 0), date(2025, 6, 16)),  # Sunday evening -> Monday
        # Month, year and leap-day boundaries.
        (oslo(2025, 6, 30, 20, 0), date(2025, 7, 1)),
        (oslo(2025, 12, 31, 20, 30), date(2026, 1, 1)),
        (oslo(2028, 2, 28, 21, 0), date(2028, 2, 29)),
    ],
)
def test_due_day(received: datetime, due_day: date) -> None:
    assert sla_due_date(received, cutoff=CUTOFF, zone=OSLO) == due_day
    assert due(received) == end_of_oslo_day(due_day)


def test_due_at_is_the_last_microsecond_of_the_day_in_utc() -> None:
    # Summer (CEST, UTC+2): the end of 11 June in Oslo is 21:59:59.999999 UTC.
    result = due(oslo(2025, 6, 11, 9, 0))
    assert result == datetime(2025, 6, 11, 21, 59, 59, 999999, tzinfo=UTC)
    assert result.utcoffset() == timedelta(0)
    assert result.tzinfo is UTC
    # Winter (CET, UTC+1).
    assert due(oslo(2025, 1, 15, 9, 0)) == datetime(2025, 1, 15, 22, 59, 59, 999999, tzinfo=UTC)
    # Shown in Oslo, it reads as the due day, not midnight of the next one.
    assert due(oslo(2025, 1, 15, 9, 0)).astimezone(OSLO).date() == date(2025, 1, 15)


def test_the_cutoff_is_configurable() -> None:
    received = oslo(2025, 6, 11, 16, 30)
    assert due(received, cutoff=time(16, 0)) == end_of_oslo_day(date(2025, 6, 12))
    assert due(received, cutoff=time(17, 0)) == end_of_oslo_day(date(2025, 6, 11))


def test_the_zone_is_configurable() -> None:
    # 19:30 in Oslo is 18:30 in London: both before 20:00 locally, but London's day ends an hour later.
    received = oslo(2025, 1, 15, 19, 30)
    london = ZoneInfo("Europe/London")
    assert sla_due_at(received, cutoff=CUTOFF, zone=london) == datetime(
        2025, 1, 15, 23, 59, 59, 999999, tzinfo=UTC
    )
    # 20:30 in Helsinki is 19:30 in Oslo: after the cutoff there, before it here.
    helsinki_evening = datetime(2025, 1, 15, 20, 30, tzinfo=ZoneInfo("Europe/Helsinki"))
    assert sla_due_date(helsinki_evening, cutoff=CUTOFF, zone=OSLO) == date(2025, 1, 15)
    assert sla_due_date(helsinki_evening, cutoff=CUTOFF, zone=ZoneInfo("Europe/Helsinki")) == date(
        2025, 1, 16
    )


# --- any zone in, the Oslo wall clock decides -------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "due_day"),
    [
        # 18:59 UTC in winter is 19:59 in Oslo: same day. 19:00 UTC is 20:00 in Oslo: next day.
        (datetime(2025, 1, 15, 18, 59, tzinfo=UTC), date(2025, 1, 15)),
        (datetime(2025, 1, 15, 19, 0, tzinfo=UTC), date(2025, 1, 16)),
        # Summer: the same hour in UTC is later in Oslo.
        (datetime(2025, 6, 11, 17, 59, tzinfo=UTC), date(2025, 6, 11)),
        (datetime(2025, 6, 11, 18, 0, tzinfo=UTC), date(2025, 6, 12)),
        # 23:30 UTC on the 14th is already the 15th in Oslo (00:30): due that day.
        (datetime(2025, 1, 14, 23, 30, tzinfo=UTC), date(2025, 1, 15)),
        # Other zones and fixed offsets: only the instant matters (04:00 +09:00 is 20:00 in Oslo).
        (datetime(2025, 1, 15, 13, 59, tzinfo=ZoneInfo("America/New_York")), date(2025, 1, 15)),
        (datetime(2025, 1, 15, 14, 0, tzinfo=ZoneInfo("America/New_York")), date(2025, 1, 16)),
        (datetime(2025, 1, 16, 3, 59, tzinfo=timezone(timedelta(hours=9))), date(2025, 1, 15)),
        (datetime(2025, 1, 16, 4, 0, tzinfo=timezone(timedelta(hours=9))), date(2025, 1, 16)),
    ],
)
def test_received_at_in_other_zones(received: datetime, due_day: date) -> None:
    assert sla_due_date(received, cutoff=CUTOFF, zone=OSLO) == due_day
    assert due(received) == end_of_oslo_day(due_day)


# --- daylight saving time (last Sunday of March and of October) --------------------------------------


def test_spring_forward_day() -> None:
    # 30 March 2025: 02:00 -> 03:00, the day has 23 hours. 19:59 CEST = 17:59 UTC.
    before = datetime(2025, 3, 30, 17, 59, tzinfo=UTC)
    after = datetime(2025, 3, 30, 18, 0, tzinfo=UTC)
    assert before.astimezone(OSLO).time() == time(19, 59)
    assert due(before) == datetime(2025, 3, 30, 21, 59, 59, 999999, tzinfo=UTC)  # CEST already
    assert due(after) == datetime(2025, 3, 31, 21, 59, 59, 999999, tzinfo=UTC)
    # Received in the night before the change (CET): due at the end of the same (short) day.
    assert due(datetime(2025, 3, 30, 0, 30, tzinfo=UTC)) == datetime(
        2025, 3, 30, 21, 59, 59, 999999, tzinfo=UTC
    )


def test_the_evening_before_spring_forward() -> None:
    # Saturday 29 March 20:30 CET: due at the end of Sunday, which ends in CEST.
    assert due(oslo(2025, 3, 29, 20, 30)) == datetime(2025, 3, 30, 21, 59, 59, 999999, tzinfo=UTC)


def test_fall_back_day() -> None:
    # 26 October 2025: 03:00 -> 02:00, the day has 25 hours. 19:59 CET = 18:59 UTC.
    before = datetime(2025, 10, 26, 18, 59, tzinfo=UTC)
    after = datetime(2025, 10, 26, 19, 0, tzinfo=UTC)
    assert before.astimezone(OSLO).time() == time(19, 59)
    assert due(before) == datetime(2025, 10, 26, 22, 59, 59, 999999, tzinfo=UTC)  # CET by then
    assert due(after) == datetime(2025, 10, 27, 22, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize("fold", [0, 1])
def test_the_repeated_hour_on_fall_back_day(fold: int) -> None:
    # 02:30 happens twice on 26 October; either way it is the morning of the 26th.
    received = datetime(2025, 10, 26, 2, 30, tzinfo=OSLO, fold=fold)
    assert due(received) == datetime(2025, 10, 26, 22, 59, 59, 999999, tzinfo=UTC)


def test_the_evening_before_fall_back() -> None:
    # Saturday 25 October 21:00 CEST: due at the end of Sunday (CET), 25 hours later than a normal day.
    assert due(oslo(2025, 10, 25, 21, 0)) == datetime(2025, 10, 26, 22, 59, 59, 999999, tzinfo=UTC)


# --- overdue -----------------------------------------------------------------------------------------


def test_is_overdue() -> None:
    due_at = due(oslo(2025, 6, 11, 10, 0))
    assert not is_overdue(due_at, oslo(2025, 6, 11, 23, 59, 59))
    assert not is_overdue(due_at, due_at)  # at the deadline is still in time
    assert is_overdue(due_at, due_at + timedelta(microseconds=1))
    assert is_overdue(due_at, oslo(2025, 6, 12, 0, 0))
    # Zones of the two arguments do not matter.
    assert is_overdue(due_at, datetime(2025, 6, 11, 22, 0, tzinfo=UTC))
    assert not is_overdue(due_at.astimezone(OSLO), datetime(2025, 6, 11, 21, 0, tzinfo=UTC))


# --- misuse ------------------------------------------------------------------------------------------


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2025, 6, 11, 10, 0)
    aware = oslo(2025, 6, 11, 10, 0)
    with pytest.raises(ValueError, match="received_at"):
        sla_due_at(naive, cutoff=CUTOFF, zone=OSLO)
    with pytest.raises(ValueError, match="received_at"):
        sla_due_date(naive, cutoff=CUTOFF, zone=OSLO)
    with pytest.raises(ValueError, match="due_at"):
        is_overdue(naive, aware)
    with pytest.raises(ValueError, match="now"):
        is_overdue(aware, naive)


def test_a_cutoff_with_a_tzinfo_is_refused() -> None:
    with pytest.raises(ValueError, match="cutoff"):
        sla_due_at(oslo(2025, 6, 11, 10, 0), cutoff=time(20, 0, tzinfo=UTC), zone=OSLO)


# --- properties --------------------------------------------------------------------------------------

ZONES = st.sampled_from(
    [
        OSLO,
        ZoneInfo("UTC"),
        ZoneInfo("America/New_York"),
        ZoneInfo("Asia/Tokyo"),
        ZoneInfo("Australia/Lord_Howe"),
    ]
)
INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=ZONES, allow_imaginary=False
)


@given(received=INSTANTS, cutoff=st.times())
def test_due_is_never_before_receipt_and_at_most_about_two_days_later(
    received: datetime, cutoff: time
) -> None:
    due_at = due(received, cutoff)
    assert due_at.tzinfo is UTC
    assert due_at >= received
    # At worst: received at the start of a day after an all-day cutoff, due at the end of the next day,
    # plus the hour a DST day may add.
    assert due_at - received <= timedelta(hours=49)
    assert not is_overdue(due_at, received)


@given(received=INSTANTS, cutoff=st.times())
def test_due_day_is_the_day_received_or_the_next(received: datetime, cutoff: time) -> None:
    local = received.astimezone(OSLO)
    due_at = due(received, cutoff)
    due_day = due_at.astimezone(OSLO).date()
    assert due_day == sla_due_date(received, cutoff=cutoff, zone=OSLO)
    assert due_day == (local.date() if local.time() < cutoff else local.date() + timedelta(days=1))
    assert due_at.astimezone(OSLO).time() == END_OF_DAY


@given(
    received=INSTANTS,
    cutoff=st.times(),
    later=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
)
def test_later_receipt_never_gets_an_earlier_deadline(
    received: datetime, cutoff: time, later: timedelta
) -> None:
    assert due(received, cutoff) <= due(received + later, cutoff)
