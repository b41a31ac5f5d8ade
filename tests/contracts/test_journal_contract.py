"""The contract every journal drafter keeps, run against each one the plugins offer.

A driver per provider name builds it (an LLM drafter's driver would point it at a fake, deterministic
model server). A provider without a driver fails here on purpose.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import pytest

from legetime.core.platform.providers import Capability, ProviderSpec
from legetime.core.platform.providers.journal import (
    JournalContext,
    JournalDraft,
    JournalMessage,
    JournalProvider,
)
from tests.support import build_provider, offered_specs

# Eleven digits, optionally split 6+5: a fødselsnummer or D-number in any common spelling.
NATIONAL_ID = re.compile(r"(?<!\d)\d{6}\s?\d{5}(?!\d)")


class JournalDriver(Protocol):
    def build(self, spec: ProviderSpec, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any: ...


class TemplateDriver:
    def build(self, spec: ProviderSpec, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
        return build_provider(spec, data_dir)


DRIVERS: dict[str, JournalDriver] = {"template": TemplateDriver()}


@pytest.fixture(params=offered_specs(Capability.JOURNAL), ids=lambda spec: spec.name)
def spec(request: pytest.FixtureRequest) -> ProviderSpec:
    spec: ProviderSpec = request.param
    return spec


@pytest.fixture
def driver(spec: ProviderSpec) -> JournalDriver:
    if spec.name not in DRIVERS:
        pytest.fail(f"journal provider {spec.name!r} has no contract driver; add one to DRIVERS")
    return DRIVERS[spec.name]


@pytest.fixture
def provider(
    spec: ProviderSpec, driver: JournalDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    return driver.build(spec, tmp_path, monkeypatch)


FULL = JournalContext(
    case_number="LT-2025-000123",
    patient_age_years=34,
    patient_sex="female",
    questionnaire=[
        ("Hva gjelder henvendelsen?", "Svie ved vannlating"),
        ("Hvor lenge har du hatt plagene?", "Tre dager"),
        ("Har du feber?", "Nei"),
    ],
    messages=[
        JournalMessage(author_role="clinician", body="Har du blod i urinen?"),
        JournalMessage(author_role="patient", body="Nei, ikke som jeg har sett."),
    ],
    outcome="prescription",
    consultation_date=date(2025, 3, 5),
)
MINIMAL = JournalContext(case_number="LT-1", patient_age_years=7, patient_sex=None, questionnaire=[])


def test_implements_the_protocol(provider: Any, spec: ProviderSpec) -> None:
    assert isinstance(provider, JournalProvider)
    assert provider.name == spec.name


@pytest.mark.parametrize("context", [FULL, MINIMAL], ids=["full", "minimal"])
async def test_draft_has_sections_and_provenance(
    provider: Any, spec: ProviderSpec, context: JournalContext
) -> None:
    draft = await provider.draft(context)
    assert isinstance(draft, JournalDraft)
    assert draft.sections
    for title, body in draft.sections.items():
        assert isinstance(title, str) and title.strip()
        assert isinstance(body, str) and body.strip()
    assert draft.provenance.drafter == spec.name
    assert isinstance(draft.provenance.version, str) and draft.provenance.version
    assert draft.text.strip()


async def test_draft_is_deterministic(
    provider: Any, spec: ProviderSpec, driver: JournalDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await provider.draft(FULL)
    assert await provider.draft(FULL) == first
    other = driver.build(spec, tmp_path / "other", monkeypatch)
    assert await other.draft(FULL) == first


async def test_no_national_id_in_the_draft(provider: Any) -> None:
    for context in (FULL, MINIMAL):
        draft = await provider.draft(context)
        assert not NATIONAL_ID.search(draft.text)
        assert not any(NATIONAL_ID.search(str(value) or "") for value in vars(draft.provenance).values())
