"""What can be booked, and when: clinics, appointment types (operators keep them), the clinics' opening
hours (kept by the scheduling provider: the built-in one through here, a clinic's own system there) and
the free slots. None of it is personal data: anyone may read the catalogue and the free times."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from legetime.core.identity.actors import require_operator
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.appointment_models import AppointmentMode, AppointmentType, Clinic, FormKind
from legetime.core.platform.db.models import StaffMembership, StaffRole
from legetime.core.platform.errors import ErrorCode, NotFound, NotSupported, ValidationError
from legetime.core.platform.providers import SCHEDULING, VIDEO
from legetime.core.platform.providers.scheduling import OpeningHours, SchedulingProvider, Slot, SlotQuery
from legetime.core.protection import audit

CODE = re.compile(r"[a-z][a-z0-9_-]{1,49}", re.ASCII)
MAX_SEARCH_DAYS = 62
"""How far ahead one search for free times looks (a page of the booking calendar is a week or a month)."""


def scheduling(ctx: Ctx) -> SchedulingProvider:
    return ctx.platform.providers.get(SCHEDULING)


# --- clinics and types -----------------------------------------------------------------------------------


def require_video(ctx: Ctx, *, field: str) -> None:
    """Video appointments need a video provider (``LEGETIME_VIDEO_PROVIDER``; a service may have none)."""
    if not ctx.platform.providers.names(VIDEO.capability):
        raise NotSupported("Videokonsultasjoner er ikke satt opp her.", field=field)


async def clinics(ctx: Ctx, *, include_inactive: bool = False) -> list[Clinic]:
    query = select(Clinic).order_by(Clinic.name)
    if not include_inactive:
        query = query.where(Clinic.active.is_(True))
    return list((await ctx.session.scalars(query)).all())


async def clinic(ctx: Ctx, clinic_id: uuid.UUID, *, field: str = "clinicId") -> Clinic:
    found = await ctx.session.get(Clinic, clinic_id)
    if found is None or not found.active:
        raise NotFound("Fant ikke klinikken.", field=field)
    return found


async def appointment_types(ctx: Ctx, *, include_inactive: bool = False) -> list[AppointmentType]:
    query = select(AppointmentType).order_by(AppointmentType.name)
    if not include_inactive:
        query = query.where(AppointmentType.active.is_(True))
    return list((await ctx.session.scalars(query)).all())


async def appointment_type(ctx: Ctx, code: str, *, field: str = "appointmentType") -> AppointmentType:
    found = await ctx.session.scalar(select(AppointmentType).where(AppointmentType.code == code))
    if found is None or not found.active:
        raise NotFound("Fant ikke timetypen.", field=field)
    if found.mode is AppointmentMode.VIDEO:
        require_video(ctx, field=field)
    return found


@dataclass(frozen=True)
class ClinicChange:
    name: str
    address: str
    active: bool = True


async def save_clinic(ctx: Ctx, clinic_id: uuid.UUID | None, change: ClinicChange) -> Clinic:
    """Operators: add a clinic (no id) or change one."""
    require_operator(ctx.actor)
    name, address = change.name.strip(), change.address.strip()
    if not name:
        raise ValidationError("Klinikken må ha et navn.", field="name", code=ErrorCode.REQUIRED)
    if len(name) > 200 or len(address) > 300:
        raise ValidationError(
            "Navn eller adresse er for lang.", field="name" if len(name) > 200 else "address"
        )
    if clinic_id is None:
        found = Clinic(id=uuid.uuid4(), name=name, address=address, active=change.active)
        ctx.session.add(found)
    else:
        existing = await ctx.session.get(Clinic, clinic_id)
        if existing is None:
            raise NotFound("Fant ikke klinikken.", field="clinicId")
        found = existing
        found.name, found.address, found.active = name, address, change.active
    await ctx.session.flush()
    await _log_setup(ctx, "clinic", str(found.id))
    return found


@dataclass(frozen=True)
class TypeChange:
    code: str
    name: str
    mode: AppointmentMode
    minutes: int
    price_amount: int
    forms: tuple[FormKind, ...] = ()
    directly_bookable: bool = True
    active: bool = True


async def save_appointment_type(ctx: Ctx, change: TypeChange) -> AppointmentType:
    """Operators: add an appointment type, or change the one with this code."""
    require_operator(ctx.actor)
    if not CODE.fullmatch(change.code):
        raise ValidationError(
            "Koden skal være 2–50 små bokstaver, sifre, - eller _, og begynne med en bokstav.", field="code"
        )
    name = change.name.strip()
    if not name or len(name) > 200:
        raise ValidationError("Timetypen må ha et navn (høyst 200 tegn).", field="name")
    if not 5 <= change.minutes <= 480:
        raise ValidationError("Varigheten må være mellom 5 og 480 minutter.", field="minutes")
    if change.price_amount < 0:
        raise ValidationError("Prisen kan ikke være negativ.", field="priceAmount")
    if change.mode is AppointmentMode.VIDEO:
        require_video(ctx, field="mode")
    found = await ctx.session.scalar(select(AppointmentType).where(AppointmentType.code == change.code))
    if found is None:
        found = AppointmentType(id=uuid.uuid4(), code=change.code)
        ctx.session.add(found)
    found.name, found.mode, found.minutes = name, change.mode, change.minutes
    found.price_amount, found.price_currency = change.price_amount, ctx.platform.settings.currency
    found.forms = sorted({form.value for form in change.forms})
    found.directly_bookable, found.active = change.directly_bookable, change.active
    await ctx.session.flush()
    await _log_setup(ctx, "appointment_type", str(found.id))
    return found


# --- opening hours and free times ------------------------------------------------------------------------


async def opening_hours(ctx: Ctx, clinic_id: uuid.UUID) -> list[OpeningHours]:
    await clinic(ctx, clinic_id)
    return await scheduling(ctx).opening_hours(clinic_id)


async def set_opening_hours(ctx: Ctx, clinic_id: uuid.UUID, hours: list[OpeningHours]) -> list[OpeningHours]:
    """Operators: replace a clinic's weekly hours (kept by the scheduling provider). The clinicians must be
    on the staff as clinicians and the types must exist; booked appointments stay as they are."""
    require_operator(ctx.actor)
    await clinic(ctx, clinic_id)
    provider = scheduling(ctx)
    if not provider.management.opening_hours:
        raise NotSupported(
            "Åpningstidene for denne klinikken holdes i klinikkens eget system.", field="hours"
        )
    clinicians = {h.clinician_id for h in hours}
    if clinicians:
        active = set(
            (
                await ctx.session.scalars(
                    select(StaffMembership.person_id).where(
                        StaffMembership.person_id.in_(clinicians),
                        StaffMembership.role == StaffRole.CLINICIAN,
                        StaffMembership.ended_at.is_(None),
                    )
                )
            ).all()
        )
        for index, period in enumerate(hours):
            if period.clinician_id not in active:
                raise ValidationError(
                    "Bare klinikere kan ha åpningstider.", field=f"hours.{index}.clinicianId"
                )
    codes = {code for h in hours for code in h.appointment_types}
    known = set(
        (await ctx.session.scalars(select(AppointmentType.code).where(AppointmentType.code.in_(codes)))).all()
    )
    for index, period in enumerate(hours):
        unknown = [code for code in period.appointment_types if code not in known]
        if unknown:
            raise ValidationError(
                f"Ukjent timetype: {', '.join(unknown)}.", field=f"hours.{index}.appointmentTypes"
            )
    await provider.set_opening_hours(clinic_id, hours)
    await _log_setup(ctx, "opening_hours", str(clinic_id))
    return await provider.opening_hours(clinic_id)


async def free_slots(
    ctx: Ctx,
    clinic_id: uuid.UUID,
    type_code: str,
    not_before: datetime,
    not_after: datetime,
    clinician_id: uuid.UUID | None = None,
    limit: int = 50,
) -> list[Slot]:
    """Free times of a type at a clinic, earliest first (never in the past; at most two months ahead)."""
    await clinic(ctx, clinic_id)
    await appointment_type(ctx, type_code)
    start = max(not_before, ctx.now)
    if not_after <= start:
        return []
    if not_after - start > timedelta(days=MAX_SEARCH_DAYS):
        raise ValidationError(f"Søk høyst {MAX_SEARCH_DAYS} dager frem om gangen.", field="notAfter")
    if not 1 <= limit <= 200:
        raise ValidationError("Be om mellom 1 og 200 tider.", field="first")
    query = SlotQuery(clinic_id, type_code, start, not_after, clinician_id=clinician_id, limit=limit)
    return await scheduling(ctx).find_slots(query)


async def _log_setup(ctx: Ctx, object_type: str, object_id: str) -> None:
    """Changes to what can be booked are the operators' to answer for: in the access log, with no person."""
    await audit.log(ctx, person_id=None, object_type=object_type, object_id=object_id, action="change")
