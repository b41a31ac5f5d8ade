"""What a notice says: that there is news, and where to log in. Never health content, never a name."""

from __future__ import annotations

from legetime.core.platform.runtime import Platform

TEXTS = {
    "answered": "Hei! Legen har svart på henvendelsen din. Logg inn på {url} for å lese svaret. "
    "Hilsen Legetime",
    "follow_up": "Hei! Legen har et spørsmål til deg om henvendelsen din. Logg inn på {url} for å svare. "
    "Hilsen Legetime",
}


def notice_text(platform: Platform, event: str) -> str:
    return TEXTS[event].format(url=platform.settings.public_url)
