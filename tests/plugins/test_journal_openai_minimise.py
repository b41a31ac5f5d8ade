"""Data minimisation of the ``openai`` drafter: what is masked, what stays, and properties that hold for any
text — a valid national ID, personnummer, phone number, e-mail address or known name embedded anywhere in
random text never survives."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from legetime.core.identity.nationalid import InvalidNationalId, parse_national_id
from legetime.core.identity.swedish_personal_number import luhn_check_digit
from legetime.plugins.journal.openai_chat.minimise import Minimiser, mask_identifiers

LONG_NUMBER = re.compile(r"\d(?:[ \-+]?\d){7,}")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("fnr 01019012345.", "fnr [fødselsnummer]."),
        ("fnr: 010190 12345", "fnr: [fødselsnummer]"),
        ("D-nummer 41019012345", "D-nummer [fødselsnummer]"),
        ("fnr01019012345", "fnr[fødselsnummer]"),
        (
            "pnr 19900101-1234, 900101-1234, 900101+1234, 9001011234",
            "pnr " + ", ".join(["[personnummer]"] * 4),
        ),
        ("mobil 91234567 / 912 34 567 / 91 23 45 67", "mobil [telefon] / [telefon] / [telefon]"),
        ("+47 912 34 567, 0047 91234567, 4791234567", "[telefon], [telefon], [telefon]"),
        ("i Sverige: +46 70 123 45 67", "i Sverige: [telefon]"),
        ("kontonr 1234 56 78903 og 12345678901234", "kontonr [fødselsnummer] og [nummer]"),
        ("skriv til kari.n+lege@example.co.uk", "skriv til [e-post]"),
        ("Jeg bor i Storgata 5B, 0155 Oslo.", "Jeg bor i [adresse]."),
        ("adresse Karl Johans gate 22", "adresse [adresse]"),
    ],
)
def test_identifiers_are_masked(text: str, masked: str) -> None:
    assert mask_identifiers(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "Feber 38.5 i tre dager, siden 31.01.2024 (2024-01-31, 31-01-2024).",
        "Plager fra 2019-2024, 500 mg to ganger daglig, BT 120/80, puls 72.",
        "Vekt 1 200 g ved fødsel; kl. 14.30; 1234567 er bare sju sifre.",
        "Gata der jeg bodde var fin.",
    ],
)
def test_clinical_text_stays(text: str) -> None:
    assert mask_identifiers(text) == text


def test_names_are_masked_as_words_in_any_case_and_genitive() -> None:
    masker = Minimiser(["Kari Anne Nordmann", "Ola-Emil", "  ", "X"])
    assert masker.mask("KARI sa at Nordmanns hund og ola-emil, Ola og Emil") == (
        "[navn] sa at [navn] hund og [navn]-[navn], [navn] og [navn]"
    )
    # Not inside words, and no one-letter names.
    assert masker.mask("Karianne og Xylofon og x") == "Karianne og Xylofon og x"
    assert Minimiser().mask("Kari 91234567") == "Kari [telefon]"


# --- properties -------------------------------------------------------------------------------------------

text = st.text(max_size=40)


@st.composite
def national_ids(draw: st.DrawFn) -> str:
    """A valid fødselsnummer or D-number (all check-digit rules, any century)."""
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=date(2039, 12, 31)))
    individual = draw(st.integers(0, 999))
    day = born.day + (40 if draw(st.booleans()) else 0)
    body = f"{day:02d}{born.month:02d}{born.year % 100:02d}{individual:03d}"
    k1 = (11 - sum(w * int(d) for w, d in zip((3, 7, 6, 1, 8, 9, 4, 5, 2), body, strict=True)) % 11) % 11
    assume(k1 < 10)
    k2_body = body + str(k1)
    k2 = (
        11 - sum(w * int(d) for w, d in zip((5, 4, 3, 2, 7, 6, 5, 4, 3, 2), k2_body, strict=True)) % 11
    ) % 11
    assume(k2 < 10)
    candidate = f"{k2_body}{k2}"
    try:
        parse_national_id(candidate)
    except InvalidNationalId:
        assume(False)
    return candidate


@st.composite
def personnummer(draw: st.DrawFn) -> str:
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)))
    serial = draw(st.integers(0, 999))
    nine = f"{born:%y%m%d}{serial:03d}"
    ten = nine + luhn_check_digit(nine)
    century = draw(st.booleans())
    separator = draw(st.sampled_from(["", "-", "+"]))
    return f"{born.year // 100 if century else ''}{ten[:6]}{separator}{ten[6:]}"


norwegian_phones = st.builds(
    lambda first, rest, style, prefix: (
        prefix
        + {
            0: f"{first}{rest}",
            1: f"{first}{rest[:2]} {rest[2:4]} {rest[4:]}",
            2: f"{first}{rest[0]} {rest[1:3]} {rest[3:5]} {rest[5:]}",
        }[style]
    ),
    st.sampled_from("2345679"),
    st.text(alphabet="0123456789", min_size=7, max_size=7),
    st.integers(0, 2),
    st.sampled_from(["", "+47 ", "+47", "0047 ", "0047"]),
)
e164 = st.builds(
    lambda country, number: f"+{country} {number}",
    st.integers(1, 999),
    st.text(alphabet="0123456789", min_size=7, max_size=11),
)
emails = st.emails()


@given(before=text, identifier=national_ids(), after=text, split=st.booleans())
def test_no_national_id_survives(before: str, identifier: str, after: str, split: bool) -> None:
    written = f"{identifier[:6]} {identifier[6:]}" if split else identifier
    masked = mask_identifiers(before + written + after)
    assert identifier not in masked.replace(" ", "")
    assert not re.search(r"(?<!\d)\d{6}\s?\d{5}(?!\d)", masked)


@given(before=text, identifier=personnummer(), after=text)
def test_no_personnummer_survives(before: str, identifier: str, after: str) -> None:
    masked = mask_identifiers(before + identifier + after)
    assert identifier not in masked
    assert not re.search(r"\d{6}[-+]?\d{4}", masked)


@given(before=text, number=st.one_of(norwegian_phones, e164), after=text)
def test_no_phone_number_survives(before: str, number: str, after: str) -> None:
    masked = mask_identifiers(before + " " + number + " " + after)
    assert number not in masked
    assert re.sub(r"\D", "", number)[-8:] not in masked


@given(before=text, address=emails, after=text)
def test_no_email_survives(before: str, address: str, after: str) -> None:
    assert address not in mask_identifiers(f"{before} {address} {after}")


@given(
    before=text,
    name=st.sampled_from(["Kari", "Nordmann", "Ingrid", "Åse", "Øyvind", "Emma"]),
    after=text,
    upper=st.booleans(),
)
def test_no_known_name_survives(before: str, name: str, after: str, upper: bool) -> None:
    written = name.upper() if upper else name
    masked = Minimiser(["Kari Nordmann", "Ingrid Åse", "Øyvind", "Emma"]).mask(f"{before} {written} {after}")
    assert not re.search(rf"(?<!\w){name}(?!\w)", masked, re.IGNORECASE)


@given(st.text())
def test_masked_text_has_no_long_number(value: str) -> None:
    masked = mask_identifiers(value)
    for found in LONG_NUMBER.findall(masked):  # only dates of 8 digits are let through
        assert len(re.sub(r"\D", "", found)) == 8, found
