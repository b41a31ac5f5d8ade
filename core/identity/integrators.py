"""Integrator accounts' tokens: API credentials for machines (a clinic's journal system, a CRM, a data
warehouse). Only a keyed hash of a token is stored, as for sessions; a request that carries one acts as
the account (``Actor.integrator``): not a person, so every field that serves a person's access rules
refuses it, and it reaches only the narrow fields its scopes name. Operators manage the accounts
(``core/protection/integrator_accounts.py``); docs/integrators.md has the design.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.identity.actors import ANONYMOUS, Actor, Integrator
from legetime.core.platform.crypto import keyed_hash
from legetime.core.platform.db.models import IntegratorAccount, IntegratorScope

if TYPE_CHECKING:
    from legetime.core.platform.runtime import Platform

TOKEN_PREFIX = "lgi_"
"""Marks an integrator token (secret scanners can find a leaked one; ``auth.authenticate`` routes on it)."""
SCOPES = frozenset(scope.value for scope in IntegratorScope)
"""The scopes this version knows (an account keeps one a later version dropped, without effect)."""


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(platform: Platform, token: str) -> str:
    return keyed_hash(platform.derive_key("integrator-token"), token)


async def authenticate(session: AsyncSession, platform: Platform, token: str) -> Actor:
    """The account a token stands for; anonymous for an unknown or revoked one."""
    account = await session.scalar(
        select(IntegratorAccount).where(IntegratorAccount.token_hash == token_hash(platform, token))
    )
    if account is None or account.revoked_at is not None:
        return ANONYMOUS
    scopes = frozenset(IntegratorScope(s) for s in account.scopes if s in SCOPES)
    return Actor(person_id=None, integrator=Integrator(id=account.id, name=account.name, scopes=scopes))
