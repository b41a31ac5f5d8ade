"""The access log (Normen): who read or changed whose health data, what, when and why.

Append-only (the ORM refuses updates and deletes) and hash-chained: each row's ``hash`` is the SHA-256
of its canonical form, which includes the previous row's hash. Changing, removing or slipping in a row
anywhere but at the newest end breaks the chain there, and ``verify_chain`` names the first broken row.
Removing the *newest* rows (or appending well-formed ones) cannot be seen from the chain alone: anyone
who can write the table can recompute the hashes from the cut onwards. Keep a head hash elsewhere (an
operator's note, a daily export, another system) and pass it as ``expected_head``.

Writing and chaining are two steps (docs/decisions/0006-access-log-sequencer.md has the why and the
threat model):

* **Appending** is a plain INSERT in the caller's transaction, with no lock: a rolled-back change leaves
  no entry, a committed one always has its entry, and readers in any number of processes never wait for
  each other. The row is written unchained (``seq``, ``prev_hash`` and ``hash`` empty). A GraphQL
  request's reads collect their entries and write them with one INSERT when the request ends, before
  the answer is sent (``buffer_entries``, ``take_buffered``, ``write_rows``); on PostgreSQL a page may
  write its own in the statement that reads it (``logging_select``).
* **Chaining** is the sequencer's (``chain_pending``, run every second by the job runner and first thing
  by ``legetime audit verify``): it takes the committed unchained rows in id order and gives each its
  place (``seq`` 1, 2, 3 … without gaps), its predecessor's hash and its own. One sequencer at a time:
  on PostgreSQL a transaction-scoped advisory lock, tried, never waited for (another sequencer at work
  means there is nothing to do); on SQLite the write lock of its IMMEDIATE transaction. The chain's
  order is the order in which rows became visible to the sequencer, that is commit order.

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

``hash`` is the lower-case hex SHA-256 of those bytes; ``id`` and ``seq`` are not covered (the order
is, via ``prev_hash``). Both databases give ``occurred_at`` back with its microseconds and, through
``UTCDateTime``, as aware UTC, so a row hashes the same when read back from either.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Integer, Select, bindparam, cast, func, insert, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.engine import Database
from legetime.core.platform.db.models import AuditEvent

if TYPE_CHECKING:
    from legetime.core.identity.ctx import Ctx

CANONICAL_VERSION = 1
CHAIN_JOB = "audit.chain"
CHAIN_EVERY = timedelta(seconds=1)
"""How often the sequencer looks for rows to chain: the longest a written row stays unchained."""
CHAIN_BATCH = 1000
"""Rows chained per transaction. Hashing a batch holds the event loop (and on SQLite the write lock): in
``legetime serve`` with jobs in-process, 5,000 at a time stalled every request for about 0.2 s each
second under load; 1,000 keeps each stall near 40 ms."""
_SEQUENCER_LOCK = 0x4C45474554494D45  # "LEGETIME": one sequencer at a time on PostgreSQL
_BUFFER = "legetime.audit_buffer"
_COLUMNS = (
    "occurred_at",
    "actor_id",
    "actor_role",
    "person_id",
    "object_type",
    "object_id",
    "action",
    "reason",
)
"""What an entry is written with; the sequencer adds its place and the links."""
_HASHED = (*_COLUMNS, "prev_hash")


class Entry(NamedTuple):
    """One access to log; ``record_many`` appends several with one INSERT. (A named tuple: a page of a list
    makes one for each of its rows, and the row written is the time and these values, in this order.)"""

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
    one; ``head`` (when ok) is the newest hash, worth keeping elsewhere as the next ``expected_head``;
    ``unchained`` counts the rows written but not chained yet (not checked)."""

    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str | None = None
    head: str | None = None
    unchained: int = 0


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


# --- appending -----------------------------------------------------------------------------------------


async def record_many(session: AsyncSession, entries: Sequence[Entry], *, at: datetime | None = None) -> None:
    """Append entries in order, in the caller's transaction (a page of a list costs one INSERT, however
    long). All get the same time. In a session that buffers (a request's reads), they are written when
    it commits."""
    if not entries:
        return
    if at is not None and at.tzinfo is None:
        raise ValueError("naive datetime given; use an aware UTC datetime")
    occurred_at = (at or utcnow()).astimezone(UTC)
    rows = [(occurred_at, *entry) for entry in entries]  # the values of _COLUMNS, in their order
    buffered: list[tuple[Any, ...]] | None = session.info.get(_BUFFER)
    if buffered is not None:
        buffered.extend(rows)
    else:
        await write_rows(session, rows)


