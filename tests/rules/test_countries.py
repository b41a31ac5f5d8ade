"""The country rules (legetime.core.identity.countries): one table, each rule with its source; accepted
national IDs per country; the guardian age and the ages a clinician may withhold from a guardian."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from legetime.core.identity.countries import (
    NORWAY,
    RULES,
    STRICTEST,
    SWEDEN,
    AgeRange,
    Sourced,
    born_after_is_under,
    country_of_national_id,
    guardian_rules,
    identify,
    rules_for,
)
from legetime.core.identity.nationalid import InvalidNationalId, age_on
from legetime.core.identity.swedish_personal_number import luhn_check_digit
from legetime.core.platform.errors import ErrorCode

NORWEGIAN = "17889200022"  # the demo mother's synthetic fødselsnummer (born 17 August 1992)
SWEDISH = "198112289874"  # Skatteverket's example personnummer (28 December 1981)
COORDINATION = "199001612382"  # samordningsnummer: day 61 = 1 January 1990


def swedish_number(born: date, birth_number: int = 238) -> str:
    """A valid 12-digit personnummer for ``born`` (independent of the table under test)."""
    nine = f"{born:%y%m%d}{birth_number:03d}"
    return f"{born:%Y%m%d}{birth_number:03d}{luhn_check_digit(nine)}"


# --- the table ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rules", list(RULES.values()), ids=list(RULES))
def test_every_rule_names_its_source(rules: object) -> None:
    sourced = [getattr(rules, f.name) for f in dataclasses.fields(rules)]  # type: ignore[arg-type]
    sourced = [value for value in sourced if isinstance(value, Sourced)]
    assert len(sourced) == 4
    for rule in sourced:
        assert len(rule.source) > 40, rule


def test_law_and_product_decisions_are_told_apart() -> None:
    assert not NORWAY.guardian_until_age.product_decision and not SWEDEN.guardian_until_age.product_decision
    assert not NORWAY.withhold_from_guardian.product_decision  # pasient- og brukerrettighetsloven § 3-4
    assert SWEDEN.withhold_from_guardian.product_decision  # Swedish law sets no age
    assert NORWAY.child_same_country.product_decision and SWEDEN.child_same_country.product_decision
    assert "§ 3-4" in NORWAY.guardian_until_age.source and "§ 4-3" in NORWAY.guardian_until_age.source
    assert (
        "6 kap. 11 §" in SWEDEN.guardian_until_age.source and "6 kap. 2 §" in SWEDEN.guardian_until_age.source
    )
    assert "12 kap. 3 §" in SWEDEN.withhold_from_guardian.source


def test_the_countries_and_their_codes() -> None:
    assert set(RULES) == {"NO", "SE"}
    assert rules_for("NO") is NORWAY and rules_for("se") is SWEDEN
    assert rules_for("DK") is None and rules_for(None) is None and rules_for("") is None


def test_an_unknown_country_gets_the_least_guardian_access() -> None:
    assert STRICTEST is NORWAY
    assert (
        guardian_rules(None) is NORWAY and guardian_rules("DK") is NORWAY and guardian_rules("SE") is SWEDEN
    )


# --- national IDs ---------------------------------------------------------------------------------------


def test_accepted_id_kinds() -> None:
    assert NORWAY.id_kinds.value == ("fødselsnummer", "D-nummer", "H-nummer")
    assert SWEDEN.id_kinds.value == ("personnummer", "samordningsnummer")
    assert NORWAY.parse(NORWEGIAN).kind == "fodselsnummer"
    assert NORWAY.parse(NORWEGIAN).country == "NO"
    swedish = SWEDEN.parse(SWEDISH)
    assert (swedish.value, swedish.country, swedish.kind) == (SWEDISH, "SE", "personnummer")
    assert swedish.birth_date == date(1981, 12, 28)
    coordination = SWEDEN.parse(COORDINATION)
    assert coordination.kind == "samordningsnummer" and coordination.birth_date == date(1990, 1, 1)
    assert SWEDEN.parse("19811228-9874").value == SWEDISH  # the hyphen people type


def test_the_formats_are_disjoint() -> None:
    assert len({rules.id_length for rules in RULES.values()}) == len(RULES)
    with pytest.raises(InvalidNationalId):
        NORWAY.parse(SWEDISH)
    with pytest.raises(InvalidNationalId):
        SWEDEN.parse(NORWEGIAN)
    assert identify(NORWEGIAN) is NORWAY and identify(SWEDISH) is SWEDEN and identify(COORDINATION) is SWEDEN
    assert identify("12345678901") is None and identify("8112289874") is None


@pytest.mark.parametrize(
    "value",
    ["8112289874", "811228-9874", "198112289875", "19811328" + "9874", "abcdefghijkl", ""],
    ids=["10 digits", "10 digits with hyphen", "check digit", "month 13", "letters", "empty"],
)
def test_a_bad_swedish_number_is_an_invalid_national_id(value: str) -> None:
    with pytest.raises(InvalidNationalId) as caught:
        SWEDEN.parse(value)
    assert caught.value.code is ErrorCode.INVALID_NATIONAL_ID and caught.value.field == "nationalId"
    assert value not in caught.value.message or not value  # the number is never echoed


def test_nobody_not_yet_born() -> None:
    today = date(2025, 6, 1)
    tomorrow = swedish_number(today + timedelta(days=1))
    assert SWEDEN.parse(swedish_number(today), born_by=today).birth_date == today
    with pytest.raises(InvalidNationalId):
        SWEDEN.parse(tomorrow, born_by=today)


def test_the_stored_form_tells_the_country() -> None:
    assert country_of_national_id(NORWEGIAN) is NORWAY
    assert country_of_national_id(SWEDISH) is SWEDEN
    for bad in ("", "123", "1234567890123", "1788920002X"):
        with pytest.raises(ValueError):
            country_of_national_id(bad)


def test_a_parsed_id_keeps_the_number_out_of_its_repr() -> None:
    assert SWEDISH not in repr(SWEDEN.parse(SWEDISH)) and "9874" not in repr(SWEDEN.parse(SWEDISH))


# --- guardians ------------------------------------------------------------------------------------------


def test_norway_guardian_until_16_and_withholding_from_12_to_16() -> None:
    assert NORWAY.guardian_until_age.value == 16
    assert [NORWAY.guardian_may_act_for(age) for age in (0, 15, 16, 17)] == [True, True, False, False]
    assert NORWAY.withhold_from_guardian.value == AgeRange(12, 16)
    assert [age in NORWAY.withhold_from_guardian.value for age in (11, 12, 15, 16)] == [
        False,
        True,
        True,
        False,
    ]
    # The messages Norwegian patients and clinicians have always seen.
    assert NORWAY.child_too_old_message() == (
        "Barnet må være under 16 år. Fra 16 år logger ungdommen inn med egen BankID."
    )
    assert NORWAY.withhold_range_message() == (
        "Bare for pasienter mellom 12 og 16 år i saker en forelder har opprettet."
    )


def test_sweden_guardian_until_18_and_withholding_from_12_to_18() -> None:
    assert SWEDEN.guardian_until_age.value == 18
    assert [SWEDEN.guardian_may_act_for(age) for age in (0, 16, 17, 18)] == [True, True, True, False]
    assert SWEDEN.withhold_from_guardian.value == AgeRange(12, 18)
    assert [age in SWEDEN.withhold_from_guardian.value for age in (11, 12, 17, 18)] == [
        False,
        True,
        True,
        False,
    ]
    assert SWEDEN.child_too_old_message().startswith("Barnet må være under 18 år.")
    assert SWEDEN.withhold_range_message() == (
        "Bare for pasienter mellom 12 og 18 år i saker en forelder har opprettet."
    )


def test_a_range_from_zero_reads_under() -> None:
    rules = dataclasses.replace(
        SWEDEN, withhold_from_guardian=Sourced(AgeRange(0, 18), "a test of the message only, not a rule")
    )
    assert (
        rules.withhold_range_message() == "Bare for pasienter under 18 år i saker en forelder har opprettet."
    )
    assert 0 in AgeRange(0, 18) and 18 not in AgeRange(0, 18) and "12" not in AgeRange(0, 18)


def test_children_are_of_the_guardians_country() -> None:
    assert NORWAY.child_same_country.value and SWEDEN.child_same_country.value


@given(
    born=st.dates(min_value=date(1990, 1, 1), max_value=date(2030, 12, 31)),
    today=st.dates(min_value=date(2000, 1, 1), max_value=date(2050, 12, 31)),
    age=st.sampled_from([12, 16, 18]),
)
def test_the_cutoff_agrees_with_age_on(born: date, today: date, age: int) -> None:
    """The SQL cut-off (born after it → under the age) and age_on agree, leap days included."""
    if born > today:
        return
    assert (born > born_after_is_under(age, today)) == (age_on(born, today) < age)


@pytest.mark.parametrize(
    ("today", "born", "age", "under"),
    [
        (date(2028, 2, 29), date(2012, 2, 29), 16, False),  # a leap-day child turns 16 on a leap day
        (date(2027, 2, 28), date(2011, 2, 28), 16, False),
        (date(2028, 2, 28), date(2012, 2, 29), 16, True),
        (date(2029, 2, 27), date(2011, 2, 28), 18, True),  # the day before her 18th birthday
        (date(2028, 2, 29), date(2010, 2, 28), 18, False),  # 2010 has no 29 Feb: the cut-off is the 28th
        (date(2028, 2, 29), date(2010, 3, 1), 18, True),
        (date(2026, 2, 28), date(2008, 2, 29), 18, True),  # a year older on 1 March in a common year
        (date(2026, 3, 1), date(2008, 2, 29), 18, False),
    ],
)
def test_the_cutoff_around_29_february(today: date, born: date, age: int, under: bool) -> None:
    assert (born > born_after_is_under(age, today)) is under
    assert (age_on(born, today) < age) is under
