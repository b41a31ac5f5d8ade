"""The rules that differ by country, in one table: which national IDs are accepted, who counts as a child
for a guardian's case, when a guardian's access ends, and when a clinician may keep things from her.

A person's country is the issuer of her national ID, and it is not stored on its own: the stored number
tells it (:func:`country_of_national_id`; Norwegian numbers have 11 digits, Swedish ones 12, so the formats
are disjoint and a number's lookup hash never names a person of another country). A login's country is
what its identity provider verified (``VerifiedIdentity.country``). A country missing from :data:`RULES`
cannot log in.

Every rule is :class:`Sourced`: its value with the law it rests on written next to it, and
``product_decision=True`` where the value is our choice within what the law leaves open.

Which country's rules apply to a case is the patient's country (the issuer of her ID); a guardian's child
always has the guardian's country (:attr:`CountryRules.child_same_country`), so the guardian's country is
the case's too. **This is a product decision, not a conflict-of-laws analysis**: for telemedicine the
directive on patients' rights in cross-border healthcare (2011/24/EU, in the EEA Agreement) says the care
is given where the provider is established (art. 3(d)) and under that state's law (art. 4(1)(a)). Applying
Swedish guardianship rules to Swedish patients is right where Swedish patients are treated by a Swedish
vårdgivare; if they are treated by the Norwegian clinic, counsel must confirm it (see docs/countries.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Generic, TypeVar

from legetime.core.identity.nationalid import InvalidNationalId, parse_national_id
from legetime.core.identity.swedish_personal_number import (
    InvalidSwedishPersonalNumber,
    parse_swedish_personal_number,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Sourced(Generic[T]):
    """A rule's value and where it comes from."""

    value: T
    source: str
    """The act and section (or the decision) the value rests on."""
    product_decision: bool = False
    """True where the value is our choice within what the law allows, not read off the law itself."""


@dataclass(frozen=True)
class AgeRange:
    """Ages ``from_age`` (included) up to ``until_age`` (excluded), in whole years."""

    from_age: int
    until_age: int

    def __contains__(self, age: object) -> bool:
        return isinstance(age, int) and self.from_age <= age < self.until_age


@dataclass(frozen=True)
class PersonalId:
    """A valid national ID of some country. ``value`` is its stored form (digits only)."""

    value: str
    country: str
    birth_date: date
    kind: str

    def __repr__(self) -> str:  # personal data: never the number itself in a log or traceback
        return f"PersonalId(country={self.country!r}, kind={self.kind!r}, born={self.birth_date.year})"


@dataclass(frozen=True)
class CountryRules:
    code: str
    """ISO 3166-1 alpha-2, as ``VerifiedIdentity.country`` names it."""
    id_noun: str
    """What the national ID is called in patient-facing text (bokmål)."""
    id_with_country: str
    """The same with the country's adjective, e.g. "svensk personnummer"."""
    id_length: int
    """Digits in the stored form. Distinct per country: the stored number tells its country."""
    id_kinds: Sourced[tuple[str, ...]]
    guardian_until_age: Sourced[int]
    """A guardian may open a case for a child under this age and reads the case until the child turns it."""
    withhold_from_guardian: Sourced[AgeRange]
    """Ages of a patient at which the clinician may keep a message or note from the guardian."""
    child_same_country: Sourced[bool]
    """A guardian's child must have a national ID of the guardian's country."""
    parse_id: Callable[[str, date | None], PersonalId]

    def parse(self, value: str, *, born_by: date | None = None) -> PersonalId:
        """Validate ``value`` as one of this country's IDs; raises :class:`InvalidNationalId`."""
        return self.parse_id(value, born_by)

    def guardian_may_act_for(self, child_age: int) -> bool:
        return child_age < self.guardian_until_age.value

    def guardian_cutoff(self, today: date) -> date:
        """Children born after this date are under the guardian age limit today."""
        return born_after_is_under(self.guardian_until_age.value, today)

    def child_too_old_message(self) -> str:
        age = self.guardian_until_age.value
        return f"Barnet må være under {age} år. Fra {age} år logger ungdommen inn med egen BankID."

    def withhold_range_message(self) -> str:
        ages = self.withhold_from_guardian.value
        if ages.from_age == 0:
            return f"Bare for pasienter under {ages.until_age} år i saker en forelder har opprettet."
        return (
            f"Bare for pasienter mellom {ages.from_age} og {ages.until_age} år "
            "i saker en forelder har opprettet."
        )


def born_after_is_under(age: int, today: date) -> date:
    """Whoever was born after the returned date is under ``age`` today. Agrees with
    :func:`legetime.core.identity.nationalid.age_on` (born 29 February: a year older on 1 March)."""
    try:
        return today.replace(year=today.year - age)
    except ValueError:  # today is 29 February and that year has none
        return today.replace(year=today.year - age, day=28)


