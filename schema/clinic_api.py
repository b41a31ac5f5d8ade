"""What can be booked, and when: clinics, appointment types, opening hours and free times. Anyone may read
them (a booking page shows them before login); operators change them. The rules live in
``legetime.core.appointments.catalogue``."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta

import strawberry
from sqlalchemy import select

from legetime.core.appointments import catalogue
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db import appointment_models as am
from legetime.core.platform.db.models import Person
from legetime.core.platform.errors import NotFound, ValidationError
from legetime.core.platform.providers import scheduling as sp
from legetime.schema.context import Info
from legetime.schema.errors import Error
from legetime.schema.mutation import mutate
from legetime.schema.platform_types import Money

AppointmentMode = strawberry.enum(am.AppointmentMode, name="AppointmentMode")
FormKind = strawberry.enum(
    am.FormKind, name="FormKind", description="A form the patient fills in before the visit, after BankID."
)
Weekday = strawberry.enum(sp.Weekday, name="Weekday")
DEFAULT_WINDOW = timedelta(days=14)


def parse_uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound("Fant ikke objektet.", field=field) from None


@strawberry.type(description="A clinic where appointments take place.")
class Clinic:
    id: strawberry.ID
    name: str
    address: str
    active: bool

    @classmethod
    def of(cls, clinic: am.Clinic) -> Clinic:
        return cls(
            id=strawberry.ID(str(clinic.id)), name=clinic.name, address=clinic.address, active=clinic.active
        )


@strawberry.type(description="What can be booked: its name, length, price and forms.")
class AppointmentType:
    code: str
    name: str
    mode: AppointmentMode  # type: ignore[valid-type]
    minutes: int
    price: Money
    forms: list[FormKind]  # type: ignore[valid-type]
    directly_bookable: bool = strawberry.field(
        description="False: a booking becomes a request that the clinic follows up with a time."
    )
    active: bool

    @classmethod
    def of(cls, kind: am.AppointmentType) -> AppointmentType:
        return cls(
            code=kind.code,
            name=kind.name,
            mode=kind.mode,
            minutes=kind.minutes,
            price=Money(amount=kind.price_amount, currency=kind.price_currency),
            forms=[am.FormKind(form) for form in kind.forms],
            directly_bookable=kind.directly_bookable,
            active=kind.active,
        )


@strawberry.type(description="A clinician who receives patients (her name as on her BankID).")
class Clinician:
    id: strawberry.ID
    name: str


@strawberry.type(description="A free time that can be booked.")
class Slot:
    id: strawberry.ID = strawberry.field(description="What `bookAppointment` and `moveAppointment` take.")
    clinic_id: strawberry.ID
    appointment_type: str
    starts_at: datetime
    ends_at: datetime
    clinician: Clinician | None


@strawberry.type(description="One weekly period a clinician receives, in Norwegian local time.")
class OpeningPeriod:
    clinician_id: strawberry.ID
    weekday: Weekday  # type: ignore[valid-type]
    opens: time
    closes: time
    slot_minutes: int
    appointment_types: list[str]

    @classmethod
    def of(cls, hours: sp.OpeningHours) -> OpeningPeriod:
        return cls(
            clinician_id=strawberry.ID(str(hours.clinician_id)),
            weekday=hours.weekday,
            opens=hours.opens,
            closes=hours.closes,
            slot_minutes=hours.slot_minutes,
            appointment_types=list(hours.appointment_types),
        )


async def clinicians(ctx: Ctx, ids: set[uuid.UUID]) -> dict[uuid.UUID, Clinician]:
    if not ids:
        return {}
    people = (await ctx.session.scalars(select(Person).where(Person.id.in_(ids)))).all()
    return {
        p.id: Clinician(id=strawberry.ID(str(p.id)), name=f"{p.given_name} {p.family_name}".strip())
        for p in people
    }


@strawberry.input
class SaveClinicInput:
    clinic_id: strawberry.ID | None = strawberry.field(default=None, description="None adds a clinic.")
    name: str
    address: str
    active: bool = True


@strawberry.input
class SaveAppointmentTypeInput:
    code: str = strawberry.field(description="Adds the type, or changes the one with this code.")
    name: str
    mode: AppointmentMode  # type: ignore[valid-type]
    minutes: int
    price_amount: int = strawberry.field(description="In minor units (øre).")
    forms: list[FormKind] = strawberry.field(default_factory=list)  # type: ignore[valid-type]
    directly_bookable: bool = True
    active: bool = True


@strawberry.input
class OpeningPeriodInput:
    clinician_id: strawberry.ID
    weekday: Weekday  # type: ignore[valid-type]
    opens: time
    closes: time
    slot_minutes: int
    appointment_types: list[str]


@strawberry.input
class SetOpeningHoursInput:
    clinic_id: strawberry.ID
    hours: list[OpeningPeriodInput] = strawberry.field(description="Replaces all of the clinic's hours.")


@strawberry.type
class ClinicPayload:
    clinic: Clinic | None = None
    errors: list[Error]


@strawberry.type
class AppointmentTypePayload:
    appointment_type: AppointmentType | None = None
    errors: list[Error]


@strawberry.type
class OpeningHoursPayload:
    hours: list[OpeningPeriod] | None = None
    errors: list[Error]


@strawberry.type
class ClinicQuery:
    @strawberry.field(description="The clinics (operators may ask for inactive ones too).")
    async def clinics(self, info: Info, include_inactive: bool = False) -> list[Clinic]:
        ctx = await info.context.read()
        inactive = include_inactive and ctx.actor.is_operator
        return [Clinic.of(c) for c in await catalogue.clinics(ctx, include_inactive=inactive)]

    @strawberry.field(description="What can be booked.")
    async def appointment_types(self, info: Info, include_inactive: bool = False) -> list[AppointmentType]:
        ctx = await info.context.read()
        inactive = include_inactive and ctx.actor.is_operator
        return [
            AppointmentType.of(t) for t in await catalogue.appointment_types(ctx, include_inactive=inactive)
        ]

    @strawberry.field(description="A clinic's weekly hours, as the scheduling provider keeps them.")
    async def opening_hours(self, info: Info, clinic_id: strawberry.ID) -> list[OpeningPeriod]:
        ctx = await info.context.read()
        hours = await catalogue.opening_hours(ctx, parse_uuid(clinic_id, "clinicId"))
        return [OpeningPeriod.of(h) for h in hours]

    @strawberry.field(
        description="Free times of a type at a clinic, earliest first: from `notBefore` (default now) to "
        "`notAfter` (default two weeks later; at most two months ahead)."
    )
    async def free_slots(
        self,
        info: Info,
        clinic_id: strawberry.ID,
        appointment_type: str,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        clinician_id: strawberry.ID | None = None,
        first: int = 50,
    ) -> list[Slot]:
        ctx = await info.context.read()
        for name, value in (("notBefore", not_before), ("notAfter", not_after)):
            if value is not None and value.tzinfo is None:
                raise ValidationError("Oppgi tidspunktet med tidssone (ISO 8601).", field=name)
        not_before = not_before or ctx.now
        not_after = not_after or not_before + DEFAULT_WINDOW
        slots = await catalogue.free_slots(
            ctx,
            parse_uuid(clinic_id, "clinicId"),
            appointment_type,
            not_before,
            not_after,
            parse_uuid(clinician_id, "clinicianId") if clinician_id is not None else None,
            first,
        )
        names = await clinicians(ctx, {s.clinician_id for s in slots})
        return [
            Slot(
                id=strawberry.ID(s.provider_id),
                clinic_id=strawberry.ID(str(s.clinic_id)),
                appointment_type=s.appointment_type,
                starts_at=s.starts_at,
                ends_at=s.ends_at,
                clinician=names.get(s.clinician_id),
            )
            for s in slots
        ]


@strawberry.type
class ClinicMutation:
    @strawberry.mutation(description="Operators: add a clinic, or change one.")
    async def save_clinic(self, info: Info, input: SaveClinicInput) -> ClinicPayload:
        clinic_id = parse_uuid(input.clinic_id, "clinicId") if input.clinic_id is not None else None
        change = catalogue.ClinicChange(input.name, input.address, input.active)
        clinic, errors = await mutate(info, lambda ctx: catalogue.save_clinic(ctx, clinic_id, change))
        return ClinicPayload(clinic=Clinic.of(clinic) if clinic else None, errors=errors)

    @strawberry.mutation(description="Operators: add an appointment type, or change the one with its code.")
    async def save_appointment_type(
        self, info: Info, input: SaveAppointmentTypeInput
    ) -> AppointmentTypePayload:
        change = catalogue.TypeChange(
            code=input.code,
            name=input.name,
            mode=input.mode,
            minutes=input.minutes,
            price_amount=input.price_amount,
            forms=tuple(input.forms),
            directly_bookable=input.directly_bookable,
            active=input.active,
        )
        kind, errors = await mutate(info, lambda ctx: catalogue.save_appointment_type(ctx, change))
        return AppointmentTypePayload(
            appointment_type=AppointmentType.of(kind) if kind else None, errors=errors
        )

    @strawberry.mutation(
        description="Operators: replace a clinic's weekly opening hours (the built-in scheduling provider; "
        "a clinic system keeps its own: NOT_SUPPORTED)."
    )
    async def set_opening_hours(self, info: Info, input: SetOpeningHoursInput) -> OpeningHoursPayload:
        async def work(ctx: Ctx) -> list[sp.OpeningHours]:
            clinic_id = parse_uuid(input.clinic_id, "clinicId")
            hours = [
                sp.OpeningHours(
                    clinic_id=clinic_id,
                    clinician_id=parse_uuid(period.clinician_id, f"hours.{index}.clinicianId"),
                    weekday=sp.Weekday(period.weekday),
                    opens=period.opens,
                    closes=period.closes,
                    slot_minutes=period.slot_minutes,
                    appointment_types=tuple(period.appointment_types),
                )
                for index, period in enumerate(input.hours)
            ]
            return await catalogue.set_opening_hours(ctx, clinic_id, hours)

        hours, errors = await mutate(info, work)
        return OpeningHoursPayload(
            hours=[OpeningPeriod.of(h) for h in hours] if hours is not None else None, errors=errors
        )