# On PostgreSQL, however many rows: one statement, its text always the same (prepared once per
# connection), a column per array. A multi-row VALUES would be a new statement for every row count,
# slow to build; an executemany goes out as a statement per row.
_INSERT_UNNEST = text(
    f"INSERT INTO audit_event ({', '.join(_COLUMNS)}) SELECT * FROM unnest("
    "CAST(:occurred_at AS timestamptz[]), CAST(:actor_id AS uuid[]), CAST(:actor_role AS varchar[]), "
    "CAST(:person_id AS uuid[]), CAST(:object_type AS varchar[]), CAST(:object_id AS varchar[]), "
    "CAST(:action AS varchar[]), CAST(:reason AS varchar[]))"
)


async def write_rows(session: AsyncSession, rows: Sequence[Sequence[Any]]) -> None:
    """Write unchained rows (as ``record_many`` makes them: the values of ``_COLUMNS``) with one statement:
    on PostgreSQL an INSERT of arrays; on SQLite an executemany, a loop in the driver."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            _INSERT_UNNEST, dict(zip(_COLUMNS, map(list, zip(*rows, strict=True)), strict=True))
        )
    else:
        table: Any = AuditEvent.__table__
        await session.execute(insert(table), [dict(zip(_COLUMNS, row, strict=True)) for row in rows])


def logging_select(
    rows: Select[Any],
    *,
    person: str,
    object_id: str,
    object_type: str,
    action: str,
    order: Sequence[tuple[str, bool]],
    shown: str,
) -> Select[Any]:
    """``rows`` (ordered and limited, a page) as one PostgreSQL statement that also appends an entry for
    each of its first rows, as many as the parameter ``shown`` names, in ``order`` (column name,
    descending: a page reads one row more than it shows, to know whether there is a next): a data-modifying
    CTE, so the read and its entries are one statement, atomic in any transaction and without a round
    trip of their own. The entry's person is the row's ``person`` column, its object the row's
    ``object_id`` as text; the time, actor, role and reason are the parameters of ``logging_parameters``.
    The rows come back in ``order``. (SQLite has no data-modifying CTE: there reads buffer their entries.)"""
    page = rows.cte("read_rows")
    table: Any = AuditEvent.__table__
    by = [page.c[name].desc() if descending else page.c[name].asc() for name, descending in order]
    first_rows = (
        select(
            bindparam("audit_occurred_at", type_=table.c.occurred_at.type),
            bindparam("audit_actor_id", type_=table.c.actor_id.type),
            bindparam("audit_actor_role", type_=table.c.actor_role.type),
            page.c[person],
            literal(object_type, table.c.object_type.type),
            cast(page.c[object_id], table.c.object_id.type),
            literal(action, table.c.action.type),
            bindparam("audit_reason", type_=table.c.reason.type),
        )
        .select_from(page)
        .order_by(*by)
        .limit(bindparam(shown, type_=Integer))
    )
    entries = insert(table).from_select(list(_COLUMNS), first_rows).cte("read_entries")
    return select(page).add_cte(entries).order_by(*by)


def logging_parameters(actor_id: uuid.UUID | None, actor_role: str, reason: str | None) -> dict[str, Any]:
    """The parameters of a ``logging_select``: who reads, and why (all its entries get the same time)."""
    return {
        "audit_occurred_at": utcnow(),
        "audit_actor_id": actor_id,
        "audit_actor_role": actor_role,
        "audit_reason": reason,
    }


def buffer_entries(session: AsyncSession) -> None:
    """From now on the session's entries are kept and written by ``write_buffered`` (one INSERT for a
    whole request's reads, and on SQLite after its reads, so reading never takes the write lock)."""
    session.info.setdefault(_BUFFER, [])


def take_buffered(session: AsyncSession) -> list[tuple[Any, ...]]:
    """The entries a buffering session holds, handed over once (the caller must write them or fail)."""
    return list(session.info.pop(_BUFFER, None) or ())


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
) -> None:
    """Append one entry in the caller's transaction."""
    entry = Entry(actor_id, actor_role, person_id, object_type, object_id, action, reason)
    await record_many(session, [entry], at=at)


