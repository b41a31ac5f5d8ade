"""Who may see and change which appointment: the rules in one place, as SQL conditions.

- A patient: her own appointments.
- A guardian: those she booked for her child while the child is under her country's guardian age
  (as for cases: ``core.consultation.access``), computed at request time.
- A clinician: her own appointments, and the booking requests (anyone on the clinical staff may take
  one); the content (message, forms) of her own only, and of a request while she handles it.
- An operator: every appointment's administrative side (time, place, status, payment) to run the
  reception and the booking requests, never its content (message, forms).
- Anonymous: nothing; the links in texts act on one appointment for one purpose (``links``).

An appointment the actor may not see is "not found", whether it exists or not.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import aliased

from legetime.core.consultation.access import require_person
from legetime.core.identity.actors import Actor
from legetime.core.identity.countries import guardian_rules
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.appointment_models import Appointment, AppointmentStatus
from legetime.core.platform.db.models import Person
from legetime.core.platform.errors import NotFound

NOT_FOUND_MESSAGE = "Fant ikke timen."
GUARDIAN = "guardian"

_CHILD = aliased(Person)


def as_patient(actor: Actor, today: date) -> ColumnElement[bool]:
    """Appointments she may read and change as the patient or the child's guardian."""
    if actor.person_id is None:
        return false()
    cutoff = guardian_rules(actor.country).guardian_cutoff(today)
    under_limit = (
        select(_CHILD.id).where(_CHILD.id == Appointment.patient_id, _CHILD.birth_date > cutoff).exists()
    )
    return or_(
        Appointment.patient_id == actor.person_id,
        and_(
            Appointment.booked_by_id == actor.person_id, Appointment.booked_by_role == GUARDIAN, under_limit
        ),
    )


def as_clinician(actor: Actor) -> ColumnElement[bool]:
    if not actor.is_clinician:
        return false()
    return or_(Appointment.clinician_id == actor.person_id, Appointment.status == AppointmentStatus.REQUESTED)


def as_staff(actor: Actor) -> ColumnElement[bool]:
    """The administrative side: operators all, clinicians theirs and the requests."""
    if actor.is_operator:
        return true()
    return as_clinician(actor)


def readable(actor: Actor, today: date) -> ColumnElement[bool]:
    return or_(as_patient(actor, today), as_staff(actor))


def may_read_content(actor: Actor, appointment: Appointment, patient_side: bool) -> bool:
    """Her message and her forms: the patient side, and the clinician of the appointment (or any
    clinician while it is a request to be handled). Operators never."""
    if patient_side:
        return True
    if not actor.is_clinician:
        return False
    return appointment.clinician_id == actor.person_id or appointment.status is AppointmentStatus.REQUESTED


async def load(
    ctx: Ctx, appointment_id: uuid.UUID, condition: ColumnElement[bool], *, for_update: bool = False
) -> Appointment:
    """The appointment if the condition lets the actor have it; "not found" otherwise. ``for_update``
    locks the row for a change (PostgreSQL; SQLite transactions are serial)."""
    require_person(ctx.actor)
    query = select(Appointment).where(Appointment.id == appointment_id, condition)
    if for_update:
        query = query.with_for_update(of=Appointment)
    found = await ctx.session.scalar(query)
    if found is None:
        raise NotFound(NOT_FOUND_MESSAGE, field="appointmentId")
    return found


async def is_patient_side(ctx: Ctx, appointment: Appointment) -> bool:
    """Whether the actor reads as the patient (or her guardian): the condition, for a loaded row."""
    if ctx.actor.person_id is None:
        return False
    if appointment.patient_id == ctx.actor.person_id:
        return True
    found = await ctx.session.scalar(
        select(Appointment.id).where(Appointment.id == appointment.id, as_patient(ctx.actor, ctx.today))
    )
    return found is not None
