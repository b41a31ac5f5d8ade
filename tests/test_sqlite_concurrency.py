"""The embedded default under concurrency: a request's reads never wait for a writer, and the writers of
one process take turns in the order they came (not in SQLite's busy handler, which sleeps and lets a late
comer overtake)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from legetime.core.platform.db.engine import Database
from legetime.core.platform.db.models import Person
from tests.migrated import upgrade
from tests.support import person_row


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'legetime.db'}"
    await asyncio.to_thread(upgrade, url)
    database = Database(url)
    yield database
    await database.dispose()


async def test_reads_do_not_wait_for_a_writer(db: Database) -> None:
    async with db.transaction() as writer:  # holds SQLite's write lock until the block ends
        writer.add(person_row("01010112345"))
        await writer.flush()
        async with db.read_sessions() as reader, reader.begin():
            async with asyncio.timeout(2):  # the busy timeout is 5 s: a read that waited would fail here
                seen = await reader.scalar(select(func.count()).select_from(Person))
        assert seen == 0  # the snapshot: the writer has not committed


async def test_writers_of_one_process_take_turns_in_order(db: Database) -> None:
    order: list[int] = []

    async def write(n: int) -> None:
        async with db.transaction() as session:
            session.add(person_row(f"0101011{n:04d}"))
            await session.flush()
            await asyncio.sleep(0.01)  # hold the lock a moment, as a request does
            order.append(n)

    tasks = []
    for n in range(8):
        tasks.append(asyncio.create_task(write(n)))
        await asyncio.sleep(0.002)  # they come one after the other
    await asyncio.gather(*tasks)
    assert order == list(range(8))
