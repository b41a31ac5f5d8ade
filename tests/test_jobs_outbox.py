"""The outbox guarantee: a job enqueued in a rolled-back transaction never runs; one in a committed
transaction always runs, once to completion — on the in-process broker and on real Redis, on SQLite and
PostgreSQL, through real dramatiq workers."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from legetime.core.hookspecs import hookimpl
from legetime.core.platform.config import Settings
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import OutboxJob, OutboxStatus
from legetime.core.platform.errors import ValidationError
from legetime.core.platform.jobs.outbox import RELAY_BATCH, enqueue, relay_once
from legetime.core.platform.jobs.runner import JobRunner
from legetime.core.platform.jobs.types import JobContext
from legetime.core.platform.runtime import Platform


class RecordingJobs:
    """A plugin whose job records each run; ``fail_first`` makes a number of first attempts fail."""

    def __init__(self) -> None:
        self.runs: list[int] = []
        self.failures = 0
        self.fail_first = 0
        self.lock = threading.Lock()

    @hookimpl
    def register_jobs(self) -> dict[str, Any]:
        async def record(ctx: JobContext, payload: dict[str, Any]) -> None:
            with self.lock:
                if self.failures < self.fail_first:
                    self.failures += 1
                    raise RuntimeError("provider timed out")
                self.runs.append(payload["n"])

        return {"test.record": record}


class Rollback(Exception):
    pass


@pytest.fixture(params=["in-process", "redis"])
def broker_url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "in-process" else str(request.getfixturevalue("redis_url"))


@pytest.fixture
async def jobs(
    tmp_path: Any, database_url: str, broker_url: str | None
) -> AsyncIterator[tuple[Platform, JobRunner, RecordingJobs]]:
    recorder = RecordingJobs()
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=broker_url,
        queue_namespace=f"legetime-test-{uuid.uuid4().hex[:8]}",
        job_relay_timeout_seconds=30,
    )
    platform = Platform.create(settings, extra_plugins=[recorder], load_entry_points=False)
    runner = JobRunner(platform)
    if broker_url:
        runner.broker.flush_all()
    runner.start_workers(threads=2)
    yield platform, runner, recorder
    runner.stop()
    await platform.close()


async def _wait_finished(platform: Platform, job_id: uuid.UUID, within: float = 20) -> OutboxJob:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        async with platform.db.transaction() as session:
            job = await session.get(OutboxJob, job_id)
            assert job is not None
            if job.status in (OutboxStatus.DONE, OutboxStatus.FAILED):
                return job
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job {job_id} not finished: {job.status}, {job.last_error}")
        await asyncio.sleep(0.05)


async def _count_jobs(platform: Platform) -> int:
    async with platform.db.transaction() as session:
        return len((await session.scalars(select(OutboxJob))).all())


async def test_rolled_back_job_never_runs_and_committed_job_always_runs(jobs: Any) -> None:
    platform, runner, recorder = jobs
    with pytest.raises(Rollback):
        async with platform.db.transaction() as session:
            await enqueue(session, "test.record", {"n": 1})
            raise Rollback
    async with platform.db.transaction() as session:
        committed = await enqueue(session, "test.record", {"n": 2})

    assert await runner.relay() == 1  # only the committed job exists to relay
    job = await _wait_finished(platform, committed.id)
    assert job.status is OutboxStatus.DONE
    await asyncio.sleep(0.3)  # give a (wrong) second run time to show up
    assert recorder.runs == [2]
    assert await _count_jobs(platform) == 1


async def test_crash_after_send_before_commit_runs_the_job_once(jobs: Any) -> None:
    """The relay sends, then dies before marking: the job is delivered again (and again), and runs once."""
    platform, runner, recorder = jobs
    async with platform.db.transaction() as session:
        job = await enqueue(session, "test.record", {"n": 3})

    with pytest.raises(Rollback):
        async with platform.db.transaction() as session:
            await relay_once(
                session, lambda job_id: runner.actor.send(job_id), relay_timeout=timedelta(minutes=5)
            )
            raise Rollback  # the crash: the send happened, the "relayed" mark did not commit
    for _ in range(3):  # the next relay and broker redeliveries send it again
        runner.actor.send(str(job.id))
    finished = await _wait_finished(platform, job.id)
    await asyncio.sleep(0.5)  # let every delivery be processed
    assert recorder.runs == [3]
    assert finished.attempts == 1
    assert await runner.relay() == 0  # done: nothing left to relay


async def test_broker_down_at_relay_time_keeps_the_job_pending(jobs: Any) -> None:
    platform, runner, recorder = jobs
    async with platform.db.transaction() as session:
        job = await enqueue(session, "test.record", {"n": 4})

    def broker_down(job_id: str) -> None:
        raise ConnectionError("broker unreachable")

    with pytest.raises(ConnectionError):
        async with platform.db.transaction() as session:
            await relay_once(session, broker_down, relay_timeout=timedelta(minutes=5))
    async with platform.db.transaction() as session:
        assert (await session.get(OutboxJob, job.id)).status is OutboxStatus.PENDING  # type: ignore[union-attr]
    assert await runner.relay() == 1
    await _wait_finished(platform, job.id)
    assert recorder.runs == [4]


async def test_lost_message_is_relayed_again_after_the_timeout(jobs: Any) -> None:
    """Redis keeps nothing on disk: a relayed job no worker finished is sent again after the timeout."""
    platform, runner, recorder = jobs
    async with platform.db.transaction() as session:
        job = await enqueue(session, "test.record", {"n": 5})
        await session.execute(
            update(OutboxJob)
            .where(OutboxJob.id == job.id)
            .values(status=OutboxStatus.RELAYED, relayed_at=utcnow() - timedelta(minutes=10))
        )
    assert await runner.relay() == 1
    await _wait_finished(platform, job.id)
    assert recorder.runs == [5]


async def test_failing_handler_is_retried_until_it_succeeds(jobs: Any) -> None:
    platform, runner, recorder = jobs
    recorder.fail_first = 1
    async with platform.db.transaction() as session:
        job = await enqueue(session, "test.record", {"n": 6})
    await runner.relay()
    finished = await _wait_finished(platform, job.id, within=30)
    assert finished.status is OutboxStatus.DONE
    assert finished.attempts == 2
    assert recorder.runs == [6]


async def test_dedupe_key_enqueues_once(jobs: Any) -> None:
    platform, _, _ = jobs
    async with platform.db.transaction() as session:
        first = await enqueue(session, "test.record", {"n": 7}, dedupe_key="case-1:answered")
        again = await enqueue(session, "test.record", {"n": 7}, dedupe_key="case-1:answered")
    assert first.id == again.id
    assert await _count_jobs(platform) == 1


async def test_unknown_job_fails_without_retrying(jobs: Any) -> None:
    platform, runner, _ = jobs
    async with platform.db.transaction() as session:
        job = await enqueue(session, "nobody.handles.this", {})
    await runner.relay()
    finished = await _wait_finished(platform, job.id)
    assert finished.status is OutboxStatus.FAILED
    assert "no handler" in (finished.last_error or "")


async def test_payload_must_be_json(platform: Platform, database_url: str) -> None:
    platform.settings.database_url = database_url
    with pytest.raises(ValidationError):
        async with platform.db.transaction() as session:
            await enqueue(session, "test.record", {"when": object()})


async def test_stopping_the_scheduler_lets_a_periodic_run_finish(tmp_path: Any) -> None:
    # APScheduler's own shutdown cancels a run in progress; a transaction cancelled while the engine is
    # disposed can hang the shutdown. The runner waits for the run instead.
    platform = Platform.create(
        Settings(data_dir=tmp_path / "data", outbox_poll_seconds=0.05), load_entry_points=False
    )
    runner = JobRunner(platform)
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow_relay(db: Any = None) -> int:
        started.set()
        await asyncio.sleep(0.3)
        finished.set()
        return 0

    runner.relay = slow_relay  # type: ignore[method-assign]
    runner.start_scheduler()
    await asyncio.wait_for(started.wait(), timeout=5)
    await runner.stop_scheduler()
    assert finished.is_set()
    await asyncio.sleep(0.2)
    assert len([t for t in asyncio.all_tasks() if not t.done()]) == 1  # only this test: nothing left running
    runner.stop()


async def test_a_periodic_run_too_long_for_shutdown_is_cancelled_and_waited_for(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("legetime.core.platform.jobs.runner.SHUTDOWN_GRACE_SECONDS", 0.2)
    platform = Platform.create(
        Settings(data_dir=tmp_path / "data", outbox_poll_seconds=0.05), load_entry_points=False
    )
    runner = JobRunner(platform)
    started, cleaned_up = asyncio.Event(), asyncio.Event()

    async def endless_relay(db: Any = None) -> int:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.05)  # its rollback, while the database is still open
            cleaned_up.set()
        return 0

    runner.relay = endless_relay  # type: ignore[method-assign]
    runner.start_scheduler()
    await asyncio.wait_for(started.wait(), timeout=5)
    await asyncio.wait_for(runner.stop_scheduler(), timeout=5)
    assert cleaned_up.is_set()
    runner.stop()


@contextlib.asynccontextmanager
async def _relaying_without_polls(platform: Platform, runner: JobRunner) -> AsyncIterator[None]:
    """The relay running, woken by commits only: its first look (nothing due) is over and the next poll
    is far off."""
    platform.settings.outbox_poll_seconds = 30.0
    runner.start_relay(poll=True)
    try:
        await asyncio.sleep(0.1)
        yield
    finally:
        await runner.stop_relay()


async def test_a_commit_is_relayed_at_once_not_at_the_next_poll(jobs: Any) -> None:
    """The relay wakes on this process's commits that enqueued jobs; the poll is only the safety net."""
    platform, runner, recorder = jobs
    async with _relaying_without_polls(platform, runner):
        async with platform.db.transaction() as session:
            committed = await enqueue(session, "test.record", {"n": 7})
        job = await _wait_finished(platform, committed.id, within=5)
        assert job.status is OutboxStatus.DONE and recorder.runs == [7]


