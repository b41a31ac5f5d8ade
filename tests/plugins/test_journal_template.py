"""The template drafter's exact output: sections, Norwegian wording, and nothing added."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from legetime.core.platform.config import Settings
from legetime.core.platform.db.plugin_tables import PluginDatabase
from legetime.core.platform.providers import Capability, ProviderContext
from legetime.core.platform.providers.journal import JournalContext, JournalMessage, Provenance
from legetime.plugins.journal import template
from legetime.plugins.journal.template import TemplateJournalDrafter, TemplateJournalSettings
from tests.support import offered_specs

CONTEXT = JournalContext(
    case_number="LT-2025-000123",
    patient_age_years=9,
    patient_sex="male",
    questionnaire=[
        ("Hva gjelder henvendelsen?", "Utslett på armene"),
        ("Beskriv plagene:", "Klør mest\nom kvelden"),
        ("Har barnet feber?", ""),
    ],
    messages=[
        JournalMessage(author_role="guardian", body="Han har også vondt i halsen."),
        JournalMessage(author_role="clinician", body="Kan du sende et bilde av utslettet?"),
        JournalMessage(author_role="patient", body="Ja."),
    ],
    outcome="advice",
    consultation_date=date(2025, 3, 5),
)


def drafter(**settings: object) -> TemplateJournalDrafter:
    settings_ = Settings(data_dir=Path("unused"))
    database = PluginDatabase(settings_.resolved_database_url)  # not used: the drafter keeps no table
    context = ProviderContext(settings=settings_, derive_key=lambda p: b"", database=database)
    return template._factory(TemplateJournalSettings(**settings), context)  # type: ignore[arg-type]


def test_registered() -> None:
    (spec,) = [s for s in offered_specs(Capability.JOURNAL) if s.name == "template"]
    assert spec.settings_model is TemplateJournalSettings
    assert not spec.test_only
    assert template.plugin_info()["description"]


async def test_exact_draft() -> None:
    draft = await drafter().draft(CONTEXT)
    assert list(draft.sections) == ["Henvendelse", "Anamnese", "Dialog", "Vurdering og tiltak"]
    assert draft.sections == {
        "Henvendelse": "Saksnummer: LT-2025-000123\nAlder: 9 år\nKjønn: mann\nDato: 05.03.2025",
        "Anamnese": (
            "- Hva gjelder henvendelsen?: Utslett på armene\n"
            "- Beskriv plagene: Klør mest om kvelden\n"
            "- Har barnet feber?: (ikke besvart)"
        ),
        "Dialog": (
            "Foresatt: Han har også vondt i halsen.\nLege: Kan du sende et bilde av utslettet?\nPasient: Ja."
        ),
        "Vurdering og tiltak": "Råd gitt",
    }
    assert draft.provenance == Provenance(
        drafter="template", version="1", model=None, prompt_version="template-v1"
    )
    assert template.__version__ == "1"


@pytest.mark.parametrize(
    ("outcome", "text"),
    [
        ("advice", "Råd gitt"),
        ("physical_examination", "Henvist til fysisk undersøkelse"),
        ("prescription", "Resept forskrevet"),
        (None, "Ikke konkludert"),
    ],
)
async def test_outcomes_in_norwegian(outcome: str | None, text: str) -> None:
    context = JournalContext(
        case_number="LT-1", patient_age_years=40, patient_sex=None, questionnaire=[], outcome=outcome
    )
    assert (await drafter().draft(context)).sections["Vurdering og tiltak"] == text


async def test_empty_context_gives_placeholders() -> None:
    context = JournalContext(case_number="LT-1", patient_age_years=40, patient_sex=None, questionnaire=[])
    sections = (await drafter().draft(context)).sections
    assert sections["Henvendelse"] == "Saksnummer: LT-1\nAlder: 40 år\nDato: ikke oppgitt"
    assert sections["Anamnese"] == "Ingen opplysninger fra spørreskjema."
    assert sections["Dialog"] == "Ingen oppfølgingsmeldinger."


async def test_same_input_same_output() -> None:
    assert await drafter().draft(CONTEXT) == await drafter().draft(CONTEXT)
    assert (await drafter().draft(CONTEXT)).text == (await drafter().draft(CONTEXT)).text


async def test_no_digits_are_added() -> None:
    # Every run of digits in the draft comes from the context (case number, age, date): nothing
    # phone-like, no ID, no clock.
    draft = await drafter().draft(CONTEXT)
    allowed = {"2025", "000123", "9", "05", "03"}
    assert set(re.findall(r"\d+", draft.text)) <= allowed
    assert not re.search(r"\+?\d[\d ]{7,}\d", draft.text)


async def test_include_dialog_setting_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGETIME_JOURNAL_TEMPLATE_INCLUDE_DIALOG", "false")
    settings = TemplateJournalSettings()
    assert settings.include_dialog is False
    draft = await drafter(include_dialog=settings.include_dialog).draft(CONTEXT)
    assert list(draft.sections) == ["Henvendelse", "Anamnese", "Vurdering og tiltak"]
