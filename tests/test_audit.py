"""The access log: append-only and hash-chained, on SQLite and PostgreSQL. Appends are plain inserts
that never wait for each other; the sequencer chains them in commit order. The chain finds a changed,
deleted or forged row; a rolled-back change leaves no entry; concurrent sequencers never fork it."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from legetime.core.platform.db.engine import Database
from legetime.core.platform.db.models import AuditEvent, Person
from legetime.core.protection import audit
from tests.migrated import upgrade
from tests.support import person_row


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def _person(db: Database) -> uuid.UUID:
    async with db.transaction() as session:
        person = person_row(str(uuid.uuid4().int)[:11])
        session.add(person)
        await session.flush()
        return person.id


async def _log(session: AsyncSession, i: int, person: uuid.UUID | None = None) -> None:
    await audit.record(
        session,
        actor_id=person,
        actor_role="clinician",
        person_id=person,
        object_type="case",
        object_id=str(i),
        action="read",
        reason="treatment",
    )


async def _chain_order(db: Database) -> list[AuditEvent]:
    async with db.sessions() as session:
        query = select(AuditEvent).where(AuditEvent.seq.is_not(None)).order_by(AuditEvent.seq)
        return list((await session.scalars(query)).all())


async def _append(db: Database, n: int, person: uuid.UUID | None = None) -> list[AuditEvent]:
    """``n`` entries, a transaction each, then chained; the rows as chained."""
    for i in range(n):
        async with db.transaction() as session:
            await _log(session, i, person)
    await audit.chain_all(db)
    return (await _chain_order(db))[-n:] if n else []


async def _verify(db: Database, expected_head: str | None = None) -> audit.ChainReport:
    async with db.transaction() as session:
        return await audit.verify_chain(session, expected_head=expected_head, batch_size=3)


async def _ids(db: Database) -> list[int]:
    async with db.transaction() as session:
        return list((await session.scalars(select(AuditEvent.id).order_by(AuditEvent.id))).all())


# --- the canonical form ------------------------------------------------------------------------------


def test_the_canonical_form_is_pinned() -> None:
    """A storage format: if this fails, every stored hash would stop verifying. Add a new version instead."""
    row = {
        "occurred_at": datetime(2026, 3, 1, 9, 30, 0, 120, tzinfo=timezone(timedelta(hours=1))),
        "actor_id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "actor_role": "clinician",
        "person_id": None,
        "object_type": "case",
        "object_id": "LT-ABC123",
        "action": "read",
        "reason": "behandling på legekontoret",
        "prev_hash": "ab" * 32,
    }
    expected = (
        '{"action":"read","actor_id":"12345678-1234-5678-1234-567812345678","actor_role":"clinician",'
        '"object_id":"LT-ABC123","object_type":"case","occurred_at":"2026-03-01T08:30:00.000120Z",'
        '"person_id":null,"prev_hash":"' + "ab" * 32 + '","reason":"behandling p\\u00e5 legekontoret","v":1}'
    ).encode()
    assert audit.canonical(row) == expected
    assert audit.row_hash(row) == hashlib.sha256(expected).hexdigest()


async def test_a_row_hashes_the_same_read_back(db: Database) -> None:
    """The time survives the database with its microseconds and as UTC, so the stored hash recomputes."""
    at = datetime(2026, 3, 1, 9, 30, 0, 987654, tzinfo=timezone(timedelta(hours=1)))
    async with db.transaction() as session:
        await _log(session, 1)
        await audit.record(
            session,
            actor_id=None,
            actor_role="operator",
            person_id=None,
            object_type="case",
            object_id="x",
            action="read",
            at=at,
        )
    assert await audit.chain_all(db) == 2
    stored = await _chain_order(db)
    assert stored[0].prev_hash is None and stored[1].prev_hash == stored[0].hash
    assert stored[1].occurred_at == at and stored[1].occurred_at.tzinfo == UTC
    assert [audit.row_hash(row) for row in stored] == [row.hash for row in stored]


async def test_a_naive_time_is_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="naive"):
        async with db.transaction() as session:
            await audit.record(
                session,
                actor_id=None,
                actor_role="operator",
                person_id=None,
                object_type="case",
                object_id="x",
                action="read",
                at=datetime(2026, 3, 1, 9, 30),
            )


# --- appending and chaining ----------------------------------------------------------------------------


async def test_an_intact_chain_verifies(db: Database) -> None:
    rows = await _append(db, 7)
    report = await _verify(db)
    assert report == audit.ChainReport(ok=True, checked=7, head=rows[-1].hash)
    assert [row.prev_hash for row in rows[1:]] == [row.hash for row in rows[:-1]]
    assert [row.seq for row in rows] == list(range(1, 8))


async def test_an_empty_log_verifies(db: Database) -> None:
    assert await _verify(db) == audit.ChainReport(ok=True, checked=0)
    assert await audit.chain_all(db) == 0


async def test_rows_are_written_unchained_and_counted_until_the_sequencer_runs(db: Database) -> None:
    rows = await _append(db, 2)
    async with db.transaction() as session:
        await _log(session, 3)
        await _log(session, 4)
    report = await _verify(db)
    assert (report.ok, report.checked, report.head, report.unchained) == (True, 2, rows[-1].hash, 2)
    assert await audit.chain_all(db, batch=1) == 2  # a batch per transaction, until none is left
    assert await _verify(db) == audit.ChainReport(ok=True, checked=4, head=(await _chain_order(db))[-1].hash)


async def test_the_entry_shares_the_fate_of_the_change(db: Database) -> None:
    """Written in the caller's transaction: rolled back with the change, committed with it."""
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            session.add(person_row("11111111111"))
            await _log(session, 1)
            raise RuntimeError("the change failed")
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEvent)) == 0
        assert await session.scalar(select(func.count()).select_from(Person)) == 0
    person = await _person(db)
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).where(AuditEvent.person_id == person)) == 0
        await _log(session, 1, person)
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).where(AuditEvent.person_id == person)) == 1
    await audit.chain_all(db)
    assert (await _verify(db)).ok


