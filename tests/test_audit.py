"""The access log: append-only and hash-chained, on SQLite and PostgreSQL. The chain detects a changed,
deleted or forged row; a rolled-back change leaves no entry; concurrent appends never fork the chain."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select, text

from core import audit
from core.db.engine import Database
from core.db.models import AuditEvent


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def _append(db: Database, n: int, person: uuid.UUID | None = None) -> None:
    for i in range(n):
        async with db.transaction() as session:
            await audit.record(
                session,
                actor_id=None,
                actor_role="clinician",
                person_id=person,
                object_type="case",
                object_id=str(i),
                action="read",
                reason="treatment",
            )


async def _verify(db: Database) -> audit.ChainReport:
    async with db.transaction() as session:
        return await audit.verify_chain(session, batch_size=3)


async def test_an_intact_chain_verifies(db: Database) -> None:
    await _append(db, 7)
    report = await _verify(db)
    assert report == audit.ChainReport(ok=True, checked=7)


async def test_a_rolled_back_change_leaves_no_entry(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await audit.record(
                session,
                actor_id=None,
                actor_role="patient",
                person_id=None,
                object_type="case",
                object_id="x",
                action="read",
            )
            raise RuntimeError("the change failed")
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEvent)) == 0


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("UPDATE audit_event SET action = 'nothing' WHERE id = :id", "changed"),
        ("UPDATE audit_event SET actor_role = 'patient' WHERE id = :id", "changed"),
        ("DELETE FROM audit_event WHERE id = :id", "link"),
    ],
)
async def test_tampering_is_found_at_the_first_broken_row(db: Database, tamper: str, reason: str) -> None:
    await _append(db, 6)
    async with db.transaction() as session:
        ids = list((await session.scalars(select(AuditEvent.id).order_by(AuditEvent.id))).all())
        await session.execute(text(tamper), {"id": ids[3]})
    report = await _verify(db)
    assert not report.ok and reason in (report.reason or "")
    assert report.first_broken_id == (ids[3] if "UPDATE" in tamper else ids[4])
    assert report.checked == 3


async def test_a_forged_row_is_found(db: Database) -> None:
    await _append(db, 3)
    async with db.transaction() as session:
        last = await session.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
        assert last is not None
        await session.execute(
            text(
                "INSERT INTO audit_event "
                "(occurred_at, actor_role, object_type, object_id, action, prev_hash, hash) "
                "VALUES (:at, 'clinician', 'case', 'x', 'read', :prev, :hash)"
            ),
            {"at": last.occurred_at, "prev": last.hash, "hash": "0" * 64},
        )
    report = await _verify(db)
    assert not report.ok and report.checked == 3


async def test_missing_newest_rows_need_the_expected_head(db: Database) -> None:
    await _append(db, 3)
    async with db.transaction() as session:
        head = await session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
        newest = await session.scalar(select(func.max(AuditEvent.id)))
        await session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": newest})
    assert (await _verify(db)).ok  # the chain alone cannot tell
    async with db.transaction() as session:
        assert not (await audit.verify_chain(session, expected_head=head)).ok


async def test_concurrent_appends_never_fork_the_chain(db: Database) -> None:
    async def one(i: int) -> None:
        async with db.transaction() as session:
            await audit.record(
                session,
                actor_id=None,
                actor_role="clinician",
                person_id=None,
                object_type="case",
                object_id=str(i),
                action="read",
            )
            await asyncio.sleep(0.01)  # hold the transaction open a moment

    await asyncio.gather(*(one(i) for i in range(20)))
    report = await _verify(db)
    assert report.ok and report.checked == 20
    async with db.transaction() as session:
        links = (await session.scalars(select(AuditEvent.prev_hash))).all()
    assert len(set(links)) == 20


async def test_the_orm_refuses_changes(db: Database) -> None:
    await _append(db, 1)
    with pytest.raises(PermissionError):
        async with db.transaction() as session:
            row = await session.scalar(select(AuditEvent))
            assert row is not None
            row.action = "nothing"
    with pytest.raises(PermissionError):
        async with db.transaction() as session:
            await session.delete(await session.scalar(select(AuditEvent)))


async def test_a_persons_own_log_newest_first(db: Database) -> None:
    me, other = uuid.uuid4(), uuid.uuid4()
    from core.db.models import Person

    async with db.transaction() as session:
        from datetime import date

        for pid, nid in ((me, "12819000059"), (other, "03838500063")):
            session.add(
                Person(id=pid, national_id=nid, given_name="A", family_name="B", birth_date=date(1990, 1, 1))
            )
    await _append(db, 3, me)
    await _append(db, 2, other)
    async with db.transaction() as session:
        mine = await audit.access_log_for(session, me, limit=2)
        older = await audit.access_log_for(session, me, limit=10, before_id=mine[-1].id)
    assert [e.object_id for e in mine] == ["2", "1"] and [e.object_id for e in older] == ["0"]
