"""Booking, moving and cancelling appointments, the booking requests staff follow up, the referral from a
written consultation, and the visit itself (arrival, completion, no-show).

**One slot, one appointment.** The scheduling provider books the slot (``SchedulingProvider.book``: of
concurrent bookings exactly one wins, the others get ``SLOT_TAKEN``), and a partial unique index on the
appointment's live slot holds the same here. A booking is made with a reference the provider keeps as its
idempotency key — the appointment's id, or her own idempotency key when she gave one — so a retry after a
lost answer books nothing twice. When the provider booked but this transaction then fails, the booking is
released again before the error goes back (``_booked``).

**Patients' rules.** A patient (or guardian) moves or cancels until ``appointment_change_hours`` before the
visit (operators set it); after that she calls the clinic. Staff may move and cancel any upcoming one.
Everything is in the access log, with the patient as the person.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import select

from legetime.core.appointments import (
    access,
    appointment_events,
    catalogue,
    retention,
    states,
    timed_texts,
    video_rooms,
)
from legetime.core.appointments.states import AppointmentEvent
from legetime.core.consultation.access import ProcessingRestricted, as_clinician, load_case, require_person
from legetime.core.consultation.cases import CASE_NUMBER_ALPHABET, child_of_guardian
from legetime.core.identity.ctx import Ctx
from legetime.core.identity.phone import normalize_phone
from legetime.core.platform import idempotency
from legetime.core.platform.db.appointment_models import (
    Appointment,
    AppointmentStatus,
    AppointmentType,
)
from legetime.core.platform.db.models import Case, CaseOutcome, Person
from legetime.core.platform.errors import ErrorCode, Forbidden, NotFound, ValidationError
from legetime.core.platform.events import EventType
from legetime.core.platform.providers.scheduling import Booking
from legetime.core.protection import audit, content

log = structlog.get_logger(__name__)

MAX_MESSAGE = 1000
PATIENT = "patient"
GUARDIAN = access.GUARDIAN
CLINICIAN = "clinician"
OPERATOR = "operator"


async def log_appointment(ctx: Ctx, appointment: Appointment, action: str, reason: str | None = None) -> None:
    await audit.log(
        ctx,
        person_id=appointment.patient_id,
        object_type="appointment",
        object_id=str(appointment.id),
        action=action,
        reason=reason,
    )


async def _new_number(ctx: Ctx) -> str:
    while True:
        number = "LT-T" + "".join(secrets.choice(CASE_NUMBER_ALPHABET) for _ in range(6))
        if await ctx.session.scalar(select(Appointment.id).where(Appointment.number == number)) is None:
            return number


def _transition(appointment: Appointment, event: AppointmentEvent) -> None:
    appointment.status = states.next_status(appointment.status, event)


# --- reading -------------------------------------------------------------------------------------------


async def read(ctx: Ctx, appointment_id: uuid.UUID) -> Appointment:
    """An appointment the actor may see; the read is logged."""
    appointment = await access.load(ctx, appointment_id, access.readable(ctx.actor, ctx.today))
    reason = "treatment" if ctx.actor.is_clinician else "administration" if ctx.actor.is_operator else None
    if await access.is_patient_side(ctx, appointment):
        reason = None
    await log_appointment(ctx, appointment, "read", reason)
    return appointment


async def _log_list(ctx: Ctx, appointments: list[Appointment], reason: str | None) -> None:
    await audit.record_many(
        ctx.session,
        [
            audit.Entry(
                ctx.actor.person_id,
                ctx.actor.role,
                appointment.patient_id,
                "appointment",
                str(appointment.id),
                "list",
                reason,
            )
            for appointment in appointments
        ],
    )


async def mine(ctx: Ctx) -> list[Appointment]:
    """Hers and her children's, latest first; each listed one is logged."""
    require_person(ctx.actor)
    found = list(
        (
            await ctx.session.scalars(
                select(Appointment)
                .where(access.as_patient(ctx.actor, ctx.today))
                .order_by(Appointment.starts_at.desc().nulls_first(), Appointment.created_at.desc())
                .limit(200)
            )
        ).all()
    )
    await _log_list(ctx, found, None)
    return found