async def test_several_entries_in_one_insert_chain_in_order(db: Database) -> None:
    entries = [audit.Entry(None, "clinician", None, "case", str(i), "list") for i in range(5)]
    async with db.transaction() as session:
        await _log(session, 99)
        await audit.record_many(session, entries)
        await audit.record_many(session, [])
    await audit.chain_all(db)
    rows = await _chain_order(db)
    assert [row.object_id for row in rows] == ["99"] + [str(i) for i in range(5)]
    assert await _verify(db) == audit.ChainReport(ok=True, checked=6, head=rows[-1].hash)


# --- tampering (raw SQL: the ORM refuses, the threat is someone writing the table directly) ----------


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("UPDATE audit_event SET action = 'nothing' WHERE id = :id", "changed"),
        ("UPDATE audit_event SET actor_role = 'patient' WHERE id = :id", "changed"),
        ("UPDATE audit_event SET actor_id = NULL WHERE id = :id", "changed"),
        ("UPDATE audit_event SET reason = NULL WHERE id = :id", "changed"),
        (
            "UPDATE audit_event SET occurred_at = (SELECT MIN(occurred_at) FROM audit_event) WHERE id = :id",
            "changed",
        ),
        ("UPDATE audit_event SET prev_hash = NULL WHERE id = :id", "link"),
        ("UPDATE audit_event SET seq = seq + 100 WHERE id = :id", "missing"),
    ],
)
async def test_a_changed_row_is_found_where_it_was_changed(db: Database, tamper: str, reason: str) -> None:
    await _append(db, 6, await _person(db))
    ids = await _ids(db)
    async with db.transaction() as session:
        assert (await session.execute(text(tamper), {"id": ids[3]})).rowcount == 1  # type: ignore[attr-defined]
    report = await _verify(db)
    assert not report.ok and reason in (report.reason or "")
    moved = reason == "missing"  # a row moved out of its place is missed where it was: at the next one
    assert (report.first_broken_id, report.checked, report.head) == (ids[4] if moved else ids[3], 3, None)


async def test_a_deleted_row_is_found_at_the_next_one(db: Database) -> None:
    await _append(db, 6)
    ids = await _ids(db)
    async with db.transaction() as session:
        await session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": ids[3]})
    report = await _verify(db)
    assert not report.ok and "missing" in (report.reason or "")
    assert (report.first_broken_id, report.checked) == (ids[4], 3)


async def test_a_deleted_row_renumbered_over_is_found_by_its_link(db: Database) -> None:
    await _append(db, 6)
    ids = await _ids(db)
    async with db.transaction() as session:
        await session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": ids[3]})
        await session.execute(text("UPDATE audit_event SET seq = seq - 1 WHERE id > :id"), {"id": ids[3]})
    report = await _verify(db)
    assert not report.ok and "link" in (report.reason or "")
    assert (report.first_broken_id, report.checked) == (ids[4], 3)


