"""The contract every journal drafter keeps.

Its driver builds the provider (an LLM drafter's driver would point it at a fake, deterministic model
server).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from legetime.sdk import JournalContext, JournalDraft, JournalMessage, JournalProvider, ProviderSpec
from legetime.testing._common import BuildProvider, build_default, in_event_loop

# Eleven digits, optionally split 6+5: a fødselsnummer or D-number in any common spelling.
NATIONAL_ID = re.compile(r"(?<!\d)\d{6}\s?\d{5}(?!\d)")


@dataclass(frozen=True)
class JournalDriver:
    """How the suite builds one journal drafter."""

    build: BuildProvider = build_default
    """Builds the provider (and starts whatever fake it talks to) for one test; the suite may build a
    second one in the same test, to compare their drafts."""


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


class JournalContract:
    """The journal drafting contract (see ``legetime.testing`` for how to run it against a provider)."""

    pytestmark = pytest.mark.legetime_contract

    def test_implements_the_protocol(self, legetime_provider: Any, legetime_spec: ProviderSpec) -> None:
        assert isinstance(legetime_provider, JournalProvider)
        assert legetime_provider.name == legetime_spec.name

    @pytest.mark.parametrize("context", [FULL, MINIMAL], ids=["full", "minimal"])
    @in_event_loop
    async def test_draft_has_sections_and_provenance(
        self, legetime_provider: Any, legetime_spec: ProviderSpec, context: JournalContext
    ) -> None:
        draft = await legetime_provider.draft(context)
        assert isinstance(draft, JournalDraft)
        assert draft.sections
        for title, body in draft.sections.items():
            assert isinstance(title, str) and title.strip()
            assert isinstance(body, str) and body.strip()
        assert draft.provenance.drafter == legetime_spec.name
        assert isinstance(draft.provenance.version, str) and draft.provenance.version
        assert draft.text.strip()

    @in_event_loop
    async def test_draft_is_deterministic(
        self,
        legetime_provider: Any,
        legetime_spec: ProviderSpec,
        legetime_driver: JournalDriver,
        tmp_path: Path,
    ) -> None:
        first = await legetime_provider.draft(FULL)
        assert await legetime_provider.draft(FULL) == first
        with legetime_driver.build(legetime_spec, tmp_path / "other") as other:
            assert await other.draft(FULL) == first

    @in_event_loop
    async def test_no_national_id_in_the_draft(self, legetime_provider: Any) -> None:
        for context in (FULL, MINIMAL):
            draft = await legetime_provider.draft(context)
            assert not NATIONAL_ID.search(draft.text)
            assert not any(NATIONAL_ID.search(str(value) or "") for value in vars(draft.provenance).values())
