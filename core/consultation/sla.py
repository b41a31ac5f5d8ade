"""When a case must be answered: "received before the cutoff (20:00 Europe/Oslo) — answered the same day;
later — the next day", every day of the week (no business-day calendar: the service promises weekends too).

The deadline is a moment, not a date, so queue order and overdue flags compare instants in UTC. It is the
**last microsecond of the due day in the zone** (23:59:59.999999 local), returned as an aware UTC datetime:
shown in local time it reads as the due day itself ("svar innen søndag"), where "00:00 the next day" would
read as the wrong day. A case is overdue once ``now`` is past that moment.

Cutoff and zone come from settings (``Settings.sla_cutoff`` and ``Settings.zone``); there are no defaults
here so the two cannot drift apart. The cutoff is a wall-clock time in the zone, so daylight saving time
needs no special case: 19:59 Oslo time is before the cutoff on the day the clocks change, too. Days are
calendar days in the zone; a DST day is 23 or 25 hours long.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def sla_due_date(received_at: datetime, *, cutoff: time, zone: ZoneInfo) -> date:
    """The calendar day (in ``zone``) the case is due: the day it was received if that was strictly before
    ``cutoff`` local time, else the next day. Received exactly at the cutoff counts as after it."""
    _require_aware("received_at", received_at)
    if cutoff.tzinfo is not None:
        raise ValueError("cutoff is a wall-clock time in the zone and must not carry a tzinfo")
    local = received_at.astimezone(zone)
    received_day = local.date()
    return received_day if local.time() < cutoff else received_day + timedelta(days=1)


def sla_due_at(received_at: datetime, *, cutoff: time, zone: ZoneInfo) -> datetime:
    """The deadline: the end (23:59:59.999999) of the due day in ``zone``, as an aware UTC datetime.

    ``received_at`` may be in any zone but must be aware (``ValueError`` otherwise): a naive time would be
    silently read as the server's local time.
    """
    due_day = sla_due_date(received_at, cutoff=cutoff, zone=zone)
    # fold=0: should the end of a day ever be ambiguous (a zone falling back at midnight), take the earlier
    # instant — a deadline that errs early, never late. Europe/Oslo changes at 02:00/03:00, so never here.
    return datetime.combine(due_day, time.max, tzinfo=zone).astimezone(UTC)


def is_overdue(due_at: datetime, now: datetime) -> bool:
    """True once ``now`` is past the deadline. Both must be aware; they may be in different zones."""
    _require_aware("due_at", due_at)
    _require_aware("now", now)
    return now > due_at
