"""Demo data for a newcomer's first click-through: staff and a family, all with synthetic national IDs
(month + 80), which only the simulated BankID accepts. Running it twice changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sqlalchemy import select

from legetime.core.identity import persons
from legetime.core.identity.nationalid import parse_national_id
from legetime.core.platform.db.models import StaffMembership, StaffRole
from legetime.core.platform.providers.identity import IdentityProvider, LoginRequest, VerifiedIdentity

if TYPE_CHECKING:
    from legetime.core.platform.runtime import Platform


@dataclass(frozen=True)
class DemoPerson:
    role: str
    given_name: str
    family_name: str
    national_id: str
    phone: str | None = None
    staff_role: StaffRole | None = None
    hpr_number: str | None = None

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}"


DEMO_PEOPLE = (
    DemoPerson("clinician", "Nora", "Haugen", "14897800048", "+4741000001", StaffRole.CLINICIAN, "9144889"),
    DemoPerson("operator", "Lars", "Berg", "02818500125", "+4741000002", StaffRole.OPERATOR),
    DemoPerson("patient (mother)", "Sofie", "Johansen", "17889200022", "+4741000003"),
    DemoPerson("child (born 2015)", "Ingrid", "Johansen", "05921550016"),
)


async def _as_identity_provider_names(demo: DemoPerson, identity: IdentityProvider) -> DemoPerson:
    """The name the identity provider gives this ID: logging in keeps names current from it, so the demo
    shows the names a newcomer will see after logging in."""
    started = await identity.start(LoginRequest(login_hint=demo.national_id))
    verified = await identity.complete(started.state, {})
    if isinstance(verified, VerifiedIdentity):
        return replace(demo, given_name=verified.given_name, family_name=verified.family_name)
    return demo


async def create_demo_data(
    platform: Platform, identity: IdentityProvider | None = None
) -> tuple[DemoPerson, ...]:
    people: tuple[DemoPerson, ...] = DEMO_PEOPLE
    if identity is not None:
        people = tuple([await _as_identity_provider_names(demo, identity) for demo in DEMO_PEOPLE])
    async with platform.db.transaction() as session:
        for demo in people:
            national_id = parse_national_id(demo.national_id)
            person = await persons.find_person(session, platform, national_id.value)
            if person is None:
                person = persons.new_person(
                    platform,
                    national_id.value,
                    given_name=demo.given_name,
                    family_name=demo.family_name,
                    birth_date=national_id.birth_date,
                )
                person.phone = demo.phone
                session.add(person)
                await session.flush()
            if demo.staff_role is not None:
                membership = await session.scalar(
                    select(StaffMembership).where(
                        StaffMembership.person_id == person.id, StaffMembership.role == demo.staff_role
                    )
                )
                if membership is None:
                    session.add(
                        StaffMembership(person_id=person.id, role=demo.staff_role, hpr_number=demo.hpr_number)
                    )
    return people
