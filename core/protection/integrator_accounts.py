"""Operators' management of integrator accounts (make one with a name and scopes, its token shown once;
revoke; list), and the rules an account's requests follow: a scope per field, and every read of a
person's data in the access log under the role ``integrator``, the account's id as the reason, so the
patient sees it in ``myAccessLog``. The tokens themselves: ``core/identity/integrators.py``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from legetime.core.identity import integrators
from legetime.core.identity.actors import Integrator, require_operator
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.base import new_id
from legetime.core.platform.db.models import IntegratorAccount, IntegratorScope
from legetime.core.platform.errors import ErrorCode, Forbidden, NotFound, ValidationError
from legetime.core.protection import audit

MAX_NAME = 100


@dataclass(frozen=True)
class WithToken:
    account: IntegratorAccount
    token: str
    """Shown this once."""


def require_scope(ctx: Ctx, scope: IntegratorScope) -> Integrator:
    """The calling account, if it has ``scope``."""
    integrator = ctx.actor.integrator
    if integrator is None:
        raise Forbidden("Bare integrasjonskontoer har tilgang.", code=ErrorCode.UNAUTHENTICATED)
    if scope not in integrator.scopes:
        raise Forbidden(f"Integrasjonskontoen mangler tilgangen {scope.value}.")
    return integrator


async def log_read(ctx: Ctx, *, person_id: uuid.UUID | None, object_type: str, object_id: str) -> None:
    """An account read a person's data: in the access log, the account named."""
    integrator = ctx.actor.integrator
    assert integrator is not None
    await audit.log(
        ctx,
        person_id=person_id,
        object_type=object_type,
        object_id=object_id,
        action="read",
        reason=f"integrator {integrator.id}",
    )


async def create(ctx: Ctx, *, name: str, scopes: Sequence[IntegratorScope]) -> WithToken:
    require_operator(ctx.actor)
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise ValidationError(f"Gi kontoen et navn på 1–{MAX_NAME} tegn.", field="name")
    if not scopes:
        raise ValidationError("Velg minst én tilgang.", field="scopes")
    token = integrators.new_token()
    account = IntegratorAccount(
        id=new_id(),
        name=name,
        scopes=sorted({IntegratorScope(s).value for s in scopes}),
        token_hash=integrators.token_hash(ctx.platform, token),
        created_by_id=ctx.actor.person_id,
        created_at=ctx.now,
    )
    ctx.session.add(account)
    await _log(ctx, account.id, "create")
    return WithToken(account, token)


async def revoke(ctx: Ctx, account_id: uuid.UUID) -> IntegratorAccount:
    """End the account: its token stands for nobody from the next request on."""
    require_operator(ctx.actor)
    account = await ctx.session.get(IntegratorAccount, account_id, with_for_update=True)
    if account is None:
        raise NotFound("Fant ikke integrasjonskontoen.", field="id")
    if account.revoked_at is None:
        account.revoked_at = ctx.now
        await _log(ctx, account.id, "revoke")
    return account


async def accounts(ctx: Ctx) -> list[IntegratorAccount]:
    require_operator(ctx.actor)
    return list(await ctx.session.scalars(select(IntegratorAccount).order_by(IntegratorAccount.created_at)))


async def _log(ctx: Ctx, account_id: uuid.UUID, action: str) -> None:
    await audit.log(
        ctx, person_id=None, object_type="integrator_account", object_id=str(account_id), action=action
    )
