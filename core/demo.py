"""Demo data for a newcomer's first click-through: staff and a family, all with synthetic national IDs
(month + 80), which only the simulated BankID accepts, and a clinic the family can book at (the demo
clinician receives there every weekday). Running it twice changes nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import time
from typing import TYPE_CHECKING

from sqlalchemy import select

from legetime.core.identity import persons
from legetime.core.identity.nationalid import parse_national_id
from legetime.core.platform.db.appointment_models import AppointmentMode, AppointmentType, Clinic, FormKind
from legetime.core.platform.db.models import StaffMembership, StaffRole
from legetime.core.platform.providers import SCHEDULING, VIDEO
from legetime.core.platform.providers.identity import IdentityProvider, LoginRequest, VerifiedIdentity
from legetime.core.platform.providers.scheduling import OpeningHours, Weekday

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

DEMO_CLINIC = ("Legetime Majorstuen", "Kirkeveien 64, 0364 Oslo")
DEMO_TYPES = (
    # code, name, mode, minutes, price (øre), forms, directly bookable
    (
        "undersokelse",
        "Undersøkelse hos lege",
        AppointmentMode.IN_PERSON,
        30,
        95000,
        (FormKind.HEALTH_DECLARATION,),
        True,
    ),
    (
        "dagkirurgi",
        "Dagkirurgi",
        AppointmentMode.IN_PERSON,
        60,
        450000,
        (FormKind.HEALTH_DECLARATION, FormKind.INSURER_CONSENT),
        False,
    ),
    ("video", "Videokonsultasjon", AppointmentMode.VIDEO, 20, 65000, (), True),
)
DEMO_HOURS = (time(8, 0), time(16, 0))


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
    clinician_id: uuid.UUID | None = None
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
                if demo.staff_role is StaffRole.CLINICIAN:
                    clinician_id = person.id
    if clinician_id is not None:
        await _demo_clinic(platform, clinician_id)
    return people


async def _demo_clinic(platform: Platform, clinician_id: uuid.UUID) -> None:
    """The demo clinic, its appointment types and the demo clinician's weekday hours there (kept by the
    scheduling provider when it lets Legetime keep them)."""
    video = bool(platform.providers.names(VIDEO.capability))
    async with platform.db.transaction() as session:
        clinic = await session.scalar(select(Clinic).where(Clinic.name == DEMO_CLINIC[0]))
        if clinic is not None:
            return
        clinic = Clinic(id=uuid.uuid4(), name=DEMO_CLINIC[0], address=DEMO_CLINIC[1], active=True)
        session.add(clinic)
        codes = []
        for code, name, mode, minutes, price, forms, direct in DEMO_TYPES:
            if mode is AppointmentMode.VIDEO and not video:
                continue
            codes.append(code)
            if await session.scalar(select(AppointmentType.id).where(AppointmentType.code == code)) is None:
                session.add(
                    AppointmentType(
                        id=uuid.uuid4(),
                        code=code,
                        name=name,
                        mode=mode,
                        minutes=minutes,
                        price_amount=price,
                        price_currency=platform.settings.currency,
                        forms=[form.value for form in forms],
                        directly_bookable=direct,
                        active=True,
                    )
                )
        clinic_id = clinic.id
    scheduling = platform.providers.get(SCHEDULING)
    if scheduling.management.opening_hours:
        opens, closes = DEMO_HOURS
        weekdays = (Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY, Weekday.THURSDAY, Weekday.FRIDAY)
        hours = [
            OpeningHours(clinic_id, clinician_id, day, opens, closes, 30, tuple(codes)) for day in weekdays
        ]
        await scheduling.set_opening_hours(clinic_id, hours)