async def test_deleting_the_oldest_rows_is_found(db: Database) -> None:
    await _append(db, 4)
    ids = await _ids(db)
    async with db.transaction() as session:
        await session.execute(text("DELETE FROM audit_event WHERE id <= :id"), {"id": ids[1]})
    report = await _verify(db)
    assert (report.ok, report.first_broken_id, report.checked) == (False, ids[2], 0)


def _forged(prev_hash: str | None, **values: Any) -> dict[str, Any]:
    """A row whose own hash is right: someone who can write the table can compute it too."""
    row: dict[str, Any] = {
        "occurred_at": datetime.now(UTC),
        "actor_id": None,
        "actor_role": "clinician",
        "person_id": None,
        "object_type": "case",
        "object_id": "forged",
        "action": "read",
        "reason": None,
        "prev_hash": prev_hash,
        **values,
    }
    return row | {"hash": audit.row_hash(row)}


async def test_a_forged_row_is_found(db: Database) -> None:
    """With a made-up hash at the end, found at itself; in place of a deleted row, found at the row after
    it, whose link it cannot match; before the first row, found at itself (the chain starts at 1)."""
    rows = await _append(db, 5)
    ids = [row.id for row in rows]
    async with db.transaction() as session:
        forged = _forged(rows[-1].hash) | {"hash": "0" * 64, "seq": 6}
        await session.execute(insert(AuditEvent).values(forged))
    report = await _verify(db)
    assert (report.ok, report.checked) == (False, 5) and "changed" in (report.reason or "")

    async with db.transaction() as session:
        await session.execute(text("DELETE FROM audit_event WHERE object_id = 'forged'"))
        await session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": ids[2]})
        await session.execute(insert(AuditEvent).values(_forged(rows[1].hash) | {"id": ids[2], "seq": 3}))
    report = await _verify(db)
    assert (report.ok, report.first_broken_id, report.checked) == (False, ids[3], 3)

    async with db.transaction() as session:
        await session.execute(text("DELETE FROM audit_event WHERE object_id = 'forged'"))
        await session.execute(insert(AuditEvent).values(_forged(None) | {"id": 0, "seq": 0}))
    report = await _verify(db)
    assert (report.ok, report.first_broken_id, report.checked) == (False, 0, 0)


async def test_verify_reads_what_is_stored_not_what_the_session_holds(db: Database) -> None:
    await _append(db, 3)
    async with db.transaction() as session:
        loaded = (await session.scalars(select(AuditEvent))).all()
        await session.execute(
            text("UPDATE audit_event SET action = 'nothing' WHERE id = :id"), {"id": loaded[1].id}
        )
        report = await audit.verify_chain(session)
        assert (report.ok, report.first_broken_id) == (False, loaded[1].id)
        assert all(row in session for row in loaded)  # the caller's session is left as it was


async def test_cut_off_newest_rows_need_a_head_kept_elsewhere(db: Database) -> None:
    rows = await _append(db, 3)
    anchor = (await _verify(db)).head
    assert anchor == rows[-1].hash
    await _append(db, 2)
    assert (await _verify(db, expected_head=anchor)).ok  # rows appended since the anchor are fine
    async with db.transaction() as session:
        await session.execute(text("DELETE FROM audit_event WHERE id >= :id"), {"id": rows[-1].id})
    assert (await _verify(db)).ok  # the chain alone cannot tell
    report = await _verify(db, expected_head=anchor)
    assert (report.ok, report.checked, report.first_broken_id) == (False, 2, None)
    assert "expected head" in (report.reason or "")


# --- concurrency -------------------------------------------------------------------------------------


async def _append_concurrently(sessions: async_sessionmaker[AsyncSession], n: int) -> None:
    async def one(i: int) -> None:
        async with sessions() as session, session.begin():
            await session.execute(
                select(func.count()).select_from(AuditEvent)
            )  # a read before, as callers do
            await _log(session, i)
            await asyncio.sleep(0.01)  # hold the transaction open

    await asyncio.gather(*(one(i) for i in range(n)))


async def _assert_one_unforked_chain(sessions: async_sessionmaker[AsyncSession], n: int) -> None:
    async with sessions() as session, session.begin():
        report = await audit.verify_chain(session, batch_size=7)
        links = (await session.scalars(select(AuditEvent.prev_hash))).all()
    assert (report.ok, report.checked, report.unchained) == (True, n, 0), report
    assert len(links) == len(set(links)) == n  # no two rows name the same predecessor


