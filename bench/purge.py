"""Benchmark: the retention purge of N expired cases, in batches, on PostgreSQL (or SQLite).

    python -m bench.purge --cases 100000 --database-url postgresql+asyncpg://postgres@127.0.0.1/legetime_bench

Creates a fresh database (PostgreSQL: drops and recreates the named one), seeds N closed cases past their
retention time — each with sealed answers, two messages and one image row — then runs the same purge as
the periodic job and `legetime purge`. Reports the total time, the rate, the longest batch (how long any
one transaction held its row locks) and the peak memory of the process. Not part of the test suite.

For a ratio that survives a noisy machine, the same run also times a baseline: a plain batched DELETE of
the same number of message rows, measured against the same database in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
import uuid
from datetime import timedelta
from pathlib import Path
from tempfile import mkdtemp

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.engine import make_url

from legetime.core.identity import persons
from legetime.core.identity.actors import SYSTEM
from legetime.core.platform.config import Settings
from legetime.core.platform.crypto import seal
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.engine import Database
from legetime.core.platform.db.migrate import upgrade
from legetime.core.platform.db.models import (
    Attachment,
    Case,
    CaseStatus,
    Message,
    ParticipantRole,
    RequesterRole,
)
from legetime.core.platform.runtime import Platform
from legetime.core.protection.retention import run_retention

SEED_BATCH = 5000


async def recreate(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    admin = Database(parsed.set(database="postgres").render_as_string(hide_password=False))
    try:
        async with admin.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
            await connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        await admin.dispose()


async def seed(platform: Platform, cases: int, prefix: str = "B") -> None:
    from legetime.core.protection import content

    ring = platform.keyring
    ended = utcnow() - timedelta(days=200)
    async with platform.db.transaction() as session:
        patient = await persons.find_person(session, platform, "17889200022")
        if patient is None:
            patient = persons.new_person(
                platform, "17889200022", given_name="Bench", family_name="Mark", birth_date=ended.date()
            )
            session.add(patient)
    for start in range(0, cases, SEED_BATCH):
        case_rows, message_rows, image_rows = [], [], []
        for i in range(start, min(start + SEED_BATCH, cases)):
            case = Case(id=uuid.uuid4())
            content.give_case_keys(ring, case)
            key = content.communication_key(ring, case)
            case_rows.append(
                {
                    "id": case.id,
                    "number": f"LT-{prefix}{i:07d}",
                    "subject_id": patient.id,
                    "requester_id": patient.id,
                    "requester_role": RequesterRole.SELF,
                    "status": CaseStatus.CLOSED,
                    "answers_sealed": seal(
                        key, b'{"main_complaint": "bench"}', f"legetime:{case.id}:answers".encode()
                    ),
                    "communication_key_id": case.communication_key_id,
                    "communication_key": case.communication_key,
                    "record_key_id": case.record_key_id,
                    "record_key": case.record_key,
                    "price_amount": 35000,
                    "price_currency": "NOK",
                    "submitted_at": ended - timedelta(hours=2),
                    "answered_at": ended - timedelta(hours=1),
                    "closed_at": ended,
                    "retention_until": ended + timedelta(days=92),
                    "created_at": ended - timedelta(hours=3),
                    "updated_at": ended,
                    "version": 1,
                }
            )
            for n in range(2):
                message_rows.append(
                    {
                        "id": uuid.uuid4(),
                        "case_id": case.id,
                        "author_id": patient.id,
                        "author_role": ParticipantRole.PATIENT,
                        "kind": "message",
                        "body_sealed": seal(
                            key, f"melding {n}".encode(), f"legetime:{case.id}:message".encode()
                        ),
                        "withheld_from_guardian": False,
                        "created_at": ended,
                    }
                )
            image_rows.append(
                {
                    "id": uuid.uuid4(),
                    "case_id": case.id,
                    "uploaded_by_id": patient.id,
                    "storage_provider": "local",
                    "storage_key": f"bench/{case.id.hex}.sealed",  # no file: deletion finds nothing to delete
                    "content_type": "image/jpeg",
                    "size_bytes": 1000,
                    "width": 10,
                    "height": 10,
                    "sha256": "0" * 64,
                    "sealed": True,
                    "created_at": ended,
                }
            )
        async with platform.db.transaction() as session:
            await session.execute(insert(Case), case_rows)
            await session.execute(insert(Message), message_rows)
            await session.execute(insert(Attachment), image_rows)


async def baseline(platform: Platform, batch: int) -> float:
    """A plain batched DELETE of every message row: what the database alone costs, for the ratio."""
    started = time.perf_counter()
    while True:
        async with platform.db.transaction() as session:
            ids = (await session.scalars(select(Message.id).limit(batch))).all()
            if not ids:
                break
            await session.execute(delete(Message).where(Message.id.in_(ids)))
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--database-url", default=os.environ.get("LEGETIME_BENCH_DATABASE_URL"))
    args = parser.parse_args()
    data_dir = Path(mkdtemp(prefix="legetime-bench-"))
    url = args.database_url or f"sqlite+aiosqlite:///{data_dir / 'bench.db'}"
    await recreate(url)
    await asyncio.to_thread(upgrade, url)
    settings = Settings(data_dir=data_dir, database_url=url, purge_batch_size=args.batch_size)
    platform = Platform.create(settings, load_entry_points=False)

    seeding = time.perf_counter()
    await seed(platform, args.cases)
    print(f"seeded {args.cases} expired cases in {time.perf_counter() - seeding:.1f} s")

    batches: list[float] = []
    last = [time.perf_counter()]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if done:
            batches.append(now - last[0])
        last[0] = now

    started = time.perf_counter()
    summary = await run_retention(platform, actor=SYSTEM, trigger="bench", progress=progress)
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    async with platform.db.transaction() as session:
        left = await session.scalar(select(func.count()).select_from(Message))
        purged = await session.scalar(select(func.count()).where(Case.purged_at.is_not(None)))
    assert left == 0 and purged == args.cases, (left, purged)

    # The baseline: the same number of message rows again, deleted plainly.
    await seed(platform, args.cases, prefix="C")
    base = await baseline(platform, args.batch_size * 2)
    await platform.close()

    print(f"database: {make_url(url).get_backend_name()}, batch size {args.batch_size}")
    print(f"purged {summary.cases} cases ({summary.messages} messages, {summary.images} images)")
    print(f"time: {elapsed:.1f} s, {summary.cases / elapsed:.0f} cases/s")
    print(f"longest batch (row locks held): {max(batches):.2f} s over {len(batches)} batches")
    print(f"peak memory (max RSS): {peak_mb:.0f} MB")
    print(f"baseline, a plain batched DELETE of {2 * args.cases} messages: {base:.1f} s")
    print(f"ratio purge/baseline: {elapsed / base:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
