"""Journal drafting: turn a consultation into a draft journal note the clinician reviews and approves."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class JournalMessage:
    author_role: str  # patient | guardian | clinician
    body: str


@dataclass(frozen=True)
class JournalContext:
    """What the drafter may see. Minimal by design: no national ID, and names only in ``known_names``."""

    case_number: str
    patient_age_years: int
    patient_sex: str | None
    questionnaire: list[tuple[str, str]]
    """(question text, answer text) in the order asked."""
    messages: list[JournalMessage] = field(default_factory=list)
    outcome: str | None = None
    consultation_date: date | None = None
    known_names: tuple[str, ...] = ()
    """The names the platform knows of the people on the case (the patient's, the requester's), for masking
    only: never note content. A drafter that sends text off the platform masks them wherever they occur
    in it (a patient may name herself or her child in an answer)."""


@dataclass(frozen=True)
class Provenance:
    drafter: str
    version: str
    model: str | None = None
    prompt_version: str | None = None


@dataclass(frozen=True)
class JournalDraft:
    sections: dict[str, str]
    """Ordered sections, e.g. Anamnese, Vurdering, Tiltak."""
    provenance: Provenance

    @property
    def text(self) -> str:
        return "\n\n".join(f"{title}:\n{body}" for title, body in self.sections.items())


@runtime_checkable
class JournalProvider(Protocol):
    name: str

    async def draft(self, context: JournalContext) -> JournalDraft: ...
