"""A backlog goes out as messages of several jobs (``runner.run_jobs``): each job still runs at most once
to completion, a failing one rolls back only its own work and comes back after a backoff, a redelivered
message skips what is done — on SQLite and PostgreSQL, on the in-process broker and on Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from legetime.core.hookspecs import hookimpl
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import OutboxJob, OutboxStatus
from legetime.core.platform.jobs.outbox import enqueue
from legetime.core.platform.jobs.runner import MAX_JOBS_PER_MESSAGE, SPREAD, backoff, messages_for, run_jobs
from legetime.core.platform.jobs.types import JobContext, JobFailed
from tests import test_jobs_outbox

broker_url, jobs = test_jobs_outbox.broker_url, test_jobs_outbox.jobs  # the fixtures, shared


@pytest.mark.parametrize(
    ("jobs_relayed", "sizes"),
    [
        (1, [1]),
        (SPREAD, [1] * SPREAD),  # a few: one message each, as many workers as there are
        (SPREAD * 3, [3] * SPREAD),
        (2000, [MAX_JOBS_PER_MESSAGE] * 40),  # a backlog: full messages
    ],
)
def test_a_backlog_is_sent_in_messages_of_several_jobs(jobs_relayed: int, sizes: list[int]) -> None:
    ids = [str(i) for i in range(jobs_relayed)]
    messages = messages_for(ids)
    assert [len(m) for m in messages] == sizes
    assert [job for m in messages for job in m] == ids  # every job once, in the relay's order


class Batch:
    """Records each run; ``n`` = -1 fails (a retry may help), -2 gives up (``JobFailed``). Each run first
    does work of its own (a row), which a failure must roll back."""

    def __init__(self) -> None:
        self.runs: list[int] = []

    @hookimpl
    def register_jobs(self) -> dict[str, Any]:
        async def maybe_fail(ctx: JobContext, payload: dict[str, Any]) -> None:
            ctx.session.add(OutboxJob(name="test.side_effect", payload={"of": payload["n"]}))
            await ctx.session.flush()
            if payload["n"] == -1:
                raise RuntimeError("provider timed out")
            if payload["n"] == -2:
                raise JobFailed("PROVIDER_REFUSED")
            self.runs.append(payload["n"])

        return {"test.record": maybe_fail}


async def _until(done: Callable[[], bool], within: float = 30) -> None:
    for _ in range(int(within / 0.05)):
        if done():
            return
        await asyncio.sleep(0.05)


async def _settled(platform: Any) -> dict[int, OutboxJob]:
    """The jobs' rows once every batch has committed (no row is still relayed): a handler's run is
    recorded before its batch commits."""
    for _ in range(600):
        rows = await _rows(platform)
        if all(row.status is not OutboxStatus.RELAYED for row in rows.values()):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError("the batches did not finish")


async def _enqueued(platform: Any, numbers: list[int]) -> list[str]:
    async with platform.db.transaction() as session:
        return [str((await enqueue(session, "test.record", {"n": n})).id) for n in numbers]


async def _rows(platform: Any, name: str = "test.record") -> dict[int, OutboxJob]:
    async with platform.db.transaction() as session:
        rows = (await session.scalars(select(OutboxJob).where(OutboxJob.name == name))).all()
        return {int(row.payload.get("n", row.payload.get("of", 0))): row for row in rows}


async def test_one_message_runs_each_job_once_and_a_failure_only_undoes_its_own(
    database_url: str, tmp_path: Any
) -> None:
    from legetime.core.platform.config import Settings
    from legetime.core.platform.runtime import Platform

    recorder = Batch()
    platform = Platform.create(
        Settings(data_dir=tmp_path / "data", database_url=database_url),
        extra_plugins=[recorder],
        load_entry_points=False,
    )
    try:
        ids = await _enqueued(platform, [1, -1, 2, -2, 3])
        before = utcnow()
        await run_jobs(platform, platform.db, ids)
        assert recorder.runs == [1, 2, 3]  # in the message's order
        rows = await _rows(platform)
        assert {n: rows[n].status for n in rows} == {
            1: OutboxStatus.DONE,
            2: OutboxStatus.DONE,
            3: OutboxStatus.DONE,
            -1: OutboxStatus.PENDING,  # back in the outbox, due after its backoff
            -2: OutboxStatus.FAILED,  # the handler said retrying will not help
        }
        assert rows[-1].attempts == 1 and rows[-1].last_error == "RuntimeError: provider timed out"
        assert rows[-1].available_at >= before + backoff(1)
        assert rows[-2].last_error == "PROVIDER_REFUSED"
        side_effects = await _rows(platform, "test.side_effect")
        assert sorted(side_effects) == [1, 2, 3]  # the failed ones' work was rolled back with them

        # The same message delivered again: nothing runs twice; the one due later is not run early.
        await run_jobs(platform, platform.db, ids)
        assert recorder.runs == [1, 2, 3]
        assert (await _rows(platform))[-1].attempts == 2  # claimed again: it was pending
    finally:
        await platform.close()


async def test_a_backlog_on_the_workers_runs_every_job_exactly_once(jobs: Any) -> None:
    platform, runner, recorder = jobs
    count = SPREAD * MAX_JOBS_PER_MESSAGE + 7
    async with platform.db.transaction() as session:
        for n in range(count):
            await enqueue(session, "test.record", {"n": n})
    sent: list[list[str]] = []
    original = runner.batch_actor.send

    def counting(group: list[str]) -> Any:
        sent.append(group)
        return original(group)

    runner.batch_actor.send = counting  # type: ignore[method-assign]
    assert await runner.relay() == count
    assert sent and max(len(group) for group in sent) == MAX_JOBS_PER_MESSAGE
    await _until(lambda: len(recorder.runs) >= count, within=60)
    rows = await _settled(platform)
    await asyncio.sleep(0.3)  # a (wrong) second run would show up now
    assert sorted(recorder.runs) == list(range(count))
    assert {row.status for row in rows.values()} == {OutboxStatus.DONE}


async def test_a_job_a_batch_put_back_is_relayed_again_when_due(jobs: Any) -> None:
    platform, runner, recorder = jobs
    recorder.fail_first = 1
    ids = await _enqueued(platform, list(range(SPREAD * 2)))
    assert await runner.relay() == len(ids)
    await _until(lambda: len(recorder.runs) >= len(ids) - 1)
    [failed] = [row for row in (await _settled(platform)).values() if row.status is OutboxStatus.PENDING]
    assert failed.attempts == 1
    await asyncio.sleep(backoff(1).total_seconds())
    assert await runner.relay() == 1  # due again: the relay hands it out
    await _until(lambda: len(recorder.runs) >= len(ids))
    assert sorted(recorder.runs) == list(range(len(ids)))
    assert (await _settled(platform))[failed.payload["n"]].status is OutboxStatus.DONE  # once committed


async def test_a_transactions_jobs_go_in_together_not_a_statement_each(
    database_url: str, tmp_path: Any
) -> None:
    """``enqueue`` does not flush: a backlog enqueued in one transaction is a few multi-row INSERTs (the id
    is there at once all the same)."""
    from sqlalchemy import event

    from legetime.core.platform.config import Settings
    from legetime.core.platform.runtime import Platform

    platform = Platform.create(
        Settings(data_dir=tmp_path / "data", database_url=database_url), load_entry_points=False
    )
    inserts: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO outbox_job"):
            inserts.append(statement)

    engine = platform.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        async with platform.db.transaction() as session:
            jobs = [await enqueue(session, "test.record", {"n": n}) for n in range(300)]
            assert all(job.id is not None for job in jobs)
        assert 1 <= len(inserts) <= 3
        async with platform.db.transaction() as session:
            stored = set((await session.scalars(select(OutboxJob.id))).all())
        assert stored == {job.id for job in jobs}
    finally:
        event.remove(engine, "before_cursor_execute", count)
        await platform.close()