async def test_concurrent_sequencers_never_fork_the_chain(database_url: str) -> None:
    """Appends from several transactions at once, chained by several sequencers at once (as several
    worker processes run them), in small batches so that they take turns."""
    databases = [Database(database_url) for _ in range(3)]
    try:
        await _append_concurrently(databases[0].sessions, 20)
        await asyncio.gather(*(audit.chain_all(db, batch=3) for db in databases))
        await audit.chain_all(databases[0])  # whatever a sequencer that found the lock taken left
        await _assert_one_unforked_chain(databases[0].sessions, 20)
    finally:
        for db in databases:
            await db.dispose()


def test_appends_do_not_wait_for_each_other_on_postgresql(fresh_postgres_url: str) -> None:
    """No lock on the hot path: one transaction's append does not wait for another still open, and the
    row committed first is chained first, whatever their ids (commit order)."""
    upgrade(fresh_postgres_url)
    asyncio.run(_append_while_another_is_open(Database(fresh_postgres_url)))


async def _append_while_another_is_open(db: Database) -> None:
    try:
        async with db.sessions() as slow, slow.begin():
            await _log(slow, 1)  # the lower id, still uncommitted
            async with asyncio.timeout(5):
                async with db.transaction() as fast:
                    await _log(fast, 2)
            assert await audit.chain_all(db) == 1  # the committed one only
        assert await audit.chain_all(db) == 1
        chained = await _chain_order(db)
        assert [row.object_id for row in chained] == ["2", "1"] and chained[0].id > chained[1].id
        assert (await _verify(db)).ok
    finally:
        await db.dispose()


@pytest.fixture
def plain_sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'plain.db'}"
    upgrade(url)
    return url


async def test_chaining_on_a_default_sqlite_engine(plain_sqlite_url: str) -> None:
    """Without ``Database``'s BEGIN IMMEDIATE, SQLAlchemy's default pysqlite handling runs the head read
    outside any transaction; the no-op write before it is what makes the sequencer the only one."""
    engine = create_async_engine(plain_sqlite_url)
    try:
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        await _append_concurrently(sessions, 20)

        async def chain() -> None:
            async with sessions() as session, session.begin():
                await audit.chain_pending(session, limit=4)

        for _ in range(3):
            await asyncio.gather(*(chain() for _ in range(3)))
        await _assert_one_unforked_chain(sessions, 20)
    finally:
        await engine.dispose()


def test_repeatable_read_is_refused_on_postgresql(fresh_postgres_url: str) -> None:
    """A REPEATABLE READ snapshot could predate the previous sequencer's links: refuse, don't fork."""
    upgrade(fresh_postgres_url)

    async def attempt() -> None:
        db = Database(fresh_postgres_url)
        try:
            async with db.transaction() as session:
                await _log(session, 1)
            async with db.sessions() as session:
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                with pytest.raises(RuntimeError, match="READ COMMITTED"):
                    await audit.chain_pending(session)
                await session.rollback()
        finally:
            await db.dispose()

    asyncio.run(attempt())


# --- the ORM and the patient's view ------------------------------------------------------------------


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
    assert (await _verify(db)).ok


async def test_a_persons_own_log_newest_first_in_pages(db: Database) -> None:
    me, other = await _person(db), await _person(db)
    await _append(db, 3, me)
    await _append(db, 2, other)
    await _append(db, 2, me)
    async with db.transaction() as session:
        first = await audit.access_log_for(session, me, limit=3)
        second = await audit.access_log_for(session, me, limit=3, before_id=first[-1].id)
        third = await audit.access_log_for(session, me, limit=3, before_id=second[-1].id)
        everything = await audit.access_log_for(session, me)
    assert [e.object_id for e in first] == ["1", "0", "2"]
    assert [e.object_id for e in second] == ["1", "0"] and third == []
    assert everything == first + second
    assert all(e.person_id == me for e in everything)
    assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)


# --- through the public surfaces: the CLI and the patient's own log --------------------------------


def test_legetime_audit_verify(tmp_path: Path) -> None:
    from tests.cli import run_cli

    env = {"LEGETIME_DATA_DIR": str(tmp_path)}
    assert run_cli("migrate", env=env).returncode == 0
    url = f"sqlite+aiosqlite:///{(tmp_path / 'legetime.db').resolve()}"

    async def fill_and_tamper(tamper: bool) -> None:
        database = Database(url)
        try:
            if not tamper:  # written, not chained: the command chains them before it checks
                for i in range(4):
                    async with database.transaction() as session:
                        await _log(session, i)
                return
            async with database.transaction() as session:
                await session.execute(text("UPDATE audit_event SET action = 'nothing' WHERE id = 3"))
        finally:
            await database.dispose()

    asyncio.run(fill_and_tamper(False))
    intact = run_cli("audit", "verify", env=env)
    assert intact.returncode == 0 and "4 entries" in intact.stdout
    asyncio.run(fill_and_tamper(True))
    broken = run_cli("audit", "verify", env=env)
    assert broken.returncode == 1
    assert "at entry 3" in " ".join(broken.stderr.split())