def _norwegian(value: str, born_by: date | None) -> PersonalId:
    parsed = parse_national_id(value, born_by=born_by)
    return PersonalId(parsed.value, "NO", parsed.birth_date, parsed.kind.value)


def _swedish(value: str, born_by: date | None) -> PersonalId:
    try:
        parsed = parse_swedish_personal_number(value, born_by=born_by)
    except InvalidSwedishPersonalNumber as error:
        raise InvalidNationalId(error.message, reason=error.reason) from None
    kind = "samordningsnummer" if parsed.coordination_number else "personnummer"
    return PersonalId(parsed.value, "SE", parsed.birth_date, kind)


_SAME_COUNTRY = Sourced(
    True,
    "Product decision: a guardianship is verified against one country's population register "
    "(hook verify_guardianship) and the age rules of one country apply to the case; a family across the "
    "border is refused with a clear message rather than mixing two rule sets.",
    product_decision=True,
)

NORWAY = CountryRules(
    code="NO",
    id_noun="fødselsnummer",
    id_with_country="norsk fødselsnummer",
    id_length=11,
    id_kinds=Sourced(
        ("fødselsnummer", "D-nummer", "H-nummer"),
        "Folkeregisterloven (2016) § 2-2 (fødselsnummer, D-nummer); the health sector's H-nummer and "
        "Test-Norge's synthetic numbers as documented in nationalid.py (Skatteetaten).",
    ),
    guardian_until_age=Sourced(
        16,
        "Pasient- og brukerrettighetsloven § 4-3 første ledd b (samtykkekompetanse from 16) and § 3-4 "
        "første ledd (parents are informed while the patient is under 16; from 16 only what the parental "
        "responsibility needs, § 3-4 fjerde ledd, which this service does not model).",
    ),
    withhold_from_guardian=Sourced(
        AgeRange(12, 16),
        "Pasient- og brukerrettighetsloven § 3-4 annet ledd: from 12 to 16, information is not given to the "
        "parents when the child, for reasons that should be respected, does not want it.",
    ),
    child_same_country=_SAME_COUNTRY,
    parse_id=_norwegian,
)

SWEDEN = CountryRules(
    code="SE",
    id_noun="personnummer",
    id_with_country="svensk personnummer",
    id_length=12,
    id_kinds=Sourced(
        ("personnummer", "samordningsnummer"),
        "Folkbokföringslagen (1991:481) 18 § (personnummer, stored with 8-digit birth date) and 18 a § "
        "(samordningsnummer: day + 60); Skatteverket SKV 704/707. The 10-digit form is refused "
        "(swedish_personal_number.py).",
    ),
    guardian_until_age=Sourced(
        18,
        "Föräldrabalken 6 kap. 2 § (vårdnad lasts until the child turns 18) and 6 kap. 11 § (the "
        "vårdnadshavare decides in the child's personal matters, giving the child's views growing weight "
        "with age and maturity).",
    ),
    withhold_from_guardian=Sourced(
        AgeRange(12, 18),
        "Swedish law sets no age: confidentiality holds against the vårdnadshavare where the child would "
        "suffer considerable harm (offentlighets- och sekretesslagen 12 kap. 3 §, public care; private "
        "care: patientsäkerhetslagen 6 kap. 12 §), and the child's maturity counts (föräldrabalken 6 kap. "
        "11 §, patientlagen 4 kap. 3 §). Opening the clinician's switch from 12, as in Norway, is a "
        "product decision; the clinician judges maturity and harm case by case.",
        product_decision=True,
    ),
    child_same_country=_SAME_COUNTRY,
    parse_id=_swedish,
)

RULES: Mapping[str, CountryRules] = {rules.code: rules for rules in (NORWAY, SWEDEN)}

STRICTEST = min(RULES.values(), key=lambda rules: rules.guardian_until_age.value)
"""The rules giving a guardian the least access: what applies when an actor's country is not known."""


def rules_for(code: str | None) -> CountryRules | None:
    """The rules of a country (ISO alpha-2), or None for one this service does not serve."""
    return RULES.get(code.upper()) if code else None


def guardian_rules(code: str | None) -> CountryRules:
    """The rules for a guardian of country ``code``; unknown → :data:`STRICTEST` (least access)."""
    return rules_for(code) or STRICTEST


def country_of_national_id(stored: str) -> CountryRules:
    """The country of a stored (already validated) national ID, by its form. Raises ``ValueError`` for a
    form no country has."""
    for rules in RULES.values():
        if len(stored) == rules.id_length and stored.isdigit():
            return rules
    raise ValueError("not a stored national ID of any country served")


def identify(value: str) -> CountryRules | None:
    """The country whose format ``value`` (as typed) is a valid ID of, if any. Formats are disjoint."""
    for rules in RULES.values():
        try:
            rules.parse(value)
        except InvalidNationalId:
            continue
        return rules
    return None
