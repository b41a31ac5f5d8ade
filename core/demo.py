"""Demo data for a newcomer's first click-through: staff and a family, all with synthetic national IDs
(month + 80), which only the simulated BankID accepts. Running it twice changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from core.db.engine import Database
from core.db.models import Person, StaffMembership, StaffRole
from core.nationalid import parse_national_id


@dataclass(frozen=True)
class DemoPerson:
    role: str
    given_name: str
    family_name: str
    national_id: str
    phone: str | None = None
    staff_role: StaffRole | None = None

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}"


DEMO_PEOPLE = (
    DemoPerson("clinician", "Ingrid", "Berg", "14897810000", "+4741000001", StaffRole.CLINICIAN),
    DemoPerson("operator", "Lars", "Dahl", "02818520150", "+4741000002", StaffRole.OPERATOR),
    DemoPerson("patient (mother)", "Nora", "Hansen", "17889230266", "+4741000003"),
    DemoPerson("child (born 2015)", "Emma", "Hansen", "05921550016"),
)


async def create_demo_data(db: Database) -> tuple[DemoPerson, ...]:
    async with db.transaction() as session:
        for demo in DEMO_PEOPLE:
            national_id = parse_national_id(demo.national_id)
            person = await session.scalar(select(Person).where(Person.national_id == national_id.value))
            if person is None:
                person = Person(
                    national_id=national_id.value,
                    given_name=demo.given_name,
                    family_name=demo.family_name,
                    birth_date=national_id.birth_date,
                    phone=demo.phone,
                )
                session.add(person)
                await session.flush()
            if demo.staff_role is not None:
                membership = await session.scalar(
                    select(StaffMembership).where(
                        StaffMembership.person_id == person.id, StaffMembership.role == demo.staff_role
                    )
                )
                if membership is None:
                    session.add(StaffMembership(person_id=person.id, role=demo.staff_role))
    return DEMO_PEOPLE
