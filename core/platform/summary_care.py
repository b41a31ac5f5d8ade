"""What the ``fetch_summary_care_record`` hook answers: the patient's summary care record.

Modelled on Norway's Kjernejournal (Norsk helsenett) and kept to the three parts a clinician of a remote
consultation needs: critical information (kritisk informasjon, registered by a physician), the medicines
dispensed or prescribed (legemidler, from the e-prescription exchange, Reseptformidleren) and the visits
to the specialist health service (besøkshistorikk, from the Norwegian Patient Registry). Other countries'
records (Sweden's Nationell patientöversikt) fit the same shape.

A record is shown to the clinician who holds the case and never stored: no table holds one, and it is
never logged (the access log says that it was read, not what it said).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class CriticalInformationKind(StrEnum):
    """The categories of Kjernejournal's critical information."""

    HYPERSENSITIVITY = "hypersensitivity"
    """Overfølsomhetsreaksjoner: a reaction to a medicine, another allergy."""
    ANAESTHESIA_COMPLICATION = "anaesthesia_complication"
    """Komplikasjoner ved anestesi."""
    CRITICAL_CONDITION = "critical_condition"
    """Kritiske medisinske tilstander (rare, serious conditions: haemophilia, adrenal insufficiency …)."""
    TREATMENT_OR_IMPLANT = "treatment_or_implant"
    """Pågående behandlinger og implantater (dialysis, chemotherapy; a pacemaker, a shunt)."""
    CHANGED_ROUTINE = "changed_routine"
    """Endringer i behandlingsrutiner (limits to life-prolonging treatment, another changed procedure)."""
    INFECTION = "infection"
    """Smitte."""


@dataclass(frozen=True)
class CriticalInformation:
    kind: CriticalInformationKind
    description: str
    """What it is, as registered (``"Penicillin: anafylaktisk reaksjon"``)."""
    registered_on: date | None = None


@dataclass(frozen=True)
class Medication:
    name: str
    """The product, strength and form (``"Ventoline 0,1 mg/dose inhalasjonsaerosol"``)."""
    dosage: str | None = None
    """The dosage as prescribed (``"1–2 doser ved behov"``)."""
    dispensed_on: date | None = None
    """When a pharmacy last dispensed it; None: prescribed, not collected."""


@dataclass(frozen=True)
class SpecialistVisit:
    """A contact with the specialist health service: when and where, nothing of why."""

    place: str
    on: date


@dataclass(frozen=True)
class SummaryCareRecord:
    critical_information: tuple[CriticalInformation, ...] = ()
    medications: tuple[Medication, ...] = ()
    specialist_visits: tuple[SpecialistVisit, ...] = ()
    simulated: bool = False
    """Synthetic data from a simulation, shown as such; production never shows a simulated record."""