@dataclass(frozen=True)
class StaffFilter:
    statuses: tuple[AppointmentStatus, ...] = ()
    clinic_id: uuid.UUID | None = None
    mine_only: bool = False


async def for_staff(ctx: Ctx, wanted: StaffFilter) -> list[Appointment]:
    """The reception's and the clinicians' list: operators all, clinicians theirs and the requests."""
    require_person(ctx.actor)
    if not (ctx.actor.is_operator or ctx.actor.is_clinician):
        raise Forbidden("Bare ansatte har tilgang.")
    query = select(Appointment).where(access.as_staff(ctx.actor))
    if wanted.statuses:
        query = query.where(Appointment.status.in_(wanted.statuses))
    if wanted.clinic_id is not None:
        query = query.where(Appointment.clinic_id == wanted.clinic_id)
    if wanted.mine_only:
        query = query.where(Appointment.clinician_id == ctx.actor.person_id)
    query = query.order_by(Appointment.starts_at.nulls_first(), Appointment.created_at).limit(500)
    found = list((await ctx.session.scalars(query)).all())
    await _log_list(ctx, found, "treatment" if ctx.actor.is_clinician else "administration")
    return found


# --- booking ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BookingInput:
    clinic_id: uuid.UUID
    type_code: str
    slot_id: str | None
    """None for a request (a type that cannot be booked directly, or no time suits her)."""
    message: str | None = None
    phone: str | None = None
    """Her mobile number for the texts, when she has none yet or wants another."""
    child_national_id: str | None = None
    child_given_name: str | None = None
    guardian_declared: bool = False
    insurer_pays: bool = False
    idempotency_key: str | None = None


def _message(value: str | None) -> str | None:
    text = (value or "").strip()
    if len(text) > MAX_MESSAGE:
        raise ValidationError(f"Meldingen kan ha høyst {MAX_MESSAGE} tegn.", field="message")
    return text or None


async def book(ctx: Ctx, wanted: BookingInput) -> Appointment:
    """She books a time (``slot_id``) or asks for one (no slot: a request staff follow up), for herself or
    her child. A type that cannot be booked directly always becomes a request."""
    booker_id = require_person(ctx.actor)
    key = idempotency.check_key(wanted.idempotency_key)
    requested = (
        idempotency.request_hash(
            ctx.platform,
            "book_appointment",
            str(wanted.clinic_id),
            wanted.type_code,
            wanted.slot_id or "",
            wanted.child_national_id or "",
        )
        if key is not None
        else None
    )

    async def find() -> Appointment | None:
        existing = await ctx.session.scalar(
            select(Appointment).where(
                Appointment.booked_by_id == booker_id, Appointment.idempotency_key == key
            )
        )
        if existing is not None and existing.request_hash != requested:
            raise idempotency.conflict("book_appointment", "en annen time")
        return existing

    async def create() -> Appointment:
        booker = await ctx.session.get(Person, booker_id)
        assert booker is not None
        if booker.restricted_at is not None:
            raise ProcessingRestricted(
                "Du har begrenset behandlingen av opplysningene dine. "
                "Opphev begrensningen for å bestille time.",
                field="restricted",
            )
        clinic = await catalogue.clinic(ctx, wanted.clinic_id)
        kind = await catalogue.appointment_type(ctx, wanted.type_code)
        message = _message(wanted.message)
        if wanted.phone is not None:
            # Without a country code, a number of her own country (the issuer of her national ID).
            booker.phone = normalize_phone(wanted.phone, default_region=booker.country)
        patient, role = booker, PATIENT
        if wanted.child_national_id is not None:
            patient = await child_of_guardian(
                ctx, booker, wanted.child_national_id, wanted.child_given_name, wanted.guardian_declared
            )
            role = GUARDIAN
        appointment = _new(ctx, kind, clinic.id, patient.id, booker.id, role)
        appointment.number = await _new_number(ctx)
        appointment.idempotency_key, appointment.request_hash = key, requested
        appointment.insurer_pays = wanted.insurer_pays
        content.give_appointment_key(ctx.platform.keyring, appointment)
        content.set_appointment_message(ctx.platform.keyring, appointment, message)
        if wanted.slot_id is None or not kind.directly_bookable:
            ctx.session.add(appointment)
            await ctx.session.flush()
            await log_appointment(ctx, appointment, "request")
            await appointment_events.emit(ctx, EventType.APPOINTMENT_REQUESTED, appointment)
            return appointment
        reference = f"{booker.id}:{key}" if key is not None else str(appointment.id)
        async with _booked(ctx, wanted.slot_id, reference, kind, clinic.id) as booking:
            _take(appointment, booking, catalogue.scheduling(ctx).name)
            appointment.status, appointment.booked_at = AppointmentStatus.BOOKED, ctx.now
            ctx.session.add(appointment)
            await ctx.session.flush()
            await timed_texts.plan(ctx, appointment, timed_texts.before_visit(ctx, appointment))
            await log_appointment(ctx, appointment, "book")
            await appointment_events.emit(ctx, EventType.APPOINTMENT_BOOKED, appointment)
        return appointment

    return await idempotency.once(ctx.session, "book_appointment", key, find, create)


