"""The access log (Normen): who read or changed whose health data, what, when and why.

Append-only (the ORM refuses updates and deletes) and hash-chained: each row's ``hash`` is the SHA-256
of its canonical form, which includes the previous row's hash. Changing, removing or slipping in a row
anywhere but at the newest end breaks the chain there, and ``verify_chain`` names the first broken row.
Removing the *newest* rows (or appending well-formed ones) cannot be seen from the chain alone: anyone
who can write the table can recompute the hashes from the cut onwards. Keep a head hash elsewhere (an
operator's note, a daily export, another system) and pass it as ``expected_head``.

Entries are written in the caller's transaction: a rolled-back change leaves no entry, a committed one
always has its entry. Appends never fork the chain (two rows naming the same predecessor), because the
newest hash is read only once this transaction is the only one that can append:

* PostgreSQL: a transaction-scoped advisory lock (``pg_advisory_xact_lock``) is taken first and held to
  commit; the read after it, a statement of its own, sees the previous holder's committed row under READ
  COMMITTED (the default). REPEATABLE READ would read an older snapshot, so it is refused; SERIALIZABLE
  would abort one of two conflicting appends, never fork.
* SQLite: its single write lock. ``Database`` begins every transaction IMMEDIATE, which takes it up
  front; for any other SQLite session (SQLAlchemy's default pysqlite handling runs SELECTs outside a
  transaction until the first write) a write that changes nothing (``UPDATE ... WHERE 0``) is issued
  first: it opens the transaction and takes the write lock before the read.

Canonical form, version 1. This is a storage format: the stored hashes depend on it byte for byte, so
never change it silently; a new form gets a new ``v`` and ``verify_chain`` must keep reading the old one.
A JSON object, keys sorted, separators ``,`` and ``:`` without spaces, non-ASCII escaped as ``\\uXXXX``
(Python's ``json.dumps(..., sort_keys=True, separators=(",", ":"))``), UTF-8 bytes, with the keys:

    v            1
    occurred_at  "YYYY-MM-DDTHH:MM:SS.ffffffZ" (UTC, always six digits of microseconds)
    actor_id     UUID as lower-case hyphenated string, or null
    actor_role   string
    person_id    UUID as lower-case hyphenated string, or null
    object_type  string
    object_id    string
    action       string
    reason       string or null
    prev_hash    the previous row's hash (64 lower-case hex digits), null for the first row

``hash`` is the lower-case hex SHA-256 of those bytes; ``id`` is not covered (the order is, via
``prev_hash``). Both databases give ``occurred_at`` back with its microseconds and, through
``UTCDateTime``, as aware UTC, so a row hashes the same when read back from either.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.engine import turn_of
from legetime.core.platform.db.models import AuditEvent

if TYPE_CHECKING:
    from legetime.core.identity.ctx import Ctx

CANONICAL_VERSION = 1
_LOCK_KEY = 0x4C45474554494D45  # "LEGETIME": the advisory lock that serialises appends on PostgreSQL
_HASHED = (
    "occurred_at",
    "actor_id",
    "actor_role",
    "person_id",
    "object_type",
    "object_id",
    "action",
    "reason",
    "prev_hash",
)


@dataclass(frozen=True)
class Entry:
    """One access to log; ``record_many`` appends several with one INSERT."""

    actor_id: uuid.UUID | None
    actor_role: str
    person_id: uuid.UUID | None
    object_type: str
    object_id: str
    action: str
    reason: str | None = None


@dataclass(frozen=True)
class ChainReport:
    """The outcome of ``verify_chain``. ``checked`` counts the rows found sound before the first broken
    one; ``head`` (when ok) is the newest hash, worth keeping elsewhere as the next ``expected_head``."""

    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str | None = None
    head: str | None = None


def canonical(row: AuditEvent | Mapping[Any, Any]) -> bytes:
    """The bytes a row's hash covers (see the module docstring; never change them silently)."""
    values = row if isinstance(row, Mapping) else {name: getattr(row, name) for name in _HASHED}
    occurred_at: datetime = values["occurred_at"]
    document = {
        "v": CANONICAL_VERSION,
        "occurred_at": occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor_id": _str(values["actor_id"]),
        "actor_role": values["actor_role"],
        "person_id": _str(values["person_id"]),
        "object_type": values["object_type"],
        "object_id": values["object_id"],
        "action": values["action"],
        "reason": values["reason"],
        "prev_hash": values["prev_hash"],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def row_hash(row: AuditEvent | Mapping[Any, Any]) -> str:
    return hashlib.sha256(canonical(row)).hexdigest()


def _str(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


async def _lock_and_read_head(session: AsyncSession) -> str | None:
    """Become the only transaction that may append, then read the newest hash (see the module docstring).
    The lock is the transaction's until it ends; it is not released early on purpose."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        isolation = (
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:key), current_setting('transaction_isolation')"),
                {"key": _LOCK_KEY},
            )
        ).one()[1]
        if isolation == "repeatable read":
            raise RuntimeError("access log appends need READ COMMITTED: REPEATABLE READ would fork the chain")
    elif dialect == "sqlite":
        await session.execute(text("UPDATE audit_event SET id = id WHERE 0"))
    else:
        raise NotImplementedError(f"no way to serialise access log appends on {dialect}")
    return await session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))


async def record_many(
    session: AsyncSession, entries: Sequence[Entry], *, at: datetime | None = None
) -> list[AuditEvent]:
    """Append entries in order, in the caller's transaction, with one batched INSERT (a page of a list
    costs the same statements as one case). All get the same time. Returns the rows written."""
    if not entries:
        return []
    if at is not None and at.tzinfo is None:
        raise ValueError("naive datetime given; use an aware UTC datetime")
    # Another coroutine of the same request may append on this session too: its head read and insert must
    # not fall between ours, or both would chain to the same head.
    async with turn_of(session):
        return await _append(session, entries, at)


async def _append(session: AsyncSession, entries: Sequence[Entry], at: datetime | None) -> list[AuditEvent]:
    previous = await _lock_and_read_head(session)
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
        row["hash"] = previous = row_hash(row)
        rows.append(row)
    # One multi-row INSERT ... RETURNING; put the rows back in order by their (unique) hashes ourselves:
    # asking SQLAlchemy to (sort_by_parameter_order) makes it insert one row at a time on SQLite.
    written = {row.hash: row for row in await session.scalars(insert(AuditEvent).returning(AuditEvent), rows)}
    return [written[row["hash"]] for row in rows]


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
) -> AuditEvent:
    """Append one entry in the caller's transaction; returns the row written."""
    entry = Entry(actor_id, actor_role, person_id, object_type, object_id, action, reason)
    return (await record_many(session, [entry], at=at))[0]


async def log(
    ctx: Ctx,
    *,
    person_id: uuid.UUID | None,
    object_type: str,
    object_id: str,
    action: str,
    reason: str | None = None,
) -> AuditEvent:
    """Log what the context's actor does to a person's data (the usual way to write an entry)."""
    return await record(
        ctx.session,
        actor_id=ctx.actor.person_id,
        actor_role=ctx.actor.role,
        person_id=person_id,
        object_type=object_type,
        object_id=object_id,
        action=action,
        reason=reason,
    )


async def verify_chain(
    session: AsyncSession, *, expected_head: str | None = None, batch_size: int = 1000
) -> ChainReport:
    """Walk the log in id order, a batch at a time (plain rows, not ORM objects: nothing piles up in the
    session, and what is checked is what is stored), and report the first row whose link or hash is
    wrong. ``expected_head`` is a hash taken from the chain earlier and kept elsewhere: it must still be
    in the chain (rows appended since are fine), which catches the newest rows being cut off up to it.

    Run it in its own transaction: on PostgreSQL a REPEATABLE READ one sees a single snapshot
    throughout; on SQLite ``Database`` transactions hold the write lock, so appends wait for the walk."""
    previous: str | None = None
    last_id: int | None = None  # not 0: a forged row with id 0 or below must not slip past the walk
    checked = 0
    anchor_seen = expected_head is None
    columns = [AuditEvent.id, AuditEvent.hash, *(getattr(AuditEvent, name) for name in _HASHED)]
    while True:
        query = select(*columns).order_by(AuditEvent.id).limit(batch_size)
        if last_id is not None:
            query = query.where(AuditEvent.id > last_id)
        rows = (await session.execute(query)).mappings().all()
        if not rows:
            break
        for row in rows:
            if row["prev_hash"] != previous:
                reason = "the link to the previous row is broken (a row removed or inserted before it)"
                return ChainReport(False, checked, row["id"], reason)
            if row_hash(row) != row["hash"]:
                reason = "the row was changed after it was written (its hash does not match)"
                return ChainReport(False, checked, row["id"], reason)
            anchor_seen = anchor_seen or row["hash"] == expected_head
            previous, last_id, checked = row["hash"], row["id"], checked + 1
    if not anchor_seen:
        return ChainReport(False, checked, None, "the expected head is not in the chain (rows cut off)")
    return ChainReport(True, checked, head=previous)


async def access_log_for(
    session: AsyncSession, person_id: uuid.UUID, *, limit: int = 50, before_id: int | None = None
) -> list[AuditEvent]:
    """Who accessed a person's data, newest first, for the person's own view. Page on with the last
    row's id as ``before_id`` (ids only grow, so a page never shifts under new entries)."""
    query = select(AuditEvent).where(AuditEvent.person_id == person_id)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return list((await session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit))).all())
