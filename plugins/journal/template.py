"""Deterministic template journal drafter.

The default drafter needs no model and no network: it lays out what the patient answered and wrote in
the sections a Norwegian journal note has, so the clinician edits a structured draft instead of a blank
page. It uses only what is in ``JournalContext`` (which holds no national ID and no name) and never the
clock, so the same consultation always gives the same draft.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from legetime.sdk import (
    Capability,
    JournalContext,
    JournalDraft,
    JournalMessage,
    Provenance,
    ProviderCheck,
    ProviderContext,
    ProviderSettings,
    ProviderSpec,
    hookimpl,
)

__version__ = "1"

NAME = "template"
PROMPT_VERSION = "template-v1"

ROLES = {"patient": "Pasient", "guardian": "Foresatt", "clinician": "Lege"}
OUTCOMES = {
    "advice": "Råd gitt",
    "physical_examination": "Henvist til fysisk undersøkelse",
    "prescription": "Resept forskrevet",
}
NO_OUTCOME = "Ikke konkludert"
SEXES = {"female": "kvinne", "male": "mann", "f": "kvinne", "k": "kvinne", "m": "mann"}


class TemplateJournalSettings(ProviderSettings):
    """Settings of the template drafter (``LEGETIME_JOURNAL_TEMPLATE_*``)."""

    model_config = SettingsConfigDict(env_prefix="LEGETIME_JOURNAL_TEMPLATE_")

    include_dialog: bool = Field(
        default=True, description="Copy the follow-up messages into a 'Dialog' section of the draft."
    )


def _one_line(text: str) -> str:
    """Collapse whitespace so a multi-line answer stays one list item."""
    return " ".join(text.split())


def _henvendelse(context: JournalContext) -> str:
    lines = [f"Saksnummer: {context.case_number}", f"Alder: {context.patient_age_years} år"]
    if context.patient_sex:
        lines.append(f"Kjønn: {SEXES.get(context.patient_sex.lower(), context.patient_sex)}")
    when = context.consultation_date
    lines.append(f"Dato: {when.strftime('%d.%m.%Y') if when else 'ikke oppgitt'}")
    return "\n".join(lines)


def _anamnese(questionnaire: list[tuple[str, str]]) -> str:
    if not questionnaire:
        return "Ingen opplysninger fra spørreskjema."
    return "\n".join(
        f"- {_one_line(question).rstrip(':')}: {_one_line(answer) or '(ikke besvart)'}"
        for question, answer in questionnaire
    )


def _dialog(messages: list[JournalMessage]) -> str:
    if not messages:
        return "Ingen oppfølgingsmeldinger."
    return "\n".join(
        f"{ROLES.get(message.author_role, 'Ukjent')}: {_one_line(message.body)}" for message in messages
    )


def _vurdering(outcome: str | None) -> str:
    if outcome is None:
        return NO_OUTCOME
    return OUTCOMES.get(outcome, outcome)


class TemplateJournalDrafter:
    """A ``JournalProvider`` that fills a fixed Norwegian template."""

    name = NAME

    def __init__(self, *, include_dialog: bool) -> None:
        self.include_dialog = include_dialog

    async def draft(self, context: JournalContext) -> JournalDraft:
        sections = {
            "Henvendelse": _henvendelse(context),
            "Anamnese": _anamnese(context.questionnaire),
        }
        if self.include_dialog:
            sections["Dialog"] = _dialog(context.messages)
        sections["Vurdering og tiltak"] = _vurdering(context.outcome)
        return JournalDraft(
            sections=sections,
            provenance=Provenance(
                drafter=NAME, version=__version__, model=None, prompt_version=PROMPT_VERSION
            ),
        )

    async def check(self) -> ProviderCheck:
        """Nothing to reach: the template is in the plugin."""
        return ProviderCheck(True, "The template drafter needs no model and nothing outside the platform.")


def _factory(settings: TemplateJournalSettings, context: ProviderContext) -> TemplateJournalDrafter:
    return TemplateJournalDrafter(include_dialog=settings.include_dialog)


@hookimpl
def register_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.JOURNAL,
            name=NAME,
            factory=_factory,
            settings_model=TemplateJournalSettings,
            description="Deterministic Norwegian template; no model, no network.",
        )
    ]


@hookimpl
def plugin_info() -> dict[str, str]:
    return {"description": "Template journal drafter: a structured Norwegian draft without AI."}
