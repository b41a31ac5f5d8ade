"""Operators: the staff — invite by national ID, give and take roles, deactivate. The rules live in
``legetime.core.protection.staff``; docs/operations.md, "Staff", describes them."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import strawberry

from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db import models
from legetime.core.platform.errors import NotFound
from legetime.core.protection import staff
from legetime.schema.context import Info
from legetime.schema.errors import Error
from legetime.schema.mutation import mutate

StaffRole = strawberry.enum(models.StaffRole, name="StaffRole", description="A role on the staff.")


@strawberry.type(description="One role of a staff member, and since when (until when, if it ended).")
class StaffRoleGrant:
    role: StaffRole  # type: ignore[valid-type]
    hpr_number: str | None = strawberry.field(description="A clinician's HPR number.")
    since: datetime
    ended_at: datetime | None


@strawberry.type(description="A person on the staff. Her name comes from her BankID login.")
class StaffMember:
    person_id: strawberry.ID
    name: str | None = strawberry.field(description="Null until she has logged in once.")
    roles: list[StaffRoleGrant] = strawberry.field(description="Current roles (and ended ones, if asked).")

    @classmethod
    def of(cls, member: staff.Member) -> StaffMember:
        person = member.person
        name = f"{person.given_name} {person.family_name}".strip()
        return cls(
            person_id=strawberry.ID(str(person.id)),
            name=name or None,
            roles=[
                StaffRoleGrant(role=m.role, hpr_number=m.hpr_number, since=m.created_at, ended_at=m.ended_at)
                for m in member.memberships
            ],
        )


@strawberry.input
class InviteStaffInput:
    national_id: str = strawberry.field(description="She logs in with BankID with this ID.")
    role: StaffRole  # type: ignore[valid-type]
    hpr_number: str | None = strawberry.field(default=None, description="Required for CLINICIAN.")


@strawberry.input
class GrantStaffRoleInput:
    person_id: strawberry.ID
    role: StaffRole  # type: ignore[valid-type]
    hpr_number: str | None = strawberry.field(default=None, description="Required for CLINICIAN.")


@strawberry.input
class RevokeStaffRoleInput:
    person_id: strawberry.ID
    role: StaffRole  # type: ignore[valid-type]


@strawberry.input
class DeactivateStaffInput:
    person_id: strawberry.ID


@strawberry.type
class StaffMemberPayload:
    member: StaffMember | None = None
    errors: list[Error]


def _person_id(value: strawberry.ID) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound("Fant ikke den ansatte.", field="personId") from None


async def _change(info: Info, work: Callable[[Ctx], Awaitable[staff.Member]]) -> StaffMemberPayload:
    member, errors = await mutate(info, work)
    return StaffMemberPayload(member=StaffMember.of(member) if member else None, errors=errors)


@strawberry.type
class StaffQuery:
    @strawberry.field(
        description="Operators: the staff, by name; `includeEnded` adds ended roles and people."
    )
    async def staff_members(self, info: Info, include_ended: bool = False) -> list[StaffMember]:
        ctx = await info.context.read()
        return [StaffMember.of(m) for m in await staff.members(ctx, include_ended=include_ended)]


@strawberry.type
class StaffMutation:
    @strawberry.mutation(
        description="Operators: give a role to the person with this national ID (she logs in with BankID)."
    )
    async def invite_staff(self, info: Info, input: InviteStaffInput) -> StaffMemberPayload:
        return await _change(
            info, lambda ctx: staff.invite(ctx, input.national_id, input.role, input.hpr_number)
        )

    @strawberry.mutation(description="Operators: give a staff member another role (or one she had again).")
    async def grant_staff_role(self, info: Info, input: GrantStaffRoleInput) -> StaffMemberPayload:
        return await _change(
            info,
            lambda ctx: staff.grant(ctx, _person_id(input.person_id), input.role, input.hpr_number),
        )

    @strawberry.mutation(description="Operators: take a role away (from her next request on).")
    async def revoke_staff_role(self, info: Info, input: RevokeStaffRoleInput) -> StaffMemberPayload:
        return await _change(info, lambda ctx: staff.revoke(ctx, _person_id(input.person_id), input.role))

    @strawberry.mutation(
        description="Operators: end all her roles and her sessions at once; her approved notes keep her name."
    )
    async def deactivate_staff(self, info: Info, input: DeactivateStaffInput) -> StaffMemberPayload:
        person_id = _person_id(input.person_id)
        payload = await _change(info, lambda ctx: staff.deactivate(ctx, person_id))
        if payload.member is not None:  # committed: her sockets close too, in every process
            info.context.platform.live.end_sessions(person_id=person_id)
        return payload
