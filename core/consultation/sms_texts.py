"""What a notice says: that there is news, and where to log in. Never health content, never a name.
The on-duty number's SLA warning says which case (its number) and by when, nothing about its content."""

from __future__ import annotations

from legetime.core.platform.db.models import Case
from legetime.core.platform.runtime import Platform

SLA_WARNING = "sla_warning"

TEXTS = {
    "answered": "Hei! Legen har svart på henvendelsen din. Logg inn på {url} for å lese svaret. "
    "Hilsen Legetime",
    "follow_up": "Hei! Legen har et spørsmål til deg om henvendelsen din. Logg inn på {url} for å svare. "
    "Hilsen Legetime",
    SLA_WARNING: "Legetime: Sak {number} må besvares innen {day} kl. {time}.",
}


def notice_text(platform: Platform, event: str, case: Case) -> str:
    if event == SLA_WARNING:
        assert case.sla_due_at is not None  # only a case with a deadline is alerted
        # The deadline where the clinic works, with its date: a threshold may reach into the day before.
        due = case.sla_due_at.astimezone(platform.settings.zone)
        return TEXTS[event].format(number=case.number, day=f"{due:%d.%m.}", time=f"{due:%H:%M}")
    return TEXTS[event].format(url=platform.settings.public_url)
