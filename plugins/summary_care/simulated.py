"""A simulated summary care record (Kjernejournal) for the demo family; nothing for anyone else.

Why it exists: development, demos and tests need a record to show without a connection to Norsk
helsenett (HelseID, an approved integration). Its records are synthetic and marked ``simulated``, so a
frontend labels them, and production never shows them (the platform drops a simulated record there). It
answers only for the demo patients' synthetic national IDs (Test-Norge, month + 80: nobody's real ID),
and it is asked last (``trylast``), so a real plugin's record replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from legetime.sdk import (
    CriticalInformation,
    CriticalInformationKind,
    Medication,
    SpecialistVisit,
    SummaryCareRecord,
    hookimpl,
)

# The demo patients of ``legetime demo`` (core/demo.py): the mother and her child.
MOTHER = "17889200022"
CHILD = "05921550016"

RECORDS: Mapping[str, SummaryCareRecord] = {
    MOTHER: SummaryCareRecord(
        critical_information=(
            CriticalInformation(
                CriticalInformationKind.HYPERSENSITIVITY,
                "Penicillin: anafylaktisk reaksjon",
                registered_on=date(2019, 3, 14),
            ),
        ),
        medications=(
            Medication("Levaxin 50 mikrog tablett", "1 tablett om morgenen", dispensed_on=date(2026, 1, 8)),
            Medication("Ventoline 0,1 mg/dose inhalasjonsaerosol", "1–2 doser ved behov"),
        ),
        specialist_visits=(SpecialistVisit("Oslo universitetssykehus, Ullevål", date(2024, 10, 2)),),
        simulated=True,
    ),
    CHILD: SummaryCareRecord(
        critical_information=(
            CriticalInformation(
                CriticalInformationKind.HYPERSENSITIVITY,
                "Peanøtter: alvorlig allergisk reaksjon",
                registered_on=date(2021, 5, 20),
            ),
        ),
        medications=(
            Medication("EpiPen Junior 150 mikrog injeksjonsvæske", "Ved alvorlig allergisk reaksjon"),
        ),
        simulated=True,
    ),
}


@hookimpl(trylast=True)
def fetch_summary_care_record(national_id: str) -> SummaryCareRecord | None:
    return RECORDS.get(national_id)


@hookimpl
def plugin_info() -> Mapping[str, str]:
    return {
        "description": "Simulated summary care record (Kjernejournal) for the demo family: synthetic, "
        "never shown in production."
    }