def _new(
    ctx: Ctx,
    kind: AppointmentType,
    clinic_id: uuid.UUID,
    patient_id: uuid.UUID,
    booker_id: uuid.UUID,
    role: str,
) -> Appointment:
    return Appointment(
        id=uuid.uuid4(),
        patient_id=patient_id,
        booked_by_id=booker_id,
        booked_by_role=role,
        clinic_id=clinic_id,
        type_id=kind.id,
        mode=kind.mode,
        status=AppointmentStatus.REQUESTED,
        price_amount=kind.price_amount,
        price_currency=kind.price_currency,
        plan=1,
        requested_at=ctx.now,
        created_at=ctx.now,
    )


def _take(appointment: Appointment, booking: Booking, provider: str) -> None:
    appointment.provider = provider
    appointment.slot_id = booking.slot.provider_id
    appointment.booking_id = booking.provider_id
    appointment.clinician_id = booking.slot.clinician_id
    appointment.starts_at, appointment.ends_at = booking.slot.starts_at, booking.slot.ends_at


@asynccontextmanager
async def _booked(
    ctx: Ctx, slot_id: str, reference: str, kind: AppointmentType, clinic_id: uuid.UUID
) -> AsyncIterator[Booking]:
    """Book the slot with the provider for the block's work; if the work fails, give the slot back (the
    provider's booking is its own transaction, this one rolls back)."""
    provider = catalogue.scheduling(ctx)
    booking = await provider.book(slot_id, reference)
    try:
        slot = booking.slot
        if slot.clinic_id != clinic_id or slot.appointment_type != kind.code:
            raise ValidationError("Tiden er ikke for denne klinikken og timetypen.", field="slotId")
        if slot.starts_at <= ctx.now:
            raise ValidationError("Tiden har allerede begynt.", field="slotId")
        yield booking
        await ctx.session.flush()
    except BaseException:
        try:
            await provider.release(booking.provider_id)
        except Exception as exc:  # the error that matters is the first one; the slot stays taken
            log.warning("appointment.release_failed", booking=booking.provider_id, error=type(exc).__name__)
        raise


async def book_request(ctx: Ctx, appointment_id: uuid.UUID, slot_id: str) -> Appointment:
    """Give a request its time: staff for any request, the patient side for a referral or a request of a
    type she may book herself."""
    appointment = await access.load(
        ctx, appointment_id, access.readable(ctx.actor, ctx.today), for_update=True
    )
    kind = await ctx.session.get(AppointmentType, appointment.type_id)
    assert kind is not None
    patient_side = await access.is_patient_side(ctx, appointment)
    staff = ctx.actor.is_operator or ctx.actor.is_clinician
    if not staff and not (patient_side and (kind.directly_bookable or appointment.case_id is not None)):
        raise Forbidden("Klinikken finner en tid til deg og gir beskjed.", field="slotId")
    states.next_status(appointment.status, AppointmentEvent.BOOK)  # refuse before booking anything
    async with _booked(
        ctx, slot_id, f"{appointment.id}:{appointment.plan + 1}", kind, appointment.clinic_id
    ) as booking:
        _take(appointment, booking, catalogue.scheduling(ctx).name)
        _transition(appointment, AppointmentEvent.BOOK)
        appointment.booked_at = ctx.now
        await timed_texts.replan(ctx, appointment)
        await log_appointment(ctx, appointment, "book")
        await appointment_events.emit(ctx, EventType.APPOINTMENT_BOOKED, appointment)
    return appointment


