"""Idempotency keys of mutations that create something (a case, a message, an image, a journal draft,
a consent).

A client that lost the answer retries with the same key: it gets what the first call created, and nothing
is created or changed twice. A key is its caller's own: it is scoped to the person (and, where the mutation
concerns a case, to that case), so the same key from two people is two operations. A key names one
request: the same key with other input is refused (``IDEMPOTENCY_CONFLICT``).

Each created row keeps its key under a unique constraint over the scope and the key, so two concurrent
retries cannot both create. ``once`` runs the creation in a savepoint: on PostgreSQL the loser's INSERT
waits for the winner's commit and then fails on the constraint; the savepoint is rolled back (the
transaction stays usable) and the winner's row, now visible under READ COMMITTED, is returned. On SQLite
transactions take turns (``BEGIN IMMEDIATE``), so a retry simply finds the row.

Logs carry the operation and ids, never a key or what the request held.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.platform.errors import ErrorCode, LegetimeError, ValidationError

if TYPE_CHECKING:
    from legetime.core.platform.runtime import Platform

log = structlog.get_logger(__name__)

MAX_KEY_LENGTH = 100
FIELD = "idempotencyKey"

T = TypeVar("T")


class IdempotencyKeyReused(LegetimeError):
    """The caller's key was used before for a request with other input (a client bug, never a retry)."""

    code = ErrorCode.IDEMPOTENCY_CONFLICT


def check_key(key: str | None) -> str | None:
    """The key as given, or a typed error: 1 to 100 printable characters (no control characters)."""
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationError(
            f"Idempotensnøkkelen må ha 1–{MAX_KEY_LENGTH} tegn og ingen kontrolltegn.", field=FIELD
        )
    return key


def conflict(operation: str, what: str) -> IdempotencyKeyReused:
    """The error for a key used before with other input; ``what`` names the object (“en annen sak”)."""
    log.info("idempotency.conflict", operation=operation, code=ErrorCode.IDEMPOTENCY_CONFLICT.value)
    return IdempotencyKeyReused(f"Idempotensnøkkelen er allerede brukt for {what}.", field=FIELD)


def request_hash(platform: Platform, operation: str, *parts: str | bytes | None) -> str:
    """A keyed hash of a request's input, stored with what it created, to tell a retry from a request
    with other input. Keyed (HMAC), so it says nothing about input one could guess (a national ID)."""
    mac = hmac.new(platform.derive_key("idempotency-request"), operation.encode(), hashlib.sha256)
    for part in parts:
        if part is None:
            mac.update(b"\x00")
            continue
        data = part.encode() if isinstance(part, str) else part
        mac.update(b"\x01" + len(data).to_bytes(8, "big") + data)  # length-prefixed: parts never run together
    return mac.hexdigest()


async def once(
    session: AsyncSession,
    operation: str,
    key: str | None,
    find: Callable[[], Awaitable[T | None]],
    create: Callable[[], Awaitable[T]],
) -> T:
    """What ``find`` finds for the key (a retry), or what ``create`` creates. ``find`` raises ``conflict``
    when the row it finds was created by other input; ``create`` must store the key on its row, under the
    unique constraint. Without a key, ``create`` simply runs."""
    if key is None:
        return await create()
    existing = await find()
    if existing is not None:
        log.info("idempotency.replayed", operation=operation, id=_id(existing))
        return existing
    try:
        async with session.begin_nested():
            return await create()
    except IntegrityError:
        winner = await find()  # a concurrent request with the same key committed first
        if winner is None:
            raise
        log.info("idempotency.concurrent_retry", operation=operation, id=_id(winner))
        return winner


def _id(row: Any) -> str | None:
    value = getattr(row, "id", None)
    return None if value is None else str(value)