async def log(
    ctx: Ctx,
    *,
    person_id: uuid.UUID | None,
    object_type: str,
    object_id: str,
    action: str,
    reason: str | None = None,
) -> None:
    """Log what the context's actor does to a person's data (the usual way to write an entry)."""
    await record(
        ctx.session,
        actor_id=ctx.actor.person_id,
        actor_role=ctx.actor.role,
        person_id=person_id,
        object_type=object_type,
        object_id=object_id,
        action=action,
        reason=reason,
    )


# --- chaining (the sequencer) --------------------------------------------------------------------------


async def _become_the_sequencer(session: AsyncSession) -> bool:
    """Whether this transaction may chain (see the module docstring); on PostgreSQL it is tried, not
    waited for, and kept to the end of the transaction."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # Database transactions begin IMMEDIATE; for any other session, a write that changes nothing
        # takes the write lock before the head is read.
        await session.execute(text("UPDATE audit_event SET id = id WHERE 0"))
        return True
    if dialect != "postgresql":
        raise NotImplementedError(f"no way to serialise the access log's sequencer on {dialect}")
    locked, isolation = (
        await session.execute(
            text("SELECT pg_try_advisory_xact_lock(:key), current_setting('transaction_isolation')"),
            {"key": _SEQUENCER_LOCK},
        )
    ).one()
    if isolation == "repeatable read":
        # Its snapshot could predate rows or links committed by the sequencer before it.
        raise RuntimeError("the access log's sequencer needs READ COMMITTED, not REPEATABLE READ")
    return bool(locked)


_CHAIN = (
    update(AuditEvent.__table__)  # type: ignore[arg-type]
    .where(AuditEvent.__table__.c.id == bindparam("row_id"), AuditEvent.__table__.c.seq.is_(None))
    .values(seq=bindparam("row_seq"), prev_hash=bindparam("row_prev"), hash=bindparam("row_hash"))
)


async def chain_pending(session: AsyncSession, *, limit: int = 5000) -> int:
    """Chain up to ``limit`` committed unchained rows, oldest id first, in the caller's transaction.
    Returns how many (0 also when another sequencer holds the chain: it will do them)."""
    if not await _become_the_sequencer(session):
        return 0
    columns = [AuditEvent.id, *(getattr(AuditEvent, name) for name in _COLUMNS)]
    pending = (
        (
            await session.execute(
                select(*columns).where(AuditEvent.seq.is_(None)).order_by(AuditEvent.id).limit(limit)
            )
        )
        .mappings()
        .all()
    )
    if not pending:
        return 0
    head = (
        await session.execute(
            select(AuditEvent.seq, AuditEvent.hash)
            .where(AuditEvent.seq.is_not(None))
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        )
    ).first()
    place: int = head[0] or 0 if head is not None else 0
    previous: str | None = head[1] if head is not None else None
    links: list[dict[str, Any]] = []
    for row in pending:
        place += 1
        current = row_hash({**row, "prev_hash": previous})
        links.append({"row_id": row["id"], "row_seq": place, "row_prev": previous, "row_hash": current})
        previous = current
    # Only the sequencer chains, so every row is still unchained here; were another one to slip in,
    # the places it gave would collide with ours on the unique ``seq`` and this transaction would fail.
    await session.execute(_CHAIN, links)
    return len(links)


async def chain_all(db: Database, *, batch: int = CHAIN_BATCH) -> int:
    """Chain every row committed so far, a batch per transaction (on SQLite each batch holds the write
    lock only briefly). Returns how many; the sequencer's periodic job and ``legetime audit verify``."""
    total = 0
    while True:
        async with db.transaction() as session:
            chained = await chain_pending(session, limit=batch)
        total += chained
        if chained < batch:
            return total


async def chain_lag(session: AsyncSession) -> tuple[int, datetime | None]:
    """How many entries wait for the sequencer, and when the oldest of them was written: an operator's
    sign that it runs (normally a handful, under a second old)."""
    waiting, oldest = (
        await session.execute(
            select(func.count(), func.min(AuditEvent.occurred_at)).where(AuditEvent.seq.is_(None))
        )
    ).one()
    return int(waiting), oldest


# --- verifying -----------------------------------------------------------------------------------------


