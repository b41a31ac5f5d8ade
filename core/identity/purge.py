"""Deleting logins and sessions that are over.

A started login keeps the identity provider's state, sealed: it may hold the national ID she typed in and
the provider's secrets. A session keeps who is logged in. Neither is of use once it has ended: a login
past its expiry can no longer be completed, and a session past its expiry or logged out stands for nobody
(``auth``). The core's periodic job ``identity.purge_logins`` deletes them, in batches that commit on their
own and lock only their own rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so several workers may run it
at once, and nothing else waits for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import ColumnElement, delete, or_, select

from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import AuthSession, LoginTransaction

if TYPE_CHECKING:
    from legetime.core.platform.runtime import Platform

log = structlog.get_logger(__name__)

PURGE_LOGINS_JOB = "identity.purge_logins"
LOGIN_PURGE_EVERY = timedelta(minutes=5)
"""With the default login time of 10 minutes, an abandoned login's state is gone within a quarter of an
hour of its start."""
PURGE_BATCH = 500
LOGIN_GRACE = timedelta(minutes=1)
"""A login is deleted this long after it expired, so a completion that read it just before it expired
finishes against its row instead of finding it gone."""


@dataclass(frozen=True)
class PurgedLogins:
    logins: int
    sessions: int


async def purge_logins(
    platform: Platform, *, now: datetime | None = None, batch_size: int = PURGE_BATCH
) -> PurgedLogins:
    """Delete logins past their expiry and sessions past their expiry or logged out."""
    now = now or utcnow()
    logins = await _purge(
        platform, LoginTransaction, LoginTransaction.expires_at <= now - LOGIN_GRACE, batch_size
    )
    sessions = await _purge(
        platform,
        AuthSession,
        or_(AuthSession.expires_at <= now, AuthSession.revoked_at.is_not(None)),
        batch_size,
    )
    if logins or sessions:
        log.info("identity.logins_purged", logins=logins, sessions=sessions)
    return PurgedLogins(logins=logins, sessions=sessions)


async def _purge(
    platform: Platform,
    model: type[LoginTransaction] | type[AuthSession],
    ended: ColumnElement[bool],
    batch_size: int,
) -> int:
    total = 0
    while True:
        async with platform.db.transaction() as session:
            # Rows another run has taken are skipped, not waited for.
            batch = select(model.id).where(ended).limit(batch_size).with_for_update(skip_locked=True)
            ids = list((await session.scalars(batch)).all())
            if ids:
                await session.execute(
                    delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False)
                )
        total += len(ids)
        if len(ids) < batch_size:
            return total
