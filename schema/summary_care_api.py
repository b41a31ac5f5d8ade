"""The patient's summary care record (Kjernejournal), for the clinician who holds her case. The rules live
in ``legetime.core.consultation.summary_care``; docs/privacy.md says who sees it and that it is not kept."""

from __future__ import annotations

from datetime import date

import strawberry

from legetime.core.consultation import summary_care
from legetime.core.platform import summary_care as record_types
from legetime.schema.context import Info
from legetime.schema.mutation import global_uuid

CriticalInformationKind = strawberry.enum(
    record_types.CriticalInformationKind,
    name="CriticalInformationKind",
    description="Kjernejournal's categories of critical information.",
)


@strawberry.type(description="Critical information a physician registered (kritisk informasjon).")
class CriticalInformation:
    kind: CriticalInformationKind  # type: ignore[valid-type]
    description: str
    registered_on: date | None


@strawberry.type(description="A medicine dispensed or prescribed (from the e-prescription exchange).")
class Medication:
    name: str
    dosage: str | None
    dispensed_on: date | None = strawberry.field(description="Null: prescribed, not collected.")


@strawberry.type(description="A contact with the specialist health service: when and where.")
class SpecialistVisit:
    place: str
    on: date


@strawberry.type(
    description="The patient's summary care record, fetched for this request and not kept. `simulated`: "
    "synthetic data from a simulation (never in production), to be labelled as such."
)
class SummaryCareRecord:
    critical_information: list[CriticalInformation]
    medications: list[Medication]
    specialist_visits: list[SpecialistVisit]
    simulated: bool

    @classmethod
    def of(cls, record: record_types.SummaryCareRecord) -> SummaryCareRecord:
        return cls(
            critical_information=[
                CriticalInformation(kind=i.kind, description=i.description, registered_on=i.registered_on)
                for i in record.critical_information
            ],
            medications=[
                Medication(name=m.name, dosage=m.dosage, dispensed_on=m.dispensed_on)
                for m in record.medications
            ],
            specialist_visits=[SpecialistVisit(place=v.place, on=v.on) for v in record.specialist_visits],
            simulated=record.simulated,
        )


@strawberry.type
class SummaryCareQuery:
    @strawberry.field(
        description="The clinician who holds an open case: the patient's summary care record "
        "(Kjernejournal), if she consents to the look-up (else CONSENT_REQUIRED). Null: no record found. "
        "Anyone else: NOT_FOUND. Every look-up is in the patient's access log."
    )
    async def summary_care_record(self, info: Info, case_id: strawberry.ID) -> SummaryCareRecord | None:
        ctx = await info.context.read()
        record = await summary_care.look_up(ctx, global_uuid(case_id))
        return SummaryCareRecord.of(record) if record is not None else None
