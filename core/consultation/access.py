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
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, false, or_, select

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


_CASES = Case.__table__
_CHILDREN = Person.__table__.alias("guardian_child")


def _patient_or_guardian(reader: Any, cutoff: Any) -> ColumnElement[bool]:
    """Cases about ``reader``, or opened by her as the guardian of a child born after ``cutoff``."""
    return or_(
        _CASES.c.subject_id == reader,
        and_(
            _CASES.c.requester_id == reader,
            _CASES.c.requester_role == RequesterRole.GUARDIAN,
            select(_CHILDREN.c.id)
            .where(_CHILDREN.c.id == _CASES.c.subject_id, _CHILDREN.c.birth_date > cutoff)
            .exists(),
        ),
    )


AS_PATIENT = _patient_or_guardian(bindparam("access_reader"), bindparam("access_guardian_cutoff"))
"""Cases the reader may read and write as the patient or the child's guardian, with the reader and the
guardian's cutoff as parameters (``patient_parameters``). Made once: a list that runs it as it is, with
the parameters given at execution, builds no SQL expression and no cache key per request."""


def patient_parameters(actor: Actor, today: date) -> dict[str, Any]:
    """``AS_PATIENT``'s parameters for the actor. A guardian's limit is her country's (her child is of the
    same country); an actor of unknown country gets the strictest."""
    return {
        "access_reader": actor.person_id,
        "access_guardian_cutoff": guardian_rules(actor.country).guardian_cutoff(today),
    }


def as_patient(actor: Actor, today: date) -> ColumnElement[bool]:
    """``AS_PATIENT`` with the actor's values in place, to combine with other conditions."""
    if actor.person_id is None:
        return false()
    values = patient_parameters(actor, today)
    return _patient_or_guardian(values["access_reader"], values["access_guardian_cutoff"])


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
