"""Appointments as clients see them: the patient books, moves and cancels; the clinician refers from a
case, completes the visit; staff follow up the requests and the reception. The rules live in
``legetime.core.appointments``; who sees what in ``legetime.core.appointments.access``."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol, TypeVar

import strawberry
from sqlalchemy import select
from strawberry import relay
from strawberry.scalars import JSON

from legetime.core.appointments import access, booking
from legetime.core.identity.ctx import Ctx
from legetime.core.identity.nationalid import age_on
from legetime.core.platform.db import appointment_models as am
from legetime.core.platform.db.models import Person
from legetime.core.protection import content
from legetime.schema.clinic_api import (
    AppointmentMode,
    AppointmentType,
    Clinic,
    Clinician,
    FormKind,
    clinicians,
    parse_uuid,
)
from legetime.schema.context import Info
from legetime.schema.errors import Error
from legetime.schema.mutation import global_uuid, mutate
from legetime.schema.platform_types import Money


class _Row(Protocol):
    id: Any


T = TypeVar("T", bound=_Row)

AppointmentStatus = strawberry.enum(am.AppointmentStatus, name="AppointmentStatus")


@strawberry.type(description="The patient of an appointment, as much as the reader needs.")
class AppointmentPatient:
    given_name: str
    family_name: str
    birth_date: date
    age: int


@strawberry.type(description="A form she submitted (after BankID).")
class SubmittedForm:
    kind: FormKind  # type: ignore[valid-type]
    submitted_at: datetime
    answers: JSON | None = strawberry.field(
        description="Her answers: for her side and the appointment's clinician; null for others."
    )


@strawberry.type(description="An appointment at a clinic or by video.")
class Appointment:
    id: strawberry.ID
    number: str
    status: AppointmentStatus  # type: ignore[valid-type]
    mode: AppointmentMode  # type: ignore[valid-type]
    clinic: Clinic
    appointment_type: AppointmentType
    starts_at: datetime | None
    ends_at: datetime | None
    clinician: Clinician | None
    patient: AppointmentPatient
    case_id: strawberry.ID | None = strawberry.field(description="The consultation that referred her.")
    price: Money
    insurer_pays: bool
    message: str | None = strawberry.field(
        description="Her message to the doctor: for her side and the clinician; null for operators."
    )
    forms_required: list[FormKind]  # type: ignore[valid-type]
    forms: list[SubmittedForm]
    requested_at: datetime | None
    booked_at: datetime | None
    arrived_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    paid_at: datetime | None
    invoiced_at: datetime | None
    deleted: bool = strawberry.field(
        description="Its message and forms were deleted when its purpose was fulfilled (a tombstone)."
    )


@dataclass
class _Parts:
    clinics: dict[uuid.UUID, am.Clinic]
    types: dict[uuid.UUID, am.AppointmentType]
    people: dict[uuid.UUID, Person]
    forms: dict[uuid.UUID, list[am.AppointmentForm]]
    clinicians: dict[uuid.UUID, Clinician]


async def _parts(ctx: Ctx, rows: list[am.Appointment]) -> _Parts:
    """What a list of appointments shows, in one query per table (never one per appointment)."""

    async def by_id(model: type[T], ids: set[uuid.UUID]) -> dict[uuid.UUID, T]:
        if not ids:
            return {}
        found = (await ctx.session.scalars(select(model).where(model.id.in_(ids)))).all()
        return {row.id: row for row in found}

    forms: dict[uuid.UUID, list[am.AppointmentForm]] = {}
    if rows:
        for form in (
            await ctx.session.scalars(
                select(am.AppointmentForm).where(am.AppointmentForm.appointment_id.in_([r.id for r in rows]))
            )
        ).all():
            forms.setdefault(form.appointment_id, []).append(form)
    return _Parts(
        clinics=await by_id(am.Clinic, {r.clinic_id for r in rows}),
        types=await by_id(am.AppointmentType, {r.type_id for r in rows}),
        people=await by_id(Person, {r.patient_id for r in rows}),
        forms=forms,
        clinicians=await clinicians(ctx, {r.clinician_id for r in rows if r.clinician_id is not None}),
    )


async def views(ctx: Ctx, rows: list[am.Appointment]) -> list[Appointment]:
    parts = await _parts(ctx, rows)
    result = []
    for row in rows:
        patient_side = await access.is_patient_side(ctx, row)
        result.append(_view(ctx, row, parts, access.may_read_content(ctx.actor, row, patient_side)))
    return result


def _view(ctx: Ctx, row: am.Appointment, parts: _Parts, content_allowed: bool) -> Appointment:
    ring = ctx.platform.keyring
    person = parts.people[row.patient_id]
    kind = parts.types[row.type_id]
    return Appointment(
        id=strawberry.ID(str(row.id)),
        number=row.number,
        status=row.status,
        mode=row.mode,
        clinic=Clinic.of(parts.clinics[row.clinic_id]),
        appointment_type=AppointmentType.of(kind),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        clinician=parts.clinicians.get(row.clinician_id) if row.clinician_id else None,
        patient=AppointmentPatient(
            given_name=person.given_name,
            family_name=person.family_name,
            birth_date=person.birth_date,
            age=age_on(person.birth_date, ctx.today),
        ),
        case_id=strawberry.ID(relay.to_base64("Case", row.case_id)) if row.case_id else None,
        price=Money(amount=row.price_amount, currency=row.price_currency),
        insurer_pays=row.insurer_pays,
        message=content.appointment_message(ring, row) if content_allowed else None,
        forms_required=[am.FormKind(f) for f in kind.forms],
        forms=[
            SubmittedForm(
                kind=form.kind,
                submitted_at=form.submitted_at,
                answers=content.form_answers(ring, row, form) if content_allowed else None,  # type: ignore[arg-type]
            )
            for form in parts.forms.get(row.id, [])
        ],
        requested_at=row.requested_at,
        booked_at=row.booked_at,
        arrived_at=row.arrived_at,
        completed_at=row.completed_at,
        cancelled_at=row.cancelled_at,
        paid_at=row.paid_at,
        invoiced_at=row.invoiced_at,
        deleted=content.appointment_deleted(row),
    )


@strawberry.input
class BookAppointmentInput:
    clinic_id: strawberry.ID
    appointment_type: str
    slot_id: strawberry.ID | None = strawberry.field(
        default=None, description="A free time (`freeSlots`); none makes a request the clinic follows up."
    )
    message: str | None = strawberry.field(default=None, description="A short message to the doctor.")
    phone: str | None = strawberry.field(
        default=None,
        description="Her mobile number for the reminders (without a country code: of her own country).",
    )
    child_national_id: str | None = strawberry.field(default=None, description="Book for her child.")
    child_given_name: str | None = None
    guardian_declared: bool = False
    insurer_pays: bool = strawberry.field(
        default=False, description="Health insurance pays: she is asked for her consent to disclosure."
    )
    idempotency_key: str | None = strawberry.field(
        default=None, description="A retry with the same key returns the same appointment."
    )


@strawberry.input
class BookAppointmentTimeInput:
    appointment_id: strawberry.ID
    slot_id: strawberry.ID


@strawberry.input
class MoveAppointmentInput:
    appointment_id: strawberry.ID
    slot_id: strawberry.ID


@strawberry.input
class CancelAppointmentInput:
    appointment_id: strawberry.ID


@strawberry.input
class MarkArrivedInput:
    appointment_id: strawberry.ID


@strawberry.input
class CompleteAppointmentInput:
    appointment_id: strawberry.ID


@strawberry.input
class MarkNoShowInput:
    appointment_id: strawberry.ID


@strawberry.input
class ReferToAppointmentInput:
    case_id: strawberry.ID
    clinic_id: strawberry.ID
    appointment_type: str
    slot_id: strawberry.ID | None = strawberry.field(
        default=None, description="Book this time at once; none lets the patient choose one."
    )


@strawberry.type
class AppointmentPayload:
    appointment: Appointment | None = None
    errors: list[Error]


async def _change(info: Info, work: Callable[[Ctx], Awaitable[am.Appointment]]) -> AppointmentPayload:
    result: list[Appointment] = []

    async def run(ctx: Ctx) -> am.Appointment:
        row = await work(ctx)
        await ctx.session.flush()
        result.extend(await views(ctx, [row]))
        return row

    row, errors = await mutate(info, run)
    return AppointmentPayload(appointment=result[0] if row is not None and result else None, errors=errors)


def _id(value: strawberry.ID) -> uuid.UUID:
    return parse_uuid(value, "appointmentId")


@strawberry.type
class AppointmentQuery:
    @strawberry.field(description="Her appointments and her children's, latest first.")
    async def my_appointments(self, info: Info) -> list[Appointment]:
        ctx = await info.context.read()
        return await views(ctx, await booking.mine(ctx))

    @strawberry.field(description="One appointment the reader may see (the read is logged).")
    async def appointment(self, info: Info, id: strawberry.ID) -> Appointment:
        ctx = await info.context.read()
        return (await views(ctx, [await booking.read(ctx, _id(id))]))[0]

    @strawberry.field(
        description="Staff: operators see all appointments (without their content), clinicians theirs and "
        "the booking requests."
    )
    async def staff_appointments(
        self,
        info: Info,
        statuses: list[AppointmentStatus] | None = None,  # type: ignore[valid-type]
        clinic_id: strawberry.ID | None = None,
        mine_only: bool = False,
    ) -> list[Appointment]:
        ctx = await info.context.read()
        wanted = booking.StaffFilter(
            statuses=tuple(am.AppointmentStatus(s) for s in statuses or ()),
            clinic_id=parse_uuid(clinic_id, "clinicId") if clinic_id is not None else None,
            mine_only=mine_only,
        )
        return await views(ctx, await booking.for_staff(ctx, wanted))


@strawberry.type
class AppointmentMutation:
    @strawberry.mutation(
        description="Book a free time for herself or her child, or (no slot, or a type that cannot be "
        "booked directly) ask for one."
    )
    async def book_appointment(self, info: Info, input: BookAppointmentInput) -> AppointmentPayload:
        wanted = booking.BookingInput(
            clinic_id=parse_uuid(input.clinic_id, "clinicId"),
            type_code=input.appointment_type,
            slot_id=str(input.slot_id) if input.slot_id is not None else None,
            message=input.message,
            phone=input.phone,
            child_national_id=input.child_national_id,
            child_given_name=input.child_given_name,
            guardian_declared=input.guardian_declared,
            insurer_pays=input.insurer_pays,
            idempotency_key=input.idempotency_key,
        )
        return await _change(info, lambda ctx: booking.book(ctx, wanted))

    @strawberry.mutation(
        description="Give a requested (or referred) appointment its time: staff, or the patient for a "
        "referral or a type she may book herself."
    )
    async def book_appointment_time(self, info: Info, input: BookAppointmentTimeInput) -> AppointmentPayload:
        return await _change(
            info, lambda ctx: booking.book_request(ctx, _id(input.appointment_id), str(input.slot_id))
        )

    @strawberry.mutation(
        description="Another time: the patient until `appointment_change_hours` before, staff any time. "
        "Its reminders are planned again."
    )
    async def move_appointment(self, info: Info, input: MoveAppointmentInput) -> AppointmentPayload:
        return await _change(
            info, lambda ctx: booking.move(ctx, _id(input.appointment_id), str(input.slot_id))
        )

    @strawberry.mutation(description="Cancel before the visit (or withdraw a request): no more texts.")
    async def cancel_appointment(self, info: Info, input: CancelAppointmentInput) -> AppointmentPayload:
        return await _change(info, lambda ctx: booking.cancel(ctx, _id(input.appointment_id)))

    @strawberry.mutation(
        description="Clinicians: refer the patient of a case answered with PHYSICAL_EXAMINATION to an "
        "appointment (a request she books, or a time at once)."
    )
    async def refer_to_appointment(self, info: Info, input: ReferToAppointmentInput) -> AppointmentPayload:
        case_id = global_uuid(str(input.case_id))
        clinic_id = parse_uuid(input.clinic_id, "clinicId")
        slot = str(input.slot_id) if input.slot_id is not None else None
        return await _change(
            info, lambda ctx: booking.refer(ctx, case_id, clinic_id, input.appointment_type, slot)
        )

    @strawberry.mutation(description="Staff: she has arrived (the reception, when she did not use the link).")
    async def mark_arrived(self, info: Info, input: MarkArrivedInput) -> AppointmentPayload:
        return await _change(info, lambda ctx: booking.arrive(ctx, _id(input.appointment_id)))

    @strawberry.mutation(description="The appointment's clinician: the visit is over (payment follows).")
    async def complete_appointment(self, info: Info, input: CompleteAppointmentInput) -> AppointmentPayload:
        return await _change(info, lambda ctx: booking.complete(ctx, _id(input.appointment_id)))

    @strawberry.mutation(description="Staff: she did not come.")
    async def mark_no_show(self, info: Info, input: MarkNoShowInput) -> AppointmentPayload:
        return await _change(info, lambda ctx: booking.no_show(ctx, _id(input.appointment_id)))
