"""The texts before the visit: the reminder two days before and the arrival text one hour before.

What they say is the time (Oslo time, in words: "tirsdag 3. desember kl. 09:00") and a link: never the
clinic, the type of visit or her message (a text on a lock screen may be read by anyone). The same plan
makes the same text again (a failover to another SMS provider): the links are derived from the
appointment and its plan (``links``), and which forms are missing is read as it was when the text was due.

- ``REMINDER`` goes out while the appointment is booked (not yet reminded, moved back to booked by a move);
  with the forms link when the type has forms she has not sent yet; it says how to cancel. Sending it moves
  the appointment to ``REMINDED`` (in ``timed_texts.send_job``, after the text was handed over).
- ``ARRIVAL`` goes out for an in-person visit still booked or reminded, with the link to register arrival.
"""

from __future__ import annotations

from datetime import datetime

from legetime.core.appointments import forms, links, states, timed_texts
from legetime.core.platform.db.appointment_models import (
    Appointment,
    AppointmentMode,
    AppointmentStatus,
    TimedText,
    TimedTextPlan,
)
from legetime.core.platform.jobs.types import JobContext
from legetime.core.platform.runtime import Platform

NOT_UPCOMING = "skipped_not_upcoming"
"""The appointment is no longer waiting for this text (cancelled, arrived, reminded already …)."""

WEEKDAYS = ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag")
MONTHS = (
    "januar",
    "februar",
    "mars",
    "april",
    "mai",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "desember",
)


def when(platform: Platform, instant: datetime) -> str:
    """An instant as patients read it, in the service's time zone: "tirsdag 3. desember kl. 09:00".
    Written out here: the process's locale is not ours to depend on."""
    local = instant.astimezone(platform.settings.zone)
    return f"{WEEKDAYS[local.weekday()]} {local.day}. {MONTHS[local.month - 1]} kl. {local:%H:%M}"


def hours(value: float) -> str:
    """Hours as a Norwegian number: 24, 1,5."""
    return f"{value:g}".replace(".", ",")


@timed_texts.makes(TimedText.REMINDER)
async def reminder(ctx: JobContext, appointment: Appointment, row: TimedTextPlan) -> timed_texts.Text:
    assert appointment.starts_at is not None
    platform = ctx.platform
    parts = [f"Legetime: Påminnelse om time {when(platform, appointment.starts_at)}."]
    if await forms.missing(ctx.session, appointment, at=row.due_at):
        link = links.link_for(platform, appointment, links.LinkPurpose.FORMS)
        parts.append(f"Fyll ut skjema før timen: {link}")
    limit = hours(platform.settings.appointment_change_hours)
    parts.append(f"Avbestill senest {limit} timer før i appen.")
    skipped = None if appointment.status is AppointmentStatus.BOOKED else NOT_UPCOMING
    return timed_texts.Text(body=" ".join(parts), skipped=skipped)


@timed_texts.makes(TimedText.ARRIVAL)
async def arrival(ctx: JobContext, appointment: Appointment, row: TimedTextPlan) -> timed_texts.Text:
    assert appointment.starts_at is not None
    platform = ctx.platform
    link = links.link_for(platform, appointment, links.LinkPurpose.ARRIVAL)
    body = (
        f"Legetime: Du har time {when(platform, appointment.starts_at)}. Når du er kommet, registrer "
        f"ankomst her og gå rett til venteområdet: {link}"
    )
    still = appointment.mode is AppointmentMode.IN_PERSON and appointment.status in states.UPCOMING
    return timed_texts.Text(body=body, skipped=None if still else NOT_UPCOMING)