async def refer(
    ctx: Ctx, case_id: uuid.UUID, clinic_id: uuid.UUID, type_code: str, slot_id: str | None
) -> Appointment:
    """The clinician who answered a case with "physical examination" refers the patient: a request she
    (or her guardian) books a time for, or a time the clinician books at once (``slot_id``)."""
    case: Case = await load_case(ctx, case_id, as_clinician(ctx.actor, write=True))
    if case.outcome is not CaseOutcome.PHYSICAL_EXAMINATION:
        raise ValidationError(
            "Henvis til time når saken er besvart med «fysisk undersøkelse».",
            field="caseId",
            code=ErrorCode.INVALID,
        )
    existing = await ctx.session.scalar(
        select(Appointment).where(Appointment.case_id == case.id, Appointment.cancelled_at.is_(None))
    )
    if existing is not None:
        return existing  # one referral per case: a second click gets the first
    clinic = await catalogue.clinic(ctx, clinic_id)
    kind = await catalogue.appointment_type(ctx, type_code)
    role = GUARDIAN if case.requester_id != case.subject_id else PATIENT
    appointment = _new(ctx, kind, clinic.id, case.subject_id, case.requester_id, role)
    appointment.number = await _new_number(ctx)
    appointment.case_id = case.id
    content.give_appointment_key(ctx.platform.keyring, appointment)
    if slot_id is None:
        ctx.session.add(appointment)
        await ctx.session.flush()
        await log_appointment(ctx, appointment, "refer", "treatment")
        await appointment_events.emit(ctx, EventType.APPOINTMENT_REQUESTED, appointment)
        return appointment
    async with _booked(ctx, slot_id, str(appointment.id), kind, clinic.id) as booking:
        _take(appointment, booking, catalogue.scheduling(ctx).name)
        appointment.status, appointment.booked_at = AppointmentStatus.BOOKED, ctx.now
        ctx.session.add(appointment)
        await ctx.session.flush()
        await timed_texts.plan(ctx, appointment, timed_texts.before_visit(ctx, appointment))
        await log_appointment(ctx, appointment, "refer", "treatment")
        await appointment_events.emit(ctx, EventType.APPOINTMENT_BOOKED, appointment)
    return appointment


# --- changing ---------------------------------------------------------------------------------------------


async def _changeable(ctx: Ctx, appointment_id: uuid.UUID) -> Appointment:
    """An upcoming appointment the actor may move or cancel: staff any, the patient side until the limit."""
    appointment = await access.load(
        ctx, appointment_id, access.readable(ctx.actor, ctx.today), for_update=True
    )
    if await access.is_patient_side(ctx, appointment):
        limit = timedelta(hours=ctx.platform.settings.appointment_change_hours)
        if appointment.starts_at is not None and appointment.starts_at - ctx.now < limit:
            hours = ctx.platform.settings.appointment_change_hours
            raise Forbidden(
                f"Timen kan ikke endres eller avbestilles senere enn {hours:g} timer før. Ring klinikken.",
                field="appointmentId",
            )
    elif not (ctx.actor.is_operator or ctx.actor.is_clinician):
        raise NotFound(access.NOT_FOUND_MESSAGE, field="appointmentId")
    return appointment


async def move(ctx: Ctx, appointment_id: uuid.UUID, slot_id: str) -> Appointment:
    """Another time for an upcoming appointment: the new slot is booked before the old one is given back,
    and its texts are planned again for the new time."""
    appointment = await _changeable(ctx, appointment_id)
    states.next_status(appointment.status, AppointmentEvent.MOVE)
    kind = await ctx.session.get(AppointmentType, appointment.type_id)
    assert kind is not None
    old_booking = appointment.booking_id
    async with _booked(
        ctx, slot_id, f"{appointment.id}:{appointment.plan + 1}", kind, appointment.clinic_id
    ) as booking:
        _take(appointment, booking, catalogue.scheduling(ctx).name)
        _transition(appointment, AppointmentEvent.MOVE)
        appointment.reminded_at = None
        await timed_texts.replan(ctx, appointment)
        await log_appointment(ctx, appointment, "move")
        await appointment_events.emit(ctx, EventType.APPOINTMENT_MOVED, appointment)
        if old_booking is not None:  # inside: if giving it back fails, the new one is given back instead
            await catalogue.scheduling(ctx).release(old_booking)
    return appointment


