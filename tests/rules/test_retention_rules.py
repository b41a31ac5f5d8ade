"""Retention arithmetic and the anonymised statistics' age bands."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from legetime.core.protection.retention import age_band, retention_deadline


@pytest.mark.parametrize(
    ("ended", "months", "deadline"),
    [
        (datetime(2026, 1, 15, 9, tzinfo=UTC), 3, datetime(2026, 4, 15, 9, tzinfo=UTC)),
        (datetime(2026, 11, 30, tzinfo=UTC), 3, datetime(2027, 2, 28, tzinfo=UTC)),  # no 30 February
        (datetime(2027, 11, 30, tzinfo=UTC), 3, datetime(2028, 2, 29, tzinfo=UTC)),  # leap year
        (datetime(2026, 5, 31, tzinfo=UTC), 0, datetime(2026, 5, 31, tzinfo=UTC)),
        (datetime(2026, 12, 1, tzinfo=UTC), 13, datetime(2028, 1, 1, tzinfo=UTC)),
    ],
)
def test_retention_ends_calendar_months_after_the_case_ended(
    ended: datetime, months: int, deadline: datetime
) -> None:
    assert retention_deadline(ended, months) == deadline


@pytest.mark.parametrize(
    ("age", "band"),
    [
        (0, "0-5"),
        (5, "0-5"),
        (6, "6-11"),
        (12, "12-15"),
        (15, "12-15"),
        (16, "16-29"),
        (49, "30-49"),
        (90, "70+"),
    ],
)
def test_age_bands(age: int, band: str) -> None:
    assert age_band(age) == band
