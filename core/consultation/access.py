"""Who may see and change which case: the rules, in one place, as SQL conditions (scoped look-ups).

- A patient: the cases about herself.
- A guardian: the cases she opened for her child, while the child is under her country's guardian age
  (Norway 16, Sweden 18: ``legetime.core.identity.countries``; the child is always of her country),
  computed from the child's birth date at request time, never cached.
- A clinician: the queue (submitted, unassigned) to read, and the cases she claimed to read and write.
- An operator: no case content (operational views only).
- Anonymous: nothing.

A case the actor may not see is "not found", whether it exists or not.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.orm import aliased

from legetime.core.identity.actors import Actor
from legetime.core.identity.countries import NORWAY, guardian_rules
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.models import Case, CaseStatus, Person, RequesterRole
from legetime.core.platform.errors import ErrorCode, LegetimeError, NotFound

NOT_FOUND_MESSAGE = "Fant ikke saken."


class Unauthenticated(LegetimeError):
    code = ErrorCode.UNAUTHENTICATED


def _sixteenth_birthday_cutoff(today: date) -> date:
    """Norwegian children born after this date are under 16 today (bench/baseline_app.py reads it)."""
    return NORWAY.guardian_cutoff(today)


_CHILD = aliased(Person)
"""The child of a guardian's case, made once: making an alias costs more than the rest of the condition."""


def as_patient(actor: Actor, today: date) -> ColumnElement[bool]:
    """Cases the actor may read and write as the patient or the child's guardian. A guardian's limit is
    her country's (her child is of the same country); an actor of unknown country gets the strictest."""
    if actor.person_id is None:
        return false()
    child = _CHILD
    cutoff = guardian_rules(actor.country).guardian_cutoff(today)
    under_limit = select(child.id).where(child.id == Case.subject_id, child.birth_date > cutoff).exists()
    return or_(
        Case.subject_id == actor.person_id,
        and_(
            Case.requester_id == actor.person_id, Case.requester_role == RequesterRole.GUARDIAN, under_limit
        ),
    )


def as_clinician(actor: Actor, *, write: bool) -> ColumnElement[bool]:
    if not actor.is_clinician:
        return false()
    assigned = Case.assigned_clinician_id == actor.person_id
    if write:
        return assigned
    return or_(assigned, and_(Case.status == CaseStatus.SUBMITTED, Case.assigned_clinician_id.is_(None)))


def readable(actor: Actor, today: date) -> ColumnElement[bool]:
    return or_(as_patient(actor, today), as_clinician(actor, write=False))


def require_person(actor: Actor) -> uuid.UUID:
    if actor.person_id is None:
        raise Unauthenticated("Du må logge inn.")
    return actor.person_id


async def load_case(
    ctx: Ctx, case_id: uuid.UUID, condition: ColumnElement[bool], *, for_update: bool = False
) -> Case:
    """The case if the condition lets the actor have it; "not found" otherwise (existence not revealed).
    ``for_update`` locks the row for a state change (PostgreSQL; SQLite transactions are serial)."""
    require_person(ctx.actor)
    query = select(Case).where(Case.id == case_id, condition)
    if for_update:
        query = query.with_for_update(of=Case)
    case = await ctx.session.scalar(query)
    if case is None:
        raise NotFound(NOT_FOUND_MESSAGE, field="caseId")
    return case


# --- restriction of processing ---------------------------------------------------------------


class ProcessingRestricted(LegetimeError):
    code = ErrorCode.PROCESSING_RESTRICTED


async def require_unrestricted(ctx: Ctx, person_id: uuid.UUID) -> None:
    person = await ctx.session.get(Person, person_id)
    if person is not None and person.restricted_at is not None:
        raise ProcessingRestricted(
            "Behandlingen av opplysningene er begrenset etter ønske. Opphev begrensningen for å fortsette.",
            field="restricted",
        )
