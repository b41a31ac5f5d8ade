"""Phone numbers: E.164 normalisation, and only numbers that can receive SMS."""

from __future__ import annotations

from pathlib import Path

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from legetime.core.identity.phone import InvalidPhoneNumber, is_mobile, normalize_phone, phone_region
from legetime.core.platform.config import Settings, load_settings
from legetime.core.platform.errors import ConfigError, ErrorCode, ValidationError


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("+47 412 34 567", "+4741234567"),
        ("+4741234567", "+4741234567"),
        ("004741234567", "+4741234567"),
        ("0047 4123 4567", "+4741234567"),
        ("41234567", "+4741234567"),
        ("412 34 567", "+4741234567"),
        ("412-34-567", "+4741234567"),
        ("(+47) 912 34 567", "+4791234567"),
        ("  98765432  ", "+4798765432"),
        ("+46 70 123 45 67", "+46701234567"),  # Swedish mobile
        ("+358 40 123 4567", "+358401234567"),  # Finnish mobile
        ("+44 7400 123456", "+447400123456"),  # UK mobile
        ("+1 650 253 0000", "+16502530000"),  # US: fixed-line-or-mobile, the plan cannot tell
    ],
)
def test_normalizes_to_e164(typed: str, e164: str) -> None:
    assert normalize_phone(typed, default_region="NO") == e164
    assert is_mobile(e164)


@pytest.mark.parametrize(
    ("typed", "region", "e164"),
    [
        ("070-123 45 67", "SE", "+46701234567"),  # Swedish mobile, the Swedish way (trunk 0)
        ("0701234567", "SE", "+46701234567"),
        ("412 34 567", "NO", "+4741234567"),
        ("40 123 4567", "FI", "+358401234567"),  # another country, named explicitly
        ("+4741234567", "SE", "+4741234567"),  # a country code wins over the region
        ("0046 70 123 45 67", "NO", "+46701234567"),
        ("+46 70 123 45 67", "NO", "+46701234567"),
    ],
)
def test_the_region_reads_numbers_without_a_country_code(typed: str, region: str, e164: str) -> None:
    assert normalize_phone(typed, default_region=region) == e164


@pytest.mark.parametrize(
    ("typed", "region", "reason"),
    [
        ("070-123 45 67", "NO", "invalid"),  # a Swedish mobile read as Norwegian: not a Norwegian number
        ("412 34 567", "SE", "invalid"),  # a Norwegian mobile read as Swedish
        ("08-123 456 78", "SE", "not_mobile"),  # Stockholm landline
    ],
)
def test_the_region_refuses_what_is_not_a_mobile_there(typed: str, region: str, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalize_phone(typed, default_region=region)
    assert caught.value.reason == reason


def test_the_region_is_required() -> None:
    with pytest.raises(TypeError):
        normalize_phone("412 34 567")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        normalize_phone("412 34 567", "NO")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("country", "region"),
    [(None, "SE"), ("", "SE"), ("  ", "SE"), ("dk", "DK"), (" FI ", "FI"), ("NO", "NO")],
)
def test_a_named_country_overrides_her_own(country: str | None, region: str) -> None:
    assert phone_region(country, otherwise="SE") == region


@pytest.mark.parametrize("country", ["XX", "NOR", "N", "001", "+47", "ZZ"])
def test_an_unknown_country_is_a_typed_error_on_country(country: str) -> None:
    with pytest.raises(ValidationError) as caught:
        phone_region(country, otherwise="NO")
    error = caught.value
    assert not isinstance(error, InvalidPhoneNumber)
    assert error.code is ErrorCode.INVALID
    assert error.field == "country"
    assert error.message.startswith("Ukjent land.")


def test_the_platform_default_region_is_a_setting(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).default_phone_region == "NO"
    assert Settings(data_dir=tmp_path, default_phone_region="se").default_phone_region == "SE"
    with pytest.raises(ConfigError) as caught:
        load_settings(data_dir=tmp_path, default_phone_region="XX")
    assert caught.value.setting == "LEGETIME_DEFAULT_PHONE_REGION"


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "format"),
        ("   ", "format"),
        ("abc", "format"),
        ("4123ABCD", "format"),  # phonenumbers would read this as a vanity number
        ("+47 41234567 ext 2", "format"),
        ("4" * 100, "format"),
        ("4123456", "invalid"),  # 7 digits
        ("412345678", "invalid"),  # 9 digits
        ("+4759123456", "invalid"),  # unused Norwegian range
        ("+46 70 123 456", "invalid"),  # Swedish mobile one digit short
        ("+999 1234567", "format"),  # no such country code
        ("+4741234567#2", "extension"),
        ("+47 22 12 34 56", "not_mobile"),  # Oslo landline
        ("55123456", "not_mobile"),  # Bergen landline
        ("+47 800 12 345", "not_mobile"),  # freephone
        ("+46 8 123 456 78", "not_mobile"),  # Stockholm landline
    ],
)
def test_rejects(typed: str, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalize_phone(typed, default_region="NO")
    assert caught.value.reason == reason


def test_error_is_a_typed_validation_error_in_norwegian() -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalize_phone("+47 22 12 34 56", default_region="NO")
    error = caught.value
    assert isinstance(error, ValidationError)
    assert error.code is ErrorCode.INVALID_PHONE
    assert error.field == "phone"
    assert error.message == "Telefonnummeret kan ikke motta SMS. Oppgi et mobilnummer."


@pytest.mark.parametrize(
    "value", ["+4722123456", "41234567", "004741234567", "", "+", "+47abc", "+4741234567#2"]
)
def test_is_mobile_is_false_for_non_e164_and_landlines(value: str) -> None:
    assert not is_mobile(value)


REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)


@given(st.sampled_from(REGIONS), st.sampled_from([PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE]))
def test_example_numbers_of_every_region(region: str, kind: int) -> None:
    example = phonenumbers.example_number_for_type(region, kind)
    if example is None:
        return
    e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)
    accepted = phonenumbers.number_type(example) in (
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )
    assert is_mobile(e164) == accepted
    if accepted:
        assert normalize_phone(e164, default_region="NO") == e164
        national = phonenumbers.format_number(example, PhoneNumberFormat.NATIONAL)
        assert normalize_phone(national, default_region=region) == e164
    else:
        with pytest.raises(InvalidPhoneNumber):
            normalize_phone(e164, default_region="NO")


@given(
    st.sampled_from("49"),
    st.text(alphabet="0123456789", min_size=7, max_size=7),
    st.sampled_from(["", " ", "-"]),
)
def test_normalizing_is_idempotent_for_norwegian_mobiles(first: str, rest: str, separator: str) -> None:
    typed = first + rest[:2] + separator + rest[2:4] + separator + rest[4:]
    try:
        e164 = normalize_phone(typed, default_region="NO")
    except InvalidPhoneNumber:
        return  # a few ranges are unassigned
    assert e164 == "+47" + first + rest
    assert normalize_phone(e164, default_region="NO") == e164
    assert is_mobile(e164)


@given(st.text(max_size=30))
def test_normalizing_any_text_either_fails_cleanly_or_is_idempotent(text: str) -> None:
    try:
        e164 = normalize_phone(text, default_region="NO")
    except InvalidPhoneNumber:
        return
    assert e164.startswith("+")
    assert normalize_phone(e164, default_region="NO") == e164
    assert is_mobile(e164)