async def cancel(ctx: Ctx, appointment_id: uuid.UUID) -> Appointment:
    """Cancel before the visit (or withdraw a request): the slot is given back and no text follows."""
    appointment = await _changeable(ctx, appointment_id)
    _transition(appointment, AppointmentEvent.CANCEL)
    appointment.cancelled_at = ctx.now
    await timed_texts.replan(ctx, appointment)
    await log_appointment(ctx, appointment, "cancel")
    await appointment_events.emit(ctx, EventType.APPOINTMENT_CANCELLED, appointment)
    await retention.ended(ctx, appointment)
    await video_rooms.close_if_open(ctx, appointment)
    await ctx.session.flush()
    if appointment.booking_id is not None:
        await catalogue.scheduling(ctx).release(appointment.booking_id)
    return appointment


# --- the visit -------------------------------------------------------------------------------------------


async def _for_staff_change(ctx: Ctx, appointment_id: uuid.UUID) -> Appointment:
    require_person(ctx.actor)
    if not (ctx.actor.is_operator or ctx.actor.is_clinician):
        raise NotFound(access.NOT_FOUND_MESSAGE, field="appointmentId")
    return await access.load(ctx, appointment_id, access.as_staff(ctx.actor), for_update=True)


async def mark_arrived(ctx: Ctx, appointment: Appointment) -> Appointment:
    """She is here (by the link in her text, or at the reception)."""
    _transition(appointment, AppointmentEvent.ARRIVE)
    appointment.arrived_at = ctx.now
    await log_appointment(ctx, appointment, "arrive")
    await appointment_events.emit(ctx, EventType.APPOINTMENT_ARRIVED, appointment)
    return appointment


async def arrive(ctx: Ctx, appointment_id: uuid.UUID) -> Appointment:
    return await mark_arrived(ctx, await _for_staff_change(ctx, appointment_id))


async def complete(ctx: Ctx, appointment_id: uuid.UUID) -> Appointment:
    """The clinician ends the visit: the payment link, the invoice if unpaid, and the survey follow."""
    appointment = await _for_staff_change(ctx, appointment_id)
    if not ctx.actor.is_clinician or appointment.clinician_id != ctx.actor.person_id:
        raise Forbidden("Bare timens kliniker kan avslutte den.", field="appointmentId")
    _transition(appointment, AppointmentEvent.COMPLETE)
    appointment.completed_at = ctx.now
    await timed_texts.plan(ctx, appointment, timed_texts.after_visit(ctx, appointment))
    await log_appointment(ctx, appointment, "complete", "treatment")
    await appointment_events.emit(ctx, EventType.APPOINTMENT_COMPLETED, appointment)
    await video_rooms.close_if_open(ctx, appointment)
    if appointment.price_amount == 0:
        await settle(ctx, appointment)
    return appointment


async def no_show(ctx: Ctx, appointment_id: uuid.UUID) -> Appointment:
    appointment = await _for_staff_change(ctx, appointment_id)
    if appointment.starts_at is not None and appointment.starts_at > ctx.now:
        raise ValidationError("Timen har ikke begynt ennå.", field="appointmentId")
    _transition(appointment, AppointmentEvent.NO_SHOW)
    appointment.no_show_at = ctx.now
    await timed_texts.replan(ctx, appointment)
    await log_appointment(ctx, appointment, "no_show")
    await appointment_events.emit(ctx, EventType.APPOINTMENT_NO_SHOW, appointment)
    await retention.ended(ctx, appointment)
    await video_rooms.close_if_open(ctx, appointment)
    return appointment


async def settle(ctx: Ctx, appointment: Appointment) -> None:
    """Paid (or nothing to pay): the purpose is fulfilled, and the retention period starts."""
    _transition(appointment, AppointmentEvent.PAY)
    appointment.paid_at = ctx.now
    await appointment_events.emit(ctx, EventType.APPOINTMENT_PAID, appointment)
    await retention.ended(ctx, appointment)
