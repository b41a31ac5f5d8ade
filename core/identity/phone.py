"""Phone numbers: parse what people type into E.164, and only accept numbers that can receive SMS.

The platform reaches patients by SMS (answers ready, questions from the clinician), so a number that
cannot receive SMS is as useless as a mistyped one and is refused at input, not discovered when a job
fails. Types come from Google's numbering-plan metadata (``phonenumbers``): ``MOBILE``, and
``FIXED_LINE_OR_MOBILE`` where the plan cannot tell them apart (USA, Canada). Norwegian landlines
(+47 2x/3x/5x/6x/7x …) are fixed lines and refused.

A number written without a country code (``412 34 567``, ``070-123 45 67``) is read as one of a region:
the person's own country (the issuer of her national ID), a country she names (:func:`phone_region`), or,
where no person is known (the on-duty number), the platform's ``default_phone_region``. The caller always
says which: nothing here assumes Norway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from legetime.core.platform.errors import ErrorCode, ValidationError

if TYPE_CHECKING:
    from phonenumbers import PhoneNumber

# phonenumbers (its numbering-plan metadata) is imported when a number is checked, not at start-up.
MAX_INPUT_LENGTH = 64
"""Longer input is not a phone number someone typed; refuse it before parsing."""


class InvalidPhoneNumber(ValidationError):
    """The input is not a phone number we can send SMS to. ``message`` is shown to the user; ``reason``
    (``"format"``, ``"invalid"``, ``"extension"``, ``"not_mobile"``) is for code and logs."""

    code = ErrorCode.INVALID_PHONE

    def __init__(self, message: str, *, reason: str = "invalid", field: str | None = "phone") -> None:
        super().__init__(message, field=field)
        self.reason = reason


def normalize_phone(value: str, *, default_region: str) -> str:
    """Return the E.164 form (``+4741234567``) of a number that can receive SMS.

    ``default_region`` (ISO 3166-1 alpha-2, e.g. ``"SE"``) is the country of a number written without a
    country code: with ``"SE"``, ``070-123 45 67`` is ``+46701234567``; with ``"NO"``, ``412 34 567`` is
    ``+4741234567``. A number with ``+`` or ``00`` and its country code is read the same with any region.
    Raises :class:`InvalidPhoneNumber`.
    """
    text = value.strip()
    if not text:
        raise InvalidPhoneNumber("Oppgi et mobilnummer.", reason="format")
    # phonenumbers turns letters into digits (vanity numbers like 1-800-FLOWERS): here a letter is a typo.
    if len(text) > MAX_INPUT_LENGTH or any(char.isalpha() for char in text):
        raise InvalidPhoneNumber(
            "Telefonnummeret er ugyldig. Bruk bare siffer, mellomrom og +.", reason="format"
        )
    import phonenumbers
    from phonenumbers import PhoneNumberFormat

    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneNumber("Telefonnummeret er ugyldig.", reason="format") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(
            "Telefonnummeret er ugyldig. Sjekk landkoden og antall siffer.", reason="invalid"
        )
    if number.extension:
        raise InvalidPhoneNumber("Telefonnummeret kan ikke ha internnummer.", reason="extension")
    if not _sms_capable(number):
        raise InvalidPhoneNumber(
            "Telefonnummeret kan ikke motta SMS. Oppgi et mobilnummer.", reason="not_mobile"
        )
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def phone_region(country: str | None, *, otherwise: str) -> str:
    """The region to read a number without a country code in: ``country`` when she named one (ISO 3166-1
    alpha-2, any case), else ``otherwise`` (her own country). Raises :class:`ValidationError` on
    ``country`` for a code without a numbering plan in ``phonenumbers``."""
    if country is None or not country.strip():
        return otherwise
    code = country.strip().upper()
    import phonenumbers

    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationError(
            "Ukjent land. Oppgi landet som en kode på to bokstaver, for eksempel SE for Sverige.",
            field="country",
        )
    return code


def is_mobile(e164: str) -> bool:
    """Whether an E.164 number (``+`` and country code) is valid and can receive SMS per the numbering plan.

    Same test as :func:`normalize_phone` (``MOBILE`` or ``FIXED_LINE_OR_MOBILE``); never raises.
    """
    if not e164.startswith("+"):
        return False
    import phonenumbers

    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number) and not number.extension and _sms_capable(number)


def _sms_capable(number: PhoneNumber) -> bool:
    import phonenumbers
    from phonenumbers import PhoneNumberType

    return phonenumbers.number_type(number) in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)
