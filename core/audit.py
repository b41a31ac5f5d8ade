"""The access log (Normen): who read or changed whose health data, what, when and why.

Append-only (the ORM refuses updates and deletes) and hash-chained: each row's ``hash`` is the SHA-256
of its canonical form, which includes the previous row's hash. Changing or removing a row in the middle
breaks the chain at that row; ``verify_chain`` finds the first broken link. (Removing the *newest* rows
cannot be seen from the chain alone: compare with a head hash kept elsewhere, ``expected_head``.)

Entries are written in the caller's transaction: a rolled-back change leaves no entry, a committed one
always has its entry. Appends are serialised so the chain never forks: on PostgreSQL by a
transaction-scoped advisory lock, on SQLite by its write lock (every transaction begins IMMEDIATE).

Canonical form, version 1 (a storage format: never change it silently; a new form gets a new ``v``):
JSON with sorted keys and no spaces of ``v, occurred_at`` (ISO 8601, UTC, microseconds),
``actor_id, actor_role, person_id, object_type, object_id, action, reason, prev_hash`` (UUIDs as
strings, absent values as null).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import utcnow
from core.db.models import AuditEvent

CANONICAL_VERSION = 1
_LOCK_KEY = 0x4C45474554494D45  # "LEGETIME": the advisory lock that serialises appends on PostgreSQL


@dataclass(frozen=True)
class Entry:
    actor_id: uuid.UUID | None
    actor_role: str
    person_id: uuid.UUID | None
    object_type: str
    object_id: str
    action: str
    reason: str | None = None


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str | None = None


def canonical(row: AuditEvent | dict[str, Any]) -> bytes:
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    occurred_at = cast(datetime, get("occurred_at"))
    values = {
        "v": CANONICAL_VERSION,
        "occurred_at": occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor_id": _str(get("actor_id")),
        "actor_role": get("actor_role"),
        "person_id": _str(get("person_id")),
        "object_type": get("object_type"),
        "object_id": get("object_id"),
        "action": get("action"),
        "reason": get("reason"),
        "prev_hash": get("prev_hash"),
    }
    return json.dumps(values, sort_keys=True, separators=(",", ":")).encode()


def _str(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _hash(row: AuditEvent) -> str:
    return hashlib.sha256(canonical(row)).hexdigest()


async def _head(session: AsyncSession) -> str | None:
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    return await session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))


async def record_many(
    session: AsyncSession, entries: Sequence[Entry], *, at: datetime | None = None
) -> list[str]:
    """Append entries in order, in the caller's transaction, with one batched INSERT (a page of a list
    costs the same statements as one case). Returns their hashes."""
    if not entries:
        return []
    previous = await _head(session)
    occurred_at = (at or utcnow()).astimezone(UTC)
    rows: list[dict[str, Any]] = []
    for entry in entries:
        row: dict[str, Any] = {
            "occurred_at": occurred_at,
            "actor_id": entry.actor_id,
            "actor_role": entry.actor_role,
            "person_id": entry.person_id,
            "object_type": entry.object_type,
            "object_id": entry.object_id,
            "action": entry.action,
            "reason": entry.reason,
            "prev_hash": previous,
        }
        row["hash"] = previous = hashlib.sha256(canonical(row)).hexdigest()
        rows.append(row)
    await session.execute(insert(AuditEvent), rows)
    return [row["hash"] for row in rows]


async def record(
    session: AsyncSession,
    *,
    actor_id: uuid.UUID | None,
    actor_role: str,
    person_id: uuid.UUID | None,
    object_type: str,
    object_id: str,
    action: str,
    reason: str | None = None,
    at: datetime | None = None,
) -> str:
    """Append one entry; returns its hash."""
    entry = Entry(actor_id, actor_role, person_id, object_type, object_id, action, reason)
    return (await record_many(session, [entry], at=at))[0]


async def verify_chain(
    session: AsyncSession, *, expected_head: str | None = None, batch_size: int = 1000
) -> ChainReport:
    """Walk the log in order (in batches) and report the first row whose hash or link is wrong."""
    previous: str | None = None
    last_id = 0
    checked = 0
    while True:
        rows = (
            await session.scalars(
                select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch_size)
            )
        ).all()
        if not rows:
            break
        for row in rows:
            if row.prev_hash != previous:
                return ChainReport(
                    False,
                    checked,
                    row.id,
                    "the link to the previous row is broken (a row removed or inserted)",
                )
            if _hash(row) != row.hash:
                return ChainReport(False, checked, row.id, "the row was changed after it was written")
            previous, last_id, checked = row.hash, row.id, checked + 1
        session.expunge_all()
    if expected_head is not None and previous != expected_head:
        return ChainReport(False, checked, None, "the newest rows are missing (head differs)")
    return ChainReport(True, checked)


async def access_log_for(
    session: AsyncSession, person_id: uuid.UUID, *, limit: int = 50, before_id: int | None = None
) -> list[AuditEvent]:
    """A person's own access log, newest first."""
    query = select(AuditEvent).where(AuditEvent.person_id == person_id)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return list((await session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit))).all())
