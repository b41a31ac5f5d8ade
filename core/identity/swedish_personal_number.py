"""Swedish personal identity numbers (personnummer) and coordination numbers (samordningsnummer).

Pure functions, no I/O, like :mod:`legetime.core.identity.nationalid` for the Norwegian numbers. Used by
the Swedish BankID provider (what ``collect`` returns, a login hint), by the identity contract suite (a
``VerifiedIdentity`` with ``country="SE"``) and, through :mod:`legetime.core.identity.countries`, by the
core for Swedish patients and their children.

Layout, in the 12-digit form BankID's RP API uses: ``YYYYMMDDNNNC``.

* ``YYYYMMDD`` is the birth date. A **samordningsnummer** adds 60 to the day (61–91).
* ``NNN`` is the birth number; its last digit is odd for men, even for women.
* ``C`` is the check digit: the Luhn (mod 10) algorithm over the 9 digits ``YYMMDDNNN`` — i.e. the
  check is computed over the last 10 digits, the check digit included, whose Luhn sum must be 0 mod 10.

Source: Skatteverket, "Personnummer" (SKV 704) and "Samordningsnummer" (SKV 707); the 12-digit format
is the one required by BankID's RP API (``requirement.personalNumber``, ``completionData.user``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from legetime.core.platform.errors import ErrorCode, ValidationError

COORDINATION_DAY_OFFSET = 60


class InvalidSwedishPersonalNumber(ValidationError):
    """Not a Swedish personal number. ``message`` is for the user (bokmål); ``reason`` for code:
    ``"format"``, ``"check_digit"`` or ``"date"``. The number itself is never in the message."""

    code = ErrorCode.INVALID_NATIONAL_ID

    def __init__(self, message: str, *, reason: str = "format", field: str | None = "nationalId") -> None:
        super().__init__(message, field=field)
        self.reason = reason


@dataclass(frozen=True)
class SwedishPersonalNumber:
    """A parsed, valid number. ``value`` is the 12 digits."""

    value: str
    birth_date: date
    coordination_number: bool
    """A samordningsnummer (day + 60)."""

    @property
    def sex(self) -> Literal["female", "male"]:
        return "female" if int(self.value[10]) % 2 == 0 else "male"

    def __repr__(self) -> str:  # never the number itself in a log or traceback
        return f"SwedishPersonalNumber(born={self.birth_date.year}, coordination={self.coordination_number})"


def luhn_ok(digits: str) -> bool:
    """True when the Luhn (mod 10) sum of ``digits`` (check digit last) is divisible by 10."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def luhn_check_digit(nine_digits: str) -> str:
    """The check digit that makes ``nine_digits`` + it pass :func:`luhn_ok`."""
    for candidate in "0123456789":
        if luhn_ok(nine_digits + candidate):
            return candidate
    raise AssertionError("unreachable")  # pragma: no cover


def normalize(value: str) -> str:
    """Strip spaces and the one hyphen people type (``YYYYMMDD-NNNC``)."""
    return value.strip().replace(" ", "").replace("-", "")


def parse_swedish_personal_number(
    value: str, *, field: str | None = "nationalId", born_by: date | None = None
) -> SwedishPersonalNumber:
    """Validate a 12-digit personnummer or samordningsnummer; raises :class:`InvalidSwedishPersonalNumber`.

    ``born_by`` (today, where the person is; default the machine's date): a later birth date is refused.
    The 10-digit form (``YYMMDD-NNNC``) is refused: its century depends on a ``-``/``+`` separator and the
    date of reading, and BankID always gives and takes 12 digits."""
    digits = normalize(value)
    if len(digits) != 12 or not digits.isascii() or not digits.isdigit():
        raise InvalidSwedishPersonalNumber(
            "Et svensk personnummer har 12 sifre (ÅÅÅÅMMDDNNNK).", reason="format", field=field
        )
    if not luhn_ok(digits[2:]):
        raise InvalidSwedishPersonalNumber(
            "Kontrollsifferet i det svenske personnummeret stemmer ikke.", reason="check_digit", field=field
        )
    year, month, day = int(digits[0:4]), int(digits[4:6]), int(digits[6:8])
    coordination = day > COORDINATION_DAY_OFFSET
    if coordination:
        day -= COORDINATION_DAY_OFFSET
    try:
        born = date(year, month, day)
    except ValueError:
        raise InvalidSwedishPersonalNumber(
            "Det svenske personnummeret har ingen gyldig fødselsdato.", reason="date", field=field
        ) from None
    if born > (born_by or date.today()) or year < 1850:
        raise InvalidSwedishPersonalNumber(
            "Det svenske personnummeret har ingen gyldig fødselsdato.", reason="date", field=field
        )
    return SwedishPersonalNumber(value=digits, birth_date=born, coordination_number=coordination)


def is_valid_swedish_personal_number(value: str) -> bool:
    try:
        parse_swedish_personal_number(value)
    except InvalidSwedishPersonalNumber:
        return False
    return True