async def test_a_savepoint_rolled_back_after_an_enqueue_still_wakes_the_relay(jobs: Any) -> None:
    """A transaction that enqueued a job and then rolled back a savepoint (an idempotent creation that lost
    a race, a job of a batch that failed) still wakes the relay when it commits: its job is not left for
    a poll that an API process with a broker never runs."""
    platform, runner, recorder = jobs
    async with _relaying_without_polls(platform, runner):
        async with platform.db.transaction() as session:
            committed = await enqueue(session, "test.record", {"n": 8})
            with contextlib.suppress(Rollback):
                async with session.begin_nested():
                    await enqueue(session, "test.record", {"n": 9})
                    raise Rollback
        job = await _wait_finished(platform, committed.id, within=5)
        assert job.status is OutboxStatus.DONE and recorder.runs == [8]


async def test_the_relay_has_no_cap_per_poll(jobs: Any) -> None:
    """More jobs than a batch are handed over in one relay run (a batch per transaction)."""
    platform, runner, _ = jobs
    async with platform.db.transaction() as session:
        for n in range(RELAY_BATCH + 20):
            await enqueue(session, "test.record", {"n": n})
    assert await runner.relay() == RELAY_BATCH + 20
    assert await runner.relay() == 0


def test_an_api_process_with_a_broker_relays_its_own_commits_at_once(
    tmp_path: Any, database_url: str, redis_url: str
) -> None:
    """`legetime serve` with Redis runs no workers and no poll; a commit of its own that enqueued a job
    is handed to the broker at once (the workers' poll, half a second or more, is only the safety net)."""
    from starlette.testclient import TestClient

    from legetime.schema.app import create_app

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_url,
        queue_namespace=f"legetime-test-{uuid.uuid4().hex[:8]}",
        outbox_poll_seconds=60,
    )
    platform = Platform.create(settings, extra_plugins=[RecordingJobs()], load_entry_points=False)
    with TestClient(create_app(platform)) as client:
        assert client.get("/healthz").status_code == 200

        async def enqueue_and_watch() -> OutboxStatus:
            async with platform.db.transaction() as session:
                job = await enqueue(session, "test.record", {"n": 1})
            for _ in range(50):
                async with platform.db.transaction() as session:
                    status = await session.scalar(select(OutboxJob.status).where(OutboxJob.id == job.id))
                if status is not OutboxStatus.PENDING:
                    break
                await asyncio.sleep(0.05)
            return OutboxStatus(status)

        assert client.portal is not None  # the app's own event loop: the commit is this process's
        assert client.portal.call(enqueue_and_watch) is OutboxStatus.RELAYED