class Break(StrEnum):
    """How a walk of the chain found it broken at a row."""

    MISSING = "missing"
    LINK = "link"
    CHANGED = "changed"


BREAK_REASONS = {
    Break.MISSING: "a row is missing before it (its place in the chain skips one)",
    Break.LINK: "the link to the previous row is broken (a row removed or inserted before it)",
    Break.CHANGED: "the row was changed after it was written (its hash does not match)",
}


@dataclass(frozen=True)
class Walk:
    """Where a walk of the chain stopped: the rows found sound, the last place and hash checked, and the
    first broken row (and how) if it met one."""

    checked: int
    place: int
    head: str | None
    broken_id: int | None = None
    broken: Break | None = None


async def walk_chain(
    session: AsyncSession,
    *,
    after: int = 0,
    previous: str | None = None,
    until: int | None = None,
    limit: int | None = None,
    batch_size: int = 1000,
) -> Walk:
    """Check the chained rows in their order, a batch at a time (plain rows, not ORM objects: nothing
    piles up in the session, and what is checked is what is stored): each place follows the one before,
    each row links to its predecessor's hash, each row's hash is that of its canonical form. It starts
    after place ``after`` (whose hash is ``previous``), and stops at place ``until``, after ``limit``
    rows, at the end of the chain, or at the first broken row. From the start of the chain, a forged row
    at place 0 or below, or a gap, breaks the walk there."""
    columns = [AuditEvent.id, AuditEvent.seq, AuditEvent.hash, *(getattr(AuditEvent, n) for n in _HASHED)]
    place, checked = after, 0
    while (until is None or place < until) and (limit is None or checked < limit):
        from_start = after == 0 and checked == 0
        query = select(*columns).where(AuditEvent.seq.is_not(None) if from_start else AuditEvent.seq > place)
        if until is not None:
            query = query.where(AuditEvent.seq <= until)
        size = batch_size if limit is None else min(batch_size, limit - checked)
        rows = (await session.execute(query.order_by(AuditEvent.seq).limit(size))).mappings().all()
        if not rows:
            break
        for row in rows:
            broken = (
                Break.MISSING
                if row["seq"] != place + 1
                else Break.LINK
                if row["prev_hash"] != previous
                else Break.CHANGED
                if row_hash(row) != row["hash"]
                else None
            )
            if broken is not None:
                return Walk(checked, place, previous, row["id"], broken)
            previous, place, checked = row["hash"], row["seq"], checked + 1
    return Walk(checked, place, previous)


async def verify_chain(
    session: AsyncSession, *, expected_head: str | None = None, batch_size: int = 1000
) -> ChainReport:
    """Walk the whole chain (``walk_chain``) and report the first row whose place, link or hash is
    wrong. ``expected_head`` is a hash taken from the chain earlier and kept elsewhere: it must still be
    in the chain (rows appended since are fine), which catches the newest rows being cut off up to it.
    Rows not chained yet are counted, not checked: run ``chain_pending`` first to include them.

    Run it in its own transaction: on PostgreSQL a REPEATABLE READ one sees a single snapshot
    throughout; on SQLite ``Database`` transactions hold the write lock, so chaining waits for the walk."""
    walk = await walk_chain(session, batch_size=batch_size)
    if walk.broken is not None:
        return ChainReport(False, walk.checked, walk.broken_id, BREAK_REASONS[walk.broken])
    unchained = int(await session.scalar(select(func.count()).where(AuditEvent.seq.is_(None))) or 0)
    if expected_head is not None:
        # The walk found every chained row sound, so a chained row with that hash is in the chain.
        kept = await session.scalar(
            select(func.count()).where(AuditEvent.hash == expected_head, AuditEvent.seq.is_not(None))
        )
        if not kept:
            reason = "the expected head is not in the chain (rows cut off)"
            return ChainReport(False, walk.checked, None, reason, unchained=unchained)
    return ChainReport(True, walk.checked, head=walk.head, unchained=unchained)


async def access_log_for(
    session: AsyncSession, person_id: uuid.UUID, *, limit: int = 50, before_id: int | None = None
) -> list[AuditEvent]:
    """Who accessed a person's data, newest first, for the person's own view. Page on with the last
    row's id as ``before_id`` (ids only grow, so a page never shifts under new entries)."""
    query = select(AuditEvent).where(AuditEvent.person_id == person_id)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return list((await session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit))).all())
