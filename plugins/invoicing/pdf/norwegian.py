"""Norwegian payment formats: the KID (MOD10), bank account and organisation numbers (MOD11), and amounts
and dates written as a Norwegian invoice writes them.

The check digits follow the banks' rules (Bits/Nets "KID" specification; the account and organisation
number rule of Brønnøysundregistrene): a number whose check digit does not match is refused here, before a
payment goes astray.
"""

from __future__ import annotations

import re
from datetime import date

from legetime.sdk import Money

ACCOUNT_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
ORGANIZATION_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)
KID_MAX_DIGITS = 25
"""A KID is 2 to 25 digits, the check digit included."""
_SEPARATORS = re.compile(r"[\s.]")


def luhn_check_digit(digits: str) -> str:
    """The MOD10 (Luhn) check digit of ``digits``: from the right, every other digit doubled."""
    _require_digits(digits)
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def kid_mod10(digits: str) -> str:
    """A KID: ``digits`` (1 to 24 of them) followed by their MOD10 check digit."""
    _require_digits(digits)
    if len(digits) >= KID_MAX_DIGITS:
        raise ValueError(f"a KID has at most {KID_MAX_DIGITS} digits, the check digit included")
    return digits + luhn_check_digit(digits)


def is_valid_kid(kid: str) -> bool:
    """2 to 25 digits whose last is the MOD10 check digit of the others."""
    if not kid.isascii() or not kid.isdigit() or not 2 <= len(kid) <= KID_MAX_DIGITS:
        return False
    return luhn_check_digit(kid[:-1]) == kid[-1]


def mod11_check_digit(digits: str, weights: tuple[int, ...]) -> str | None:
    """The MOD11 check digit of ``digits`` with ``weights``; None where the rule gives 10, i.e. no number
    with these digits is valid."""
    _require_digits(digits)
    if len(digits) != len(weights):
        raise ValueError(f"expected {len(weights)} digits, got {len(digits)}")
    remainder = sum(int(char) * weight for char, weight in zip(digits, weights, strict=True)) % 11
    check = 0 if remainder == 0 else 11 - remainder
    return None if check == 10 else str(check)


def normalize_account(value: str) -> str:
    """A Norwegian bank account number as 11 digits, from ``1234.56.78903``, ``1234 56 78903`` or
    ``12345678903``; ``ValueError`` saying what is wrong otherwise."""
    digits = _SEPARATORS.sub("", value)
    if not digits.isascii() or not digits.isdigit() or len(digits) != 11:
        raise ValueError(f"a Norwegian bank account number has 11 digits (e.g. 1234.56.78903), got {value!r}")
    if mod11_check_digit(digits[:10], ACCOUNT_WEIGHTS) != digits[10]:
        raise ValueError(
            f"{value!r} is not a valid bank account number: its MOD11 check digit does not match"
        )
    return digits


def normalize_organization_number(value: str) -> str:
    """A Norwegian organisation number as 9 digits (``987 654 325`` or ``987654325``)."""
    digits = _SEPARATORS.sub("", value)
    if not digits.isascii() or not digits.isdigit() or len(digits) != 9:
        raise ValueError(f"a Norwegian organisation number has 9 digits, got {value!r}")
    if mod11_check_digit(digits[:8], ORGANIZATION_WEIGHTS) != digits[8]:
        raise ValueError(
            f"{value!r} is not a valid organisation number: its MOD11 check digit does not match"
        )
    return digits


def format_account(digits: str) -> str:
    """``12345678903`` as printed: ``1234.56.78903``."""
    return f"{digits[:4]}.{digits[4:6]}.{digits[6:]}"


def format_organization_number(digits: str) -> str:
    """``987654325`` as printed: ``987 654 325``."""
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def format_nok(money: Money) -> str:
    """An amount as a Norwegian invoice writes it: ``kr 1 350,00`` (space between thousands, comma
    before øre)."""
    if money.currency != "NOK":
        raise ValueError(f"not an amount in NOK: {money.currency}")
    kroner, ore = divmod(money.amount, 100)
    grouped = f"{kroner:,}".replace(",", " ")
    return f"kr {grouped},{ore:02d}"


def format_date(day: date) -> str:
    """``05.11.2026``."""
    return day.strftime("%d.%m.%Y")


def _require_digits(digits: str) -> None:
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError(f"expected digits only, got {digits!r}")
