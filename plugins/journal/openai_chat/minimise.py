"""Data minimisation: mask what identifies a person in the free text sent to a language model.

What the patient typed (answers, messages) may hold her national ID, a phone number, an e-mail or postal
address, or a name. Every string the drafter sends goes through :meth:`Minimiser.mask` first:

* **Numbers**: every run of 8 or more digits, whether written together or in groups split by a space, a
  hyphen or a plus, is masked. Its length says which mask: 11 digits ``[fødselsnummer]`` (Norwegian
  fødselsnummer, D- and H-number), 10 or 12 digits ``[personnummer]`` (Swedish personnummer, with or
  without century, ``-``/``+`` or no separator), a leading ``+``/``00`` (E.164) or 8 digits (Norwegian
  numbers) ``[telefon]`` (also 47 + 8 digits), anything else ``[nummer]``. The check digits are not
  looked at: a mistyped ID identifies her as well. Dates written with hyphens (2024-01-31, 31-01-2024) and
  year ranges (2019-2024) stay; dots and slashes never join groups, so 31.01.2024 stays too.
* **E-mail addresses** ``[e-post]``; **street addresses** (a Norwegian street word and a house number,
  optionally a postcode and place) ``[adresse]``.
* **Names** the platform knows for the case (the patient's, the requester's), each part on its own,
  case-insensitive, also with a genitive ``s``: ``[navn]``. A name glued to other letters is not found.

It is a filter for identifiers, not a guarantee of anonymity: free text can identify someone in ways no
pattern finds. That is why the rest of the context is minimal too (no case number, no date, no name).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

NATIONAL_ID = "[fødselsnummer]"
SWEDISH_ID = "[personnummer]"
PHONE = "[telefon]"
NUMBER = "[nummer]"
EMAIL = "[e-post]"
ADDRESS = "[adresse]"
NAME = "[navn]"

_SEPARATOR = r"[ \t\u00a0\u2009\u202f\-\u2010\u2011\u2012\u2013+]"
_DIGITS = re.compile(rf"(?<![\d+])\+?\d(?:{_SEPARATOR}?\d)*")
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_STREET_WORDS = (
    "gata|gate|gaten|veien|vei|vegen|veg|allé|alle|plass|plassen|stien|sti|bakken|svingen|tunet|ringen|"
    "brygge|kaia|torget|lia|haugen"
)
_ADDRESS = re.compile(
    rf"(?<!\w)(?:[A-ZÆØÅ][\w'.-]*\s+)*[\w'.-]*(?i:{_STREET_WORDS})\s+\d{{1,4}}\s?[A-Za-z]?(?!\w)"
    r"(?:,?\s+\d{4}(?:\s+[A-ZÆØÅ][\w-]+)?)?"
)
# Numbers that look like this are dates, not identifiers.
_NOT_IDENTIFIERS = re.compile(
    r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}-\d{1,2}-\d{4}|(?:19|20)\d\d\s?[-\u2013]\s?(?:19|20)\d\d"
)
_SHORTEST_MASKED = 8


def _number_mask(match: re.Match[str]) -> str:
    raw = match.group()
    digits = "".join(c for c in raw if c.isdigit())
    if len(digits) < _SHORTEST_MASKED or _NOT_IDENTIFIERS.fullmatch(raw):
        return raw
    if raw.startswith("+") or digits.startswith("00"):
        return PHONE
    if len(digits) == 11:
        return NATIONAL_ID
    if len(digits) == 10 and digits.startswith("47"):
        return PHONE
    if len(digits) in (10, 12):
        return SWEDISH_ID
    if len(digits) == 8:
        return PHONE
    return NUMBER


def mask_identifiers(text: str) -> str:
    """``text`` with e-mail and street addresses, national IDs and phone numbers masked."""
    text = _EMAIL.sub(EMAIL, text)
    text = _ADDRESS.sub(ADDRESS, text)
    return _DIGITS.sub(_number_mask, text)


class Minimiser:
    """Masks identifiers, and the given names wherever they occur as words."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        parts = {part for name in names for part in re.split(r"[\s\-]+", name.strip()) if len(part) >= 2}
        alternatives = "|".join(re.escape(part) for part in sorted(parts, key=len, reverse=True))
        self._names = (
            re.compile(rf"(?<!\w)(?:{alternatives})(?:'?s)?(?!\w)", re.IGNORECASE) if alternatives else None
        )

    def mask(self, text: str) -> str:
        text = mask_identifiers(text)
        return self._names.sub(NAME, text) if self._names is not None else text
