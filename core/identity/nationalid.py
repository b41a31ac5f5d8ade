"""Norwegian national IDs (fødselsnummer, D-number, H-number): validation and what the number tells.

Pure functions, no I/O. Everything that logs a person in or names a patient goes through
:func:`parse_national_id`, so the rules live in this one place.

Layout: ``DDMMYY III K1 K2`` — birth date, individual number (III), two check digits.

Check digits (both modulus 11; all digits are weighted):

* K1: ``(3·d1 + 7·d2 + 6·m1 + 1·m2 + 8·y1 + 9·y2 + 4·i1 + 5·i2 + 2·i3 + 1·K1) mod 11``.
  Before 2032 the remainder must be 0 (the textbook "K1 = 11 − sum mod 11, 11 → 0, 10 → unusable").
  **The 2032 rule**: Skatteetaten issues numbers from 1 January 2032 whose K1 is "not controlled the old
  way": the remainder may be 0, 1, 2 or 3 (``gyldigRest_k1 = [0, 1, 2, 3]`` in Skatteetaten's
  reference code, https://skatteetaten.github.io/folkeregisteret-api-dokumentasjon/nytt-fodselsnummer-fra-2032/).
  Systems must accept both kinds in parallel, so we accept remainders 0–3 for every number; the old rule
  is the special case remainder 0. A new-style number is one whose remainder is 1–3
  (:attr:`NationalId.uses_2032_rule`).
* K2: ``(5·d1 + 4·d2 + 3·m1 + 2·m2 + 7·y1 + 6·y2 + 5·i1 + 4·i2 + 3·i3 + 2·K1 + 1·K2) mod 11 == 0``,
  unchanged by the 2032 rule. When K2 would have to be 10 the number cannot exist.

Because every K2 weight is non-zero modulo the prime 11, changing any single digit (or swapping two
different adjacent digits) always breaks K2 — also under the 2032 rule.

Number kinds (offsets on the date digits):

* D-number: first digit + 4 (day 41–71), for people without a fødselsnummer.
* H-number: third digit + 4 (month 41–52), the health sector's help numbers.
* Synthetic test IDs (Skatteetaten/Test-Norge "syntetiske"): month + 80 (81–92). Test-Norge also issues
  synthetic D-numbers, so D + synthetic is accepted; D + H is not (no register issues it).

Century from the individual number and the two-digit year:

=========  ===========  ==========
III        YY           born
=========  ===========  ==========
000–499    00–99        1900–1999
500–749    54–99        1854–1899
500–999    00–39        2000–2039
900–999    40–99        1940–1999
=========  ===========  ==========

Any other combination is not a number anyone was given. Caveat: Skatteetaten says numbers issued under the
2032 rule no longer encode sex, and that the century can no longer be read from them. We still apply the
table (and :attr:`NationalId.sex` still reads the ninth digit) because no new-style numbers exist yet and
callers need a birth date; where a verified birth date is available (BankID) prefer it for new-style numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Literal

from legetime.core.platform.errors import ErrorCode, ValidationError

K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2, 1)
K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2, 1)
K1_VALID_REMAINDERS = frozenset({0, 1, 2, 3})
"""Remainder 0 is the pre-2032 rule; 1–3 are added by the 2032 rule."""

D_NUMBER_DAY_OFFSET = 40
H_NUMBER_MONTH_OFFSET = 40
SYNTHETIC_MONTH_OFFSET = 80


class NationalIdKind(StrEnum):
    FODSELSNUMMER = "fodselsnummer"
    D_NUMBER = "d_number"
    H_NUMBER = "h_number"


class InvalidNationalId(ValidationError):
    """The input is not a national ID. ``message`` is shown to the user; ``reason`` is for code and logs:
    ``"format"``, ``"check_digits"``, ``"kind"``, ``"individual_number"`` or ``"date"``."""

    code = ErrorCode.INVALID_NATIONAL_ID

    def __init__(self, message: str, *, reason: str = "format", field: str | None = "nationalId") -> None:
        super().__init__(message, field=field)
        self.reason = reason


@dataclass(frozen=True)
class NationalId:
    """A parsed, valid national ID. ``value`` is the 11 digits without spaces."""

    value: str
    kind: NationalIdKind
    synthetic: bool
    birth_date: date

    def age_on(self, day: date) -> int:
        """Age in whole years on ``day`` — compute it when needed, never cache it past a birthday."""
        return age_on(self.birth_date, day)

    @property
    def sex(self) -> Literal["female", "male"]:
        """Legal sex as encoded by the ninth digit (even = female). Not encoded in 2032-rule numbers."""
        return "female" if int(self.value[8]) % 2 == 0 else "male"

    @property
    def uses_2032_rule(self) -> bool:
        """True when only the 2032 rule accepts K1 (the pre-2032 rule would reject this number)."""
        return _weighted(self.value[:10], K1_WEIGHTS) % 11 != 0

    def __repr__(self) -> str:
        # A national ID is personal data: keep the personnummer (last five digits) out of logs and tracebacks.
        return (
            f"NationalId(value='{self.value[:6]}*****', kind={self.kind.value!r}, "
            f"synthetic={self.synthetic!r}, birth_date={self.birth_date!r})"
        )


def parse_national_id(value: str, *, born_by: date | None = None) -> NationalId:
    """Validate ``value`` (whitespace ignored) and return what it tells; raise :class:`InvalidNationalId`.

    ``born_by`` (today, where the person is): a birth date after it is refused — nobody not yet born logs
    in or is a patient, and every age computed later would be negative."""
    digits = "".join(value.split())
    if not digits:
        raise InvalidNationalId("Oppgi et fødselsnummer (11 siffer).", reason="format")
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidNationalId("Fødselsnummeret kan bare inneholde siffer.", reason="format")
    if len(digits) != 11:
        raise InvalidNationalId("Fødselsnummeret må ha 11 siffer.", reason="format")
    if not _check_digits_valid(digits):
        raise InvalidNationalId(
            "Fødselsnummeret er ugyldig (kontrollsifrene stemmer ikke).", reason="check_digits"
        )

    day, month, yy, individual = int(digits[0:2]), int(digits[2:4]), int(digits[4:6]), int(digits[6:9])
    kind = NationalIdKind.FODSELSNUMMER
    synthetic = False
    # Only the documented ranges shift the date; anything else stays as it is and fails as a date below.
    if D_NUMBER_DAY_OFFSET + 1 <= day <= D_NUMBER_DAY_OFFSET + 31:
        kind = NationalIdKind.D_NUMBER
        day -= D_NUMBER_DAY_OFFSET
    if SYNTHETIC_MONTH_OFFSET + 1 <= month <= SYNTHETIC_MONTH_OFFSET + 12:
        synthetic = True
        month -= SYNTHETIC_MONTH_OFFSET
    elif H_NUMBER_MONTH_OFFSET + 1 <= month <= H_NUMBER_MONTH_OFFSET + 12:
        if kind is NationalIdKind.D_NUMBER:
            raise InvalidNationalId(
                "Fødselsnummeret er ugyldig (kan ikke være både D-nummer og H-nummer).", reason="kind"
            )
        kind = NationalIdKind.H_NUMBER
        month -= H_NUMBER_MONTH_OFFSET

    century = _century(individual, yy)
    if century is None:
        raise InvalidNationalId(
            "Fødselsnummeret er ugyldig (individnummeret passer ikke med fødselsåret).",
            reason="individual_number",
        )
    try:
        birth_date = date(century + yy, month, day)
    except ValueError:
        raise InvalidNationalId(
            "Fødselsnummeret er ugyldig (fødselsdatoen finnes ikke).", reason="date"
        ) from None
    if born_by is not None and birth_date > born_by:
        raise InvalidNationalId(
            "Fødselsnummeret er ugyldig (fødselsdatoen er ikke passert).", reason="future"
        )
    return NationalId(value=digits, kind=kind, synthetic=synthetic, birth_date=birth_date)


def is_valid_national_id(value: str) -> bool:
    try:
        parse_national_id(value)
    except InvalidNationalId:
        return False
    return True


def age_on(birth_date: date, day: date) -> int:
    """Whole years from ``birth_date`` to ``day``.

    Someone born on 29 February has their birthday on 1 March in non-leap years (Norwegian practice: you
    are not a year older until the day after 28 February). Raises ``ValueError`` if ``day`` is before
    ``birth_date``: a negative age is always a bug upstream, never something to compute with.
    """
    if day < birth_date:
        raise ValueError(f"{day.isoformat()} is before the birth date")
    had_birthday = (day.month, day.day) >= (birth_date.month, birth_date.day)
    return day.year - birth_date.year - (0 if had_birthday else 1)


def _weighted(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(digit) * weight for digit, weight in zip(digits, weights, strict=True))


def _check_digits_valid(digits: str) -> bool:
    return (
        _weighted(digits[:10], K1_WEIGHTS) % 11 in K1_VALID_REMAINDERS
        and _weighted(digits, K2_WEIGHTS) % 11 == 0
    )


def _century(individual: int, yy: int) -> int | None:
    """The century per the individual-number table in the module docstring; None if no one got this."""
    if individual <= 499:
        return 1900
    if individual <= 749 and yy >= 54:
        return 1800
    if yy <= 39:
        return 2000
    if individual >= 900:
        return 1900
    return None
