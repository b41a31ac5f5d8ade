"""Staff: who works here, in which role. Operators invite people by national ID (they log in with BankID
like everyone else: a person who has never logged in is created with her ID, and gets her name from her
first login), give and take roles, and deactivate staff. The first operator of an installation comes from
the command line (``legetime staff add``), never from a default password.

- A role taken away keeps its row, ended (``StaffMembership.ended_at``): who held which role when stays
  known, and her approved journal notes keep her name. Roles are read on every request, so a change
  counts from the next one.
- Deactivating a person ends all her roles and all her sessions at once (and, after the commit, her
  sockets in every process: the caller signals ``LiveEvents.end_sessions``).
- A clinician's HPR number (the Norwegian health-personnel register) is required with the role and
  shown in the provenance of the notes she approves.
- There is always an operator left: the last one cannot lose the role.
- Every change is in the access log.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select

from legetime.core.identity import auth, persons
from legetime.core.identity.actors import require_operator
from legetime.core.identity.countries import identify
from legetime.core.identity.ctx import Ctx
from legetime.core.identity.nationalid import InvalidNationalId
from legetime.core.platform.db.models import Person, StaffMembership, StaffRole
from legetime.core.platform.errors import NotFound, ValidationError
from legetime.core.protection import audit

HPR_NUMBER = re.compile(r"\d{6,9}")
"""An HPR number: 6 to 9 digits (Helsedirektoratet's register assigns them in sequence)."""


@dataclass(frozen=True)
class Member:
    person: Person
    memberships: list[StaffMembership]
    """Her roles, the ended ones too (newest first), when asked for."""

    @property
    def active(self) -> list[StaffMembership]:
        return [m for m in self.memberships if m.ended_at is None]


async def invite(
    ctx: Ctx, national_id: str, role: StaffRole, hpr_number: str | None, *, from_command_line: bool = False
) -> Member:
    """Give ``role`` to the person with ``national_id``, creating her if she has never logged in.
    ``from_command_line``: the first operator, with no one logged in to ask."""
    if not from_command_line:
        require_operator(ctx.actor)
    rules = identify(national_id)
    if rules is None:
        raise ValidationError("Ugyldig fødselsnummer.", field="nationalId")
    try:
        parsed = rules.parse(national_id, born_by=ctx.today)
    except InvalidNationalId as exc:
        raise ValidationError(str(exc), field="nationalId") from None
    person = await persons.find_person(ctx.session, ctx.platform, parsed.value)
    if person is None:
        person = persons.new_person(
            ctx.platform, parsed.value, given_name="", family_name="", birth_date=parsed.birth_date
        )
        ctx.session.add(person)
        await ctx.session.flush()
    await _grant(ctx, person, role, hpr_number)
    return await member(ctx, person.id)


async def grant(ctx: Ctx, person_id: uuid.UUID, role: StaffRole, hpr_number: str | None) -> Member:
    require_operator(ctx.actor)
    person = await _staff_person(ctx, person_id)
    await _grant(ctx, person, role, hpr_number)
    return await member(ctx, person.id)


async def revoke(ctx: Ctx, person_id: uuid.UUID, role: StaffRole) -> Member:
    """End one of her roles (from her next request on)."""
    require_operator(ctx.actor)
    person = await _staff_person(ctx, person_id)
    membership = await _membership(ctx, person.id, role)
    if membership is None or membership.ended_at is not None:
        raise NotFound("Personen har ikke denne rollen.", field="role")
    await _keep_an_operator(ctx, person.id, [membership])
    membership.ended_at = ctx.now
    await _log(ctx, person.id, membership, "revoke_role")
    return await member(ctx, person.id)


async def deactivate(ctx: Ctx, person_id: uuid.UUID) -> Member:
    """End all her roles and all her sessions."""
    require_operator(ctx.actor)
    person = await _staff_person(ctx, person_id)
    active = [m for m in await _memberships(ctx, person.id) if m.ended_at is None]
    if not active:
        raise NotFound("Personen er ikke ansatt.", field="personId")
    await _keep_an_operator(ctx, person.id, active)
    for membership in active:
        membership.ended_at = ctx.now
    await auth.end_sessions(ctx.session, person.id, at=ctx.now)
    await audit.log(
        ctx, person_id=person.id, object_type="person", object_id=str(person.id), action="deactivate_staff"
    )
    return await member(ctx, person.id)


async def members(ctx: Ctx, *, include_ended: bool = False, from_command_line: bool = False) -> list[Member]:
    """The staff (people with a role; with ``include_ended``, those who had one), by name."""
    if not from_command_line:
        require_operator(ctx.actor)
    query = select(StaffMembership).order_by(StaffMembership.created_at.desc())
    if not include_ended:
        query = query.where(StaffMembership.ended_at.is_(None))
    by_person: dict[uuid.UUID, list[StaffMembership]] = {}
    for membership in await ctx.session.scalars(query):
        by_person.setdefault(membership.person_id, []).append(membership)
    people = {
        person.id: person
        for person in await ctx.session.scalars(select(Person).where(Person.id.in_(list(by_person))))
    }
    found = [Member(people[pid], rows) for pid, rows in by_person.items() if pid in people]
    return sorted(found, key=lambda m: (m.person.family_name, m.person.given_name, str(m.person.id)))


async def member(ctx: Ctx, person_id: uuid.UUID) -> Member:
    person = await ctx.session.get(Person, person_id)
    if person is None:
        raise NotFound("Fant ikke personen.", field="personId")
    return Member(person, await _memberships(ctx, person_id))


async def _grant(ctx: Ctx, person: Person, role: StaffRole, hpr_number: str | None) -> StaffMembership:
    hpr = _hpr(role, hpr_number)
    membership = await _membership(ctx, person.id, role)
    if membership is None:
        membership = StaffMembership(person_id=person.id, role=role, created_at=ctx.now)
        ctx.session.add(membership)
    elif membership.ended_at is not None:  # given again: a new period
        membership.ended_at, membership.created_at = None, ctx.now
    membership.hpr_number = hpr if hpr is not None else membership.hpr_number
    membership.granted_by_id = ctx.actor.person_id
    await ctx.session.flush()
    await _log(ctx, person.id, membership, "grant_role")
    return membership


def _hpr(role: StaffRole, value: str | None) -> str | None:
    value = "".join((value or "").split()) or None
    if value is not None and not HPR_NUMBER.fullmatch(value):
        raise ValidationError("HPR-nummeret har 6 til 9 siffer.", field="hprNumber")
    if role is StaffRole.CLINICIAN and value is None:
        raise ValidationError("En lege må ha HPR-nummer.", field="hprNumber")
    return value


async def _staff_person(ctx: Ctx, person_id: uuid.UUID) -> Person:
    person = await ctx.session.get(Person, person_id)
    if person is None or not await _memberships(ctx, person_id):
        raise NotFound("Fant ikke den ansatte.", field="personId")
    return person


async def _memberships(ctx: Ctx, person_id: uuid.UUID) -> list[StaffMembership]:
    return list(
        await ctx.session.scalars(
            select(StaffMembership)
            .where(StaffMembership.person_id == person_id)
            .order_by(StaffMembership.created_at.desc())
            .with_for_update()
        )
    )


async def _membership(ctx: Ctx, person_id: uuid.UUID, role: StaffRole) -> StaffMembership | None:
    return await ctx.session.scalar(
        select(StaffMembership)
        .where(StaffMembership.person_id == person_id, StaffMembership.role == role)
        .with_for_update()
    )


async def _keep_an_operator(ctx: Ctx, person_id: uuid.UUID, ending: list[StaffMembership]) -> None:
    if not any(m.role is StaffRole.OPERATOR for m in ending):
        return
    # Locks the other operators' rows: two operators removing each other at once cannot both succeed.
    others = await ctx.session.scalar(
        select(func.count()).select_from(
            select(StaffMembership.id)
            .where(
                StaffMembership.role == StaffRole.OPERATOR,
                StaffMembership.ended_at.is_(None),
                StaffMembership.person_id != person_id,
            )
            .with_for_update()
            .subquery()
        )
    )
    if not others:
        raise ValidationError("Det må være minst én driftsoperatør igjen.", field="role")


async def _log(ctx: Ctx, person_id: uuid.UUID, membership: StaffMembership, action: str) -> None:
    await audit.log(
        ctx,
        person_id=person_id,
        object_type="staff_membership",
        object_id=str(membership.id),
        action=action,
        reason=membership.role.value,
    )
