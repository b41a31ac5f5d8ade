"""Norwegian national ID rules: check digits (incl. the 2032 rule), kinds, century table, age."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from legetime.core.identity.nationalid import (
    InvalidNationalId,
    NationalId,
    NationalIdKind,
    age_on,
    is_valid_national_id,
    parse_national_id,
)
from legetime.core.platform.errors import ErrorCode, ValidationError

# --- an independent generator (textbook formulas, not the module's code) ----------------------------


def with_check_digits(first9: str, k1_remainder: int = 0) -> str | None:
    """Append K1 and K2 to nine digits; None when no such number can exist (a check digit would be 10).

    ``k1_remainder`` 0 gives the pre-2032 K1 (11 − sum mod 11, 11 → 0); 1–3 give the extra K1 values the
    2032 rule allows (weighted sum including K1 ≡ remainder mod 11)."""
    d = [int(c) for c in first9]
    s1 = 3 * d[0] + 7 * d[1] + 6 * d[2] + 1 * d[3] + 8 * d[4] + 9 * d[5] + 4 * d[6] + 5 * d[7] + 2 * d[8]
    if k1_remainder == 0:
        k1 = 11 - s1 % 11
        k1 = 0 if k1 == 11 else k1
    else:
        k1 = (k1_remainder - s1) % 11
    if k1 == 10:
        return None
    s2 = (
        5 * d[0]
        + 4 * d[1]
        + 3 * d[2]
        + 2 * d[3]
        + 7 * d[4]
        + 6 * d[5]
        + 5 * d[6]
        + 4 * d[7]
        + 3 * d[8]
        + 2 * k1
    )
    k2 = 11 - s2 % 11
    k2 = 0 if k2 == 11 else k2
    if k2 == 10:
        return None
    return f"{first9}{k1}{k2}"


def first_nine(
    born: date, individual: int, *, d_number: bool = False, h_number: bool = False, synthetic: bool = False
) -> str:
    day = born.day + (40 if d_number else 0)
    month = born.month + (40 if h_number else 0) + (80 if synthetic else 0)
    return f"{day:02d}{month:02d}{born.year % 100:02d}{individual:03d}"


def build(born: date, individual: int, k1_remainder: int = 0, **kinds: bool) -> str:
    """A valid number; if ``individual`` cannot have one (a check digit would be 10), the next one up of the
    same parity (same sex) that can — tests pick individual numbers well inside their century range."""
    for candidate in range(individual, individual + 40, 2):
        value = with_check_digits(first_nine(born, candidate, **kinds), k1_remainder)
        if value is not None:
            return value
    raise AssertionError("no valid number near this individual number")


def old_rule_k1_ok(value: str) -> bool:
    weights = (3, 7, 6, 1, 8, 9, 4, 5, 2, 1)
    return sum(int(c) * w for c, w in zip(value, weights, strict=False)) % 11 == 0


# Individual-number ranges per birth year (the standard table).
def individual_ranges(year: int) -> list[range]:
    if 1854 <= year <= 1899:
        return [range(500, 750)]
    if 1900 <= year <= 1939:
        return [range(0, 500)]
    if 1940 <= year <= 1999:
        return [range(0, 500), range(900, 1000)]
    if 2000 <= year <= 2039:
        return [range(500, 1000)]
    raise AssertionError(year)


@st.composite
def birth_and_individual(draw: st.DrawFn) -> tuple[date, int]:
    born = draw(st.dates(min_value=date(1854, 1, 1), max_value=date(2039, 12, 31)))
    chosen = draw(st.sampled_from(individual_ranges(born.year)))
    return born, draw(st.integers(min_value=chosen.start, max_value=chosen.stop - 1))


@st.composite
def valid_ids(draw: st.DrawFn) -> str:
    born, individual = draw(birth_and_individual())
    value = with_check_digits(first_nine(born, individual), draw(st.sampled_from([0, 0, 1, 2, 3])))
    assume(value is not None)
    assert value is not None
    return value


# --- published examples ------------------------------------------------------------------------------
# From NAV's fnrvalidator test suite (github.com/navikt/fnrvalidator, tests/fnr.spec.ts), python-stdnum's
# doctests and Skatteetaten's 2032 description; each one re-checked by hand with the formulas above.

PUBLISHED_VALID = [
    # value, kind, synthetic, birth date, sex
    ("13097248022", NationalIdKind.FODSELSNUMMER, False, date(1972, 9, 13), "female"),
    ("29029648784", NationalIdKind.FODSELSNUMMER, False, date(1996, 2, 29), "male"),
    ("29020075838", NationalIdKind.FODSELSNUMMER, False, date(2000, 2, 29), "female"),
    ("15021951940", NationalIdKind.FODSELSNUMMER, False, date(2019, 2, 15), "male"),  # textbook K1 = 11 → 0
    ("15108695088", NationalIdKind.FODSELSNUMMER, False, date(1986, 10, 15), "female"),
    ("53097248016", NationalIdKind.D_NUMBER, False, date(1972, 9, 13), "female"),
    ("13527248013", NationalIdKind.H_NUMBER, False, date(1972, 12, 13), "female"),
    ("10915596784", NationalIdKind.FODSELSNUMMER, True, date(1955, 11, 10), "male"),  # Test-Norge
    ("50846202355", NationalIdKind.D_NUMBER, True, date(1962, 4, 10), "male"),  # synthetic D-number
    ("02013299997", NationalIdKind.FODSELSNUMMER, False, date(2032, 1, 2), "male"),
    ("30108299920", NationalIdKind.FODSELSNUMMER, False, date(1982, 10, 30), "male"),
    ("30108299939", NationalIdKind.FODSELSNUMMER, False, date(1982, 10, 30), "male"),  # 2032 rule, rest 1
    ("70108299914", NationalIdKind.D_NUMBER, False, date(1982, 10, 30), "male"),
]


@pytest.mark.parametrize(("value", "kind", "synthetic", "born", "sex"), PUBLISHED_VALID)
def test_published_examples_parse(
    value: str, kind: NationalIdKind, synthetic: bool, born: date, sex: str
) -> None:
    parsed = parse_national_id(value)
    assert parsed == NationalId(value=value, kind=kind, synthetic=synthetic, birth_date=born)
    assert parsed.sex == sex
    assert is_valid_national_id(value)
    # The independent generator agrees on the check digits (with whichever K1 remainder the number uses).
    assert any(with_check_digits(value[:9], r) == value for r in range(4))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("13097248032", "check_digits"),  # wrong K1
        ("13097248023", "check_digits"),  # wrong K2
        ("02013299987", "check_digits"),  # wrong K1, also under the 2032 rule
        ("02013299996", "check_digits"),  # wrong K2 with a 2032-rule K1
        ("29020112345", "check_digits"),
        ("68467038838", "kind"),  # NAV's D + H combination: not a number Norway issues
        ("1234567890", "format"),  # 10 digits
        ("123456789012", "format"),  # 12 digits
        ("1234567891A", "format"),
        ("１３０９７２４８０２２", "format"),  # full-width digits are digits to str.isdigit, not to us
        ("", "format"),
        ("   ", "format"),
    ],
)
def test_invalid_examples(value: str, reason: str) -> None:
    with pytest.raises(InvalidNationalId) as caught:
        parse_national_id(value)
    assert caught.value.reason == reason
    assert not is_valid_national_id(value)


def test_error_is_a_typed_validation_error_in_norwegian() -> None:
    with pytest.raises(InvalidNationalId) as caught:
        parse_national_id("13097248023")
    error = caught.value
    assert isinstance(error, ValidationError)
    assert error.code is ErrorCode.INVALID_NATIONAL_ID
    assert error.field == "nationalId"
    assert error.message == "Fødselsnummeret er ugyldig (kontrollsifrene stemmer ikke)."


def test_spaces_are_ignored() -> None:
    assert parse_national_id(" 130972 480 22 ").value == "13097248022"
    assert parse_national_id("130972\t48022\n").value == "13097248022"


def test_repr_hides_the_personnummer() -> None:
    assert "48022" not in repr(parse_national_id("13097248022"))


# --- dates -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first9",
    [
        "310272480",  # 31 February
        "290201480",  # 29 February 1901 (not a leap year)
        "290200480",  # 29 February 1900 (century, not a leap year)
        "310472480",  # 31 April
        "001072480",  # day 0
        "320172480",  # day 32
        "401072480",  # day 40 (neither a day nor a D-number)
        "721072480",  # D-number day 32
        "100072480",  # month 0
        "101372480",  # month 13
        "105372480",  # H-number month 13
        "109372480",  # synthetic month 13
        "106072480",  # month 60: in no range
    ],
)
def test_impossible_dates_are_rejected(first9: str) -> None:
    value = any_k1(first9)
    with pytest.raises(InvalidNationalId) as caught:
        parse_national_id(value)
    assert caught.value.reason == "date"
    assert "fødselsdatoen" in caught.value.message


def test_29_february_in_leap_years_is_accepted() -> None:
    assert parse_national_id(build(date(2000, 2, 29), 500)).birth_date == date(2000, 2, 29)
    assert parse_national_id(build(date(1904, 2, 29), 123)).birth_date == date(1904, 2, 29)


# --- century table -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yy", "individual", "year"),
    [
        (0, 0, 1900),
        (99, 499, 1999),
        (54, 500, 1854),
        (99, 749, 1899),
        (0, 500, 2000),
        (39, 999, 2039),
        (39, 750, 2039),
        (40, 900, 1940),
        (99, 999, 1999),
        (72, 480, 1972),
    ],
)
def test_century_table(yy: int, individual: int, year: int) -> None:
    assert parse_national_id(any_k1(f"0101{yy:02d}{individual:03d}")).birth_date == date(year, 1, 1)


def any_k1(first9: str) -> str:
    """A valid number for these nine digits, with the pre-2032 K1 if possible (else a 2032-rule one)."""
    return next(v for r in range(4) if (v := with_check_digits(first9, r)) is not None)


@pytest.mark.parametrize(
    ("yy", "individual"),
    [
        (40, 500),  # 500–749 needs year 54–99 (1800s) or 00–39 (2000s)
        (53, 749),
        (40, 899),
        (99, 750),  # 750–899 only for 2000–2039
        (54, 899),
    ],
)
def test_individual_number_outside_the_table_is_rejected(yy: int, individual: int) -> None:
    value = any_k1(f"0101{yy:02d}{individual:03d}")
    with pytest.raises(InvalidNationalId) as caught:
        parse_national_id(value)
    assert caught.value.reason == "individual_number"


# --- kinds -------------------------------------------------------------------------------------------


def test_d_h_and_synthetic_kinds() -> None:
    born = date(1985, 6, 7)
    assert parse_national_id(build(born, 123, d_number=True)).kind is NationalIdKind.D_NUMBER
    assert parse_national_id(build(born, 123, h_number=True)).kind is NationalIdKind.H_NUMBER
    synthetic = parse_national_id(build(born, 123, synthetic=True))
    assert (synthetic.kind, synthetic.synthetic) == (NationalIdKind.FODSELSNUMMER, True)
    synthetic_d = parse_national_id(build(born, 123, d_number=True, synthetic=True))
    assert (synthetic_d.kind, synthetic_d.synthetic) == (NationalIdKind.D_NUMBER, True)
    assert not parse_national_id(build(born, 123)).synthetic


def test_d_number_day_range_is_41_to_71() -> None:
    assert parse_national_id(build(date(1985, 1, 1), 123, d_number=True)).birth_date == date(1985, 1, 1)
    assert parse_national_id(build(date(1985, 1, 31), 123, d_number=True)).birth_date == date(1985, 1, 31)


def test_d_and_h_together_is_rejected() -> None:
    value = build(date(1985, 6, 7), 123, d_number=True, h_number=True)
    with pytest.raises(InvalidNationalId) as caught:
        parse_national_id(value)
    assert caught.value.reason == "kind"


# --- the 2032 rule -----------------------------------------------------------------------------------


@pytest.mark.parametrize("remainder", [1, 2, 3])
def test_2032_rule_ids_are_accepted_though_the_old_rule_rejects_them(remainder: int) -> None:
    born = date(1990, 5, 17)
    value = build(born, 100, remainder)
    assert not old_rule_k1_ok(value)
    parsed = parse_national_id(value)
    assert parsed.birth_date == born
    assert parsed.uses_2032_rule


def test_k1_remainder_4_or_more_is_still_rejected() -> None:
    first9 = first_nine(date(1990, 5, 17), 123)
    for remainder in range(4, 11):
        value = with_check_digits(first9, remainder)
        if value is not None:
            assert not is_valid_national_id(value)


def test_old_rule_k1_of_10_gets_a_number_under_the_2032_rule() -> None:
    # A prefix whose textbook K1 would be 10 had no valid number before 2032; now it has some.
    first9 = next(p for i in range(500) if _textbook_k1(p := first_nine(date(1990, 5, 17), i)) == 10)
    assert not any(
        is_valid_national_id(f"{first9}{k1}{k2}") and old_rule_k1_ok(f"{first9}{k1}")
        for k1 in range(10)
        for k2 in range(10)
    )
    accepted = [v for r in (1, 2, 3) if (v := with_check_digits(first9, r)) is not None]
    assert accepted
    assert all(is_valid_national_id(v) for v in accepted)


def _textbook_k1(first9: str) -> int:
    d = [int(c) for c in first9]
    s1 = sum(w * x for w, x in zip((3, 7, 6, 1, 8, 9, 4, 5, 2), d, strict=True))
    return 0 if 11 - s1 % 11 == 11 else 11 - s1 % 11


def test_k2_of_10_means_no_number_exists() -> None:
    # When K2 would have to be 10, no final digit makes the number valid.
    for individual in range(500):
        first9 = first_nine(date(1975, 3, 3), individual)
        k1_value = with_check_digits(first9)
        if k1_value is None and _textbook_k1(first9) != 10:
            ten = f"{first9}{_textbook_k1(first9)}"
            assert not any(is_valid_national_id(ten + str(k2)) for k2 in range(10))
            return
    pytest.fail("no K2 = 10 prefix found")


# --- age ---------------------------------------------------------------------------------------------


def test_age_on_birthday_boundary() -> None:
    born = date(2010, 6, 15)
    assert age_on(born, date(2026, 6, 14)) == 15
    assert age_on(born, date(2026, 6, 15)) == 16
    assert age_on(born, born) == 0


def test_age_on_29_february_birthday() -> None:
    born = date(2008, 2, 29)
    assert age_on(born, date(2024, 2, 28)) == 15
    assert age_on(born, date(2024, 2, 29)) == 16  # leap year: the real birthday
    assert age_on(born, date(2025, 2, 28)) == 16  # non-leap: not yet 17 on 28 February
    assert age_on(born, date(2025, 3, 1)) == 17  # … but on 1 March


def test_age_on_before_birth_is_an_error() -> None:
    with pytest.raises(ValueError):
        age_on(date(2020, 1, 2), date(2020, 1, 1))


def test_national_id_age_on() -> None:
    assert parse_national_id("13097248022").age_on(date(2026, 9, 12)) == 53
    assert parse_national_id("13097248022").age_on(date(2026, 9, 13)) == 54


@given(st.dates(min_value=date(1900, 1, 1)), st.integers(min_value=0, max_value=200 * 366))
def test_age_matches_counting_birthdays(born: date, days: int) -> None:
    day = date.fromordinal(min(born.toordinal() + days, date.max.toordinal()))
    birthdays = 0
    for year in range(born.year + 1, day.year + 1):
        try:
            birthday = born.replace(year=year)
        except ValueError:  # 29 February in a non-leap year
            birthday = date(year, 3, 1)
        if birthday <= day:
            birthdays += 1
    assert age_on(born, day) == birthdays


# --- properties --------------------------------------------------------------------------------------


@given(birth_and_individual(), st.sampled_from([0, 1, 2, 3]))
@example((date(2000, 2, 29), 500), 0)
@example((date(1854, 1, 1), 500), 0)
@example((date(2039, 12, 31), 999), 0)
def test_generated_ids_parse_back_to_their_birth_date(
    born_individual: tuple[date, int], remainder: int
) -> None:
    born, individual = born_individual
    value = with_check_digits(first_nine(born, individual), remainder)
    assume(value is not None)
    assert value is not None
    parsed = parse_national_id(value)
    assert parsed.birth_date == born
    assert parsed.kind is NationalIdKind.FODSELSNUMMER
    assert not parsed.synthetic
    assert parsed.sex == ("female" if individual % 2 == 0 else "male")
    assert parsed.uses_2032_rule == (remainder != 0)


@given(valid_ids(), st.integers(min_value=0, max_value=10), st.integers(min_value=1, max_value=9))
def test_changing_any_single_digit_makes_the_id_invalid(value: str, position: int, delta: int) -> None:
    # K2 weighs every digit (weights 1–7, never a multiple of the prime 11), so one changed digit always
    # breaks K2 — even under the 2032 rule, where K1 alone has several valid values.
    digit = (int(value[position]) + delta) % 10
    changed = value[:position] + str(digit) + value[position + 1 :]
    assert not is_valid_national_id(changed)


@given(valid_ids(), st.integers(min_value=0, max_value=9))
def test_swapping_adjacent_different_digits_makes_the_id_invalid(value: str, position: int) -> None:
    assume(value[position] != value[position + 1])
    swapped = value[:position] + value[position + 1] + value[position] + value[position + 2 :]
    assert not is_valid_national_id(swapped)


@given(valid_ids(), st.integers(min_value=0, max_value=9))
def test_another_k1_with_its_own_k2_is_another_valid_id_for_the_same_person_data(value: str, k1: int) -> None:
    # What the 2032 rule does allow: a different K1 (with K2 recomputed) may be a different valid number,
    # and then it names the same birth date.
    remainders = [
        r for r in range(4) if (v := with_check_digits(value[:9], r)) is not None and v[9] == str(k1)
    ]
    candidate = f"{value[:9]}{k1}"
    k2s = [c for c in "0123456789" if is_valid_national_id(candidate + c)]
    assert len(k2s) <= 1
    assert bool(k2s) == bool(remainders)
    if k2s:
        assert parse_national_id(candidate + k2s[0]).birth_date == parse_national_id(value).birth_date


@given(
    birth_and_individual(),
    st.booleans(),
    st.sampled_from(["plain", "h_number", "synthetic"]),
)
def test_d_h_and_synthetic_transforms_preserve_the_birth_date(
    born_individual: tuple[date, int], d_number: bool, month_kind: str
) -> None:
    born, individual = born_individual
    assume(not (d_number and month_kind == "h_number"))
    value = with_check_digits(
        first_nine(
            born,
            individual,
            d_number=d_number,
            h_number=month_kind == "h_number",
            synthetic=month_kind == "synthetic",
        )
    )
    assume(value is not None)
    assert value is not None
    parsed = parse_national_id(value)
    assert parsed.birth_date == born
    assert parsed.synthetic == (month_kind == "synthetic")
    expected_kind = (
        NationalIdKind.D_NUMBER
        if d_number
        else NationalIdKind.H_NUMBER
        if month_kind == "h_number"
        else NationalIdKind.FODSELSNUMMER
    )
    assert parsed.kind is expected_kind


@given(st.text(max_size=15))
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        parsed = parse_national_id(text)
    except InvalidNationalId:
        return
    assert len(parsed.value) == 11
    assert parsed.value.isdigit()


def test_a_birth_date_still_to_come_is_refused_when_asked() -> None:
    today = date(2026, 11, 30)
    tomorrow = build(date(2026, 12, 1), 500, synthetic=True)
    assert parse_national_id(tomorrow).birth_date == date(2026, 12, 1)  # a valid number as such
    with pytest.raises(InvalidNationalId) as refused:
        parse_national_id(tomorrow, born_by=today)
    assert refused.value.reason == "future" and refused.value.code is ErrorCode.INVALID_NATIONAL_ID
    born_today = build(today, 500, synthetic=True)
    assert parse_national_id(born_today, born_by=today).birth_date == today