def test_a_patient_sees_who_accessed_her_data_and_nobody_elses(embedded: Any) -> None:
    from legetime.core.demo import DEMO_PEOPLE
    from tests.api import complete_answers

    api = embedded[0]
    mother, clinician = api.login(DEMO_PEOPLE[2].national_id), api.login(DEMO_PEOPLE[0].national_id)
    case_id = api.ok("startCase", {}, "case { id }", mother)["case"]["id"]
    api.ok(
        "answerQuestionnaire",
        {"caseId": case_id, "answers": complete_answers(api, for_child=False)},
        "case { id }",
        mother,
    )
    version = api.gql("{ consentTexts { version } }")["consentTexts"][0]["version"]
    api.ok(
        "grantConsent",
        {"purpose": "COMMUNICATION_STORAGE", "textVersion": version},
        "consent { granted }",
        mother,
    )
    api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "k"}, "case { id }", mother)
    api.gql("query($id: ID!) { case(id: $id) { number } }", clinician, id=case_id)  # the doctor looks
    log = api.gql("{ myAccessLog { actorName actorRole action reason } }", mother)["myAccessLog"]
    assert {
        "actorName": DEMO_PEOPLE[0].name,  # as the (simulated) BankID names her
        "actorRole": "clinician",
        "action": "read",
        "reason": "treatment",
    } in log
    theirs = api.gql("{ myAccessLog { actorName action } }", clinician)["myAccessLog"]
    assert all(entry["action"] != "submit" for entry in theirs)  # the clinician sees her own log only
    assert api.raw("{ myAccessLog { action } }")["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_a_requests_reads_are_logged_before_the_answer_and_chained_soon_after(embedded: Any) -> None:
    """The answer is sent after its entries committed; the running platform's sequencer chains them
    within about a second (its periodic job), with no command run."""
    from legetime.core.demo import DEMO_PEOPLE

    api, platform = embedded
    mother = api.login(DEMO_PEOPLE[2].national_id)
    case_id = api.ok("startCase", {}, "case { id }", mother)["case"]["id"]
    db = Database(platform.settings.resolved_database_url)

    async def entries() -> tuple[int, audit.ChainReport]:
        async with db.transaction() as session:
            reads = await session.scalar(
                select(func.count()).where(AuditEvent.object_type == "case", AuditEvent.action == "read")
            )
            return int(reads or 0), await audit.verify_chain(session)

    try:
        before, _ = asyncio.run(entries())
        api.gql("query($id: ID!) { case(id: $id) { number } }", mother, id=case_id)
        after, report = asyncio.run(entries())
        assert after == before + 1  # there as soon as the answer is
        for _ in range(50):
            if report.unchained == 0:
                break
            time.sleep(0.1)
            _, report = asyncio.run(entries())
        assert report.ok and report.unchained == 0 and report.checked >= after, report
        operator = api.login(DEMO_PEOPLE[1].national_id)  # logged: one more entry to chain
        query = "{ operatorOverview { accessLogChain { unchained oldestUnchainedAt } } }"
        for _ in range(50):
            chain = api.gql(query, operator)["operatorOverview"]["accessLogChain"]
            if chain["unchained"] == 0:
                break
            time.sleep(0.1)
        assert chain == {"unchained": 0, "oldestUnchainedAt": None}
    finally:
        asyncio.run(db.dispose())


def test_operators_see_entries_waiting_for_the_sequencer(served: Any) -> None:
    """Without a sequencer running (jobs off), entries wait, and the operator's overview shows it."""
    from legetime.core.demo import DEMO_PEOPLE

    api, _ = served
    mother, operator = api.login(DEMO_PEOPLE[2].national_id), api.login(DEMO_PEOPLE[1].national_id)
    api.ok("startCase", {}, "case { id }", mother)
    chain = api.gql("{ operatorOverview { accessLogChain { unchained oldestUnchainedAt } } }", operator)
    waiting = chain["operatorOverview"]["accessLogChain"]
    assert waiting["unchained"] >= 1 and waiting["oldestUnchainedAt"] is not None
