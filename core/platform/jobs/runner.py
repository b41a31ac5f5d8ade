"""Runs outbox jobs on dramatiq: RedisBroker with ``LEGETIME_REDIS_URL``, else an in-process worker.

One dramatiq actor, ``legetime.run_job(job_id)``, runs any registered handler. It is idempotent: the
job row is locked, a finished job is skipped, and the handler's database work commits together with
marking the job done. A failing handler is retried with backoff by dramatiq until the maximum attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import dramatiq
import structlog
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.platform import metrics, tracing
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.engine import Database
from legetime.core.platform.db.models import OutboxJob, OutboxStatus
from legetime.core.platform.jobs.outbox import RELAY_BATCH, on_jobs_committed, relay_once
from legetime.core.platform.jobs.types import JobContext, JobFailed

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from legetime.core.platform.runtime import Platform

log = structlog.get_logger(__name__)

ACTOR_NAME = "legetime.run_job"
BATCH_ACTOR_NAME = "legetime.run_jobs"
MAX_JOBS_PER_MESSAGE = 50
SPREAD = 8
"""A relayed batch goes out in at least this many messages (while it has that many jobs), so that the
workers share it; only a backlog makes messages of several jobs."""
QUEUE_NAME = "legetime"
SHUTDOWN_GRACE_SECONDS = 30.0  # how long a periodic run in progress may take to finish at shutdown
# How long an idle worker thread or consumer waits for a message before it looks whether to stop:
# dramatiq's default (1 s, twice over) made every shutdown take 2 s. A job in progress still finishes.
WORKER_WAKE_MS = 100
DONE, RETRY = OutboxStatus.DONE.value, "retry"
"""What became of an attempt, as metrics and traces say: done, retry, or failed (for good)."""


def make_broker(platform: Platform) -> dramatiq.Broker:
    settings = platform.settings
    broker: dramatiq.Broker
    if settings.redis_url:
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=settings.redis_url, namespace=settings.queue_namespace)
    else:
        broker = StubBroker()
    broker.add_middleware(AsyncIO())
    return broker


class JobRunner:
    """The broker, the actor, the relay and (when asked) the workers of one process."""

    def __init__(self, platform: Platform, broker: dramatiq.Broker | None = None) -> None:
        self.platform = platform
        self.broker = broker or make_broker(platform)
        self._worker_db: Database | None = None
        self._worker: dramatiq.Worker | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._periodic: set[asyncio.Task[Any]] = set()
        self._relay_task: asyncio.Task[None] | None = None
        self._relay_wake = asyncio.Event()
        self._relay_stopping = False
        self._stop_listening: Callable[[], None] | None = None
        self.actor = self._actor(ACTOR_NAME)(self._run)
        self.batch_actor = self._actor(BATCH_ACTOR_NAME)(self._run_many)

    def _actor(self, name: str) -> Any:
        """dramatiq's actor decorator for a job actor: the legetime queue, retried with backoff."""
        return dramatiq.actor(
            broker=self.broker,
            actor_name=name,
            queue_name=QUEUE_NAME,
            max_retries=self.platform.settings.job_max_attempts,
            min_backoff=500,
            max_backoff=300_000,
        )

    # --- the relay (API or worker process) ---------------------------------------------------------

    async def relay(self, db: Database | None = None) -> int:
        """Hand every due job to the broker, a batch per transaction, until none is left."""
        db = db or self.platform.db
        relayed = 0
        while True:
            async with db.transaction() as session:
                due: list[str] = []
                sent = await relay_once(
                    session,
                    due.append,
                    relay_timeout=timedelta(seconds=self.platform.settings.job_relay_timeout_seconds),
                )
                self._send(due)  # before the commit: a crash between the two sends twice, never zero times
            relayed += sent
            if sent < RELAY_BATCH:
                return relayed

    def start_relay(self, *, poll: bool, db: Database | None = None) -> None:
        """Relay in the running event loop: right after each commit of this process that enqueued jobs,
        and (``poll``) every ``outbox_poll_seconds`` as the safety net for the rest (a job the woken relay
        did not see: ``SKIP LOCKED`` passes over a row another transaction holds, if only for a moment).
        One relay at a time per runner; several processes relay side by side. ``db``: the handle to relay
        through (one opened in this event loop), by default the platform's."""
        loop = asyncio.get_running_loop()
        self._relay_wake = wake = asyncio.Event()
        self._relay_stopping = False

        def wake_up() -> None:  # called from whichever thread committed
            loop.call_soon_threadsafe(wake.set)

        self._stop_listening = on_jobs_committed(wake_up)
        every = self.platform.settings.outbox_poll_seconds if poll else None
        self._relay_task = loop.create_task(self._relay_loop(wake, every, db), name="outbox-relay")

    async def _relay_loop(self, wake: asyncio.Event, every: float | None, db: Database | None) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), every)
            wake.clear()
            if self._relay_stopping:
                return
            try:
                await self.relay(db)
            except Exception as exc:  # the database or the broker is away: the poll tries again
                log.warning("jobs.relay_failed", error=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.platform.settings.outbox_poll_seconds)

    async def stop_relay(self) -> None:
        """Stop relaying, letting a relay in progress finish (as ``stop_scheduler`` does for periodic
        runs: cancelled only after the grace time, while the database is still open)."""
        task, self._relay_task = self._relay_task, None
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        if task is None:
            return
        self._relay_stopping = True
        self._relay_wake.set()
        _, late = await asyncio.wait([task], timeout=SHUTDOWN_GRACE_SECONDS)
        if late:  # cancel it while the database is still open, so its rollback can complete
            log.warning("jobs.relay_cancelled_at_shutdown")
            task.cancel()
            await asyncio.wait([task], timeout=SHUTDOWN_GRACE_SECONDS)

    def start_scheduler(self) -> None:
        """The periodic work, in the running event loop (APScheduler, one run of each at a time): the
        periodic jobs the plugins register (the core's own included), and the outbox relay (polling,
        and woken by this process's commits)."""
        # Imported here: an API process with Redis, and the commands, never schedule anything.
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self.start_relay(poll=True)
        self._scheduler = AsyncIOScheduler()
        every = {"max_instances": 1, "coalesce": True}
        for job in self.platform.periodic_jobs:
            self._scheduler.add_job(
                self._tracked(functools.partial(job.run, self.platform), name=job.name),
                "interval",
                seconds=job.every(self.platform.settings).total_seconds(),
                id=job.name,
                **every,
            )
        self._scheduler.start()

    def _tracked(
        self, work: Callable[[], Awaitable[Any]], name: str | None = None
    ) -> Callable[[], Awaitable[Any]]:
        """``work`` as a scheduled job whose run in progress ``stop_scheduler`` can wait for."""

        async def run() -> Any:
            task = asyncio.current_task()
            assert task is not None
            self._periodic.add(task)
            try:
                return await work()
            finally:
                self._periodic.discard(task)

        run.__name__ = run.__qualname__ = name or str(getattr(work, "__name__", "periodic"))
        return run

    async def stop_scheduler(self) -> None:
        """Stop the periodic work, letting a run in progress finish first. The scheduler's own shutdown
        cancels it, and a transaction cancelled while the engine is being disposed can leave its
        connection's close waiting forever (seen as a hang at shutdown on SQLite)."""
        await self.stop_relay()
        if self._scheduler is None:
            return
        self._scheduler.pause()
        running = [task for task in self._periodic if not task.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=SHUTDOWN_GRACE_SECONDS)
            if late:  # cancel it while the database is still open, so its rollback can complete
                log.warning("jobs.periodic_cancelled_at_shutdown", count=len(late))
                for task in late:
                    task.cancel()
                await asyncio.wait(late, timeout=SHUTDOWN_GRACE_SECONDS)
        self._scheduler.shutdown(wait=False)
        self._scheduler = None

    # --- the workers --------------------------------------------------------------------------------

    def start_workers(self, threads: int | None = None) -> dramatiq.Worker:
        self._worker = dramatiq.Worker(
            self.broker,
            worker_threads=threads or self.platform.settings.worker_threads,
            worker_timeout=WORKER_WAKE_MS,
        )
        self._worker.start()
        return self._worker

    def stop(self) -> None:
        # The workers' database handle is disposed on their event loop, which stopping them ends: so
        # before. (A job taken up between the two would make a handle left to the garbage collector.)
        if self._worker_db is not None:
            from dramatiq.asyncio import get_event_loop_thread

            loop_thread = get_event_loop_thread()
            if loop_thread is not None:
                loop_thread.run_coroutine(self._worker_db.dispose())
            self._worker_db = None
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self.broker.close()

    def _send(self, job_ids: list[str]) -> None:
        for group in messages_for(job_ids):
            if len(group) == 1:
                self.actor.send(group[0])
            else:
                self.batch_actor.send(group)

    def _database(self) -> Database:
        # Runs in dramatiq's event-loop thread; the database handle is made there (loop-bound drivers).
        if self._worker_db is None:
            self._worker_db = self.platform.open_database()
        return self._worker_db

    async def _run(self, job_id: str) -> None:
        await run_job(self.platform, self._database(), job_id)

    async def _run_many(self, job_ids: list[str]) -> None:
        await run_jobs(self.platform, self._database(), job_ids)


def messages_for(job_ids: list[str]) -> list[list[str]]:
    """The relayed jobs as messages: one job each, unless there are more than ``SPREAD`` (a backlog):
    then up to ``MAX_JOBS_PER_MESSAGE`` each, in at least ``SPREAD`` messages. A message of several jobs
    saves the per-message and per-transaction work that dominates short jobs."""
    size = max(1, min(MAX_JOBS_PER_MESSAGE, len(job_ids) // SPREAD))
    return [job_ids[i : i + size] for i in range(0, len(job_ids), size)]


_JOBS = OutboxJob.__table__
# Plain statements on the table, not the ORM's unit of work: a job's bookkeeping is three statements
# (claim, savepoint, finish) and costs the same whatever the handler does.
_CLAIM = (
    update(_JOBS)  # type: ignore[arg-type]
    .where(
        _JOBS.c.id == bindparam("job_id"),
        _JOBS.c.status.in_((OutboxStatus.PENDING, OutboxStatus.RELAYED)),
    )
    .values(attempts=_JOBS.c.attempts + 1)
    .returning(_JOBS.c.name, _JOBS.c.payload, _JOBS.c.attempts)
)
_FINISH = update(_JOBS).where(_JOBS.c.id == bindparam("job_id"))  # type: ignore[arg-type]


async def run_job(platform: Platform, db: Database, job_id: str) -> None:
    """Run one outbox job at most once to completion (see the module docstring)."""
    key = uuid.UUID(job_id)
    with _observed() as observed:
        async with db.transaction() as session:
            # Claim first: a conditional UPDATE as the transaction's first statement takes the row lock on
            # PostgreSQL and the write lock on SQLite (where FOR UPDATE does nothing), so a second delivery
            # waits here and then finds the job finished.
            claimed = (await session.execute(_CLAIM, {"job_id": key})).first()
            if claimed is None:
                return  # unknown (rolled back) or already finished: a redelivery
            name, payload, attempts = claimed
            finish, failure = await _attempt(platform, session, key, name, payload, attempts, observed)
            await session.execute(_FINISH.values(**finish), {"job_id": key})
    if failure is not None:
        # Raised after the commit, so the attempt is counted before dramatiq retries with backoff.
        raise failure


@contextlib.contextmanager
def _observed() -> Iterator[list[tuple[str, str, float]]]:
    """The attempts of one transaction, counted (``metrics.observe_job``) once it has committed; as
    retries if it failed (dramatiq then runs them again)."""
    observed: list[tuple[str, str, float]] = []
    try:
        yield observed
    except BaseException:
        for job, _, seconds in observed:
            metrics.observe_job(job, RETRY, seconds)
        raise
    for job, state, seconds in observed:
        metrics.observe_job(job, state, seconds)


async def _attempt(
    platform: Platform,
    session: AsyncSession,
    key: uuid.UUID,
    name: str,
    payload: Any,
    attempts: int,
    observed: list[tuple[str, str, float]],
) -> tuple[dict[str, Any], Exception | None]:
    """Run a claimed job's handler in a savepoint of its own, in a span continuing the trace that
    enqueued it. Returns the values its row finishes with, and the failure to retry (None when it is
    done, or failed for good); appends what became of it to ``observed``."""
    payload = dict(payload)
    traceparent = payload.pop(tracing.TRACEPARENT_KEY, None)
    attributes = {"legetime.job.id": str(key), "legetime.job.name": name, "legetime.job.attempt": attempts}
    if isinstance(payload.get("case_id"), str):
        attributes["legetime.case.id"] = payload["case_id"]
    started = time.perf_counter()
    with tracing.span(f"job {name}", kind="consumer", traceparent=traceparent, attributes=attributes) as span:
        finish, failure = await _run_handler(platform, session, key, name, payload, attempts)
        state = RETRY if failure is not None else str(finish["status"].value)
        if state != DONE:
            tracing.failed(span, state)
    job = name if name in platform.jobs else metrics.UNKNOWN_JOB
    observed.append((job, state, time.perf_counter() - started))
    return finish, failure


async def _run_handler(
    platform: Platform,
    session: AsyncSession,
    key: uuid.UUID,
    name: str,
    payload: dict[str, Any],
    attempts: int,
) -> tuple[dict[str, Any], Exception | None]:
    job_id = str(key)
    handler = platform.jobs.get(name)
    if handler is None:
        log.error("job.unknown", job_id=job_id, job=name)
        error = f"no handler registered for job {name!r}"
        return {"status": OutboxStatus.FAILED, "finished_at": utcnow(), "last_error": error}, None
    context = JobContext(platform=platform, session=session, job_id=job_id, attempt=attempts)
    try:
        async with session.begin_nested():
            await handler(context, payload)
    except JobFailed as exc:  # the handler says retrying will not help: failed now
        log.warning("job.gave_up", job_id=job_id, job=name, attempts=attempts)
        return {"status": OutboxStatus.FAILED, "finished_at": utcnow(), "last_error": str(exc)[:2000]}, None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if attempts >= platform.settings.job_max_attempts:
            log.error("job.failed", job_id=job_id, job=name, attempts=attempts)
            return {"status": OutboxStatus.FAILED, "finished_at": utcnow(), "last_error": error}, None
        log.warning("job.retry", job_id=job_id, job=name, attempt=attempts)
        return {"last_error": error}, exc
    return {"status": OutboxStatus.DONE, "finished_at": utcnow(), "last_error": None}, None


_CLAIM_MANY = (
    update(_JOBS)  # type: ignore[arg-type]
    .where(
        _JOBS.c.id.in_(
            select(_JOBS.c.id)
            .where(
                _JOBS.c.id.in_(bindparam("job_ids", expanding=True)),
                _JOBS.c.status.in_((OutboxStatus.PENDING, OutboxStatus.RELAYED)),
            )
            .order_by(_JOBS.c.id)  # rows locked in one order: overlapping batches wait, never deadlock
            .with_for_update()
        )
    )
    .values(attempts=_JOBS.c.attempts + 1)
    .returning(_JOBS.c.id, _JOBS.c.name, _JOBS.c.payload, _JOBS.c.attempts)
)


async def run_jobs(platform: Platform, db: Database, job_ids: list[str]) -> None:
    """Run the jobs of one message, each at most once to completion, in one transaction: claimed
    together, each handler in a savepoint of its own (one that fails rolls back only its own work), the
    finished ones marked done together. A job that fails and may be tried again goes back to the outbox,
    due after a backoff (the relay hands it out again); so a message is retried (by dramatiq) only when
    the transaction itself failed, and then its finished jobs are skipped by their claims."""
    order = {uuid.UUID(job_id): place for place, job_id in enumerate(job_ids)}
    with _observed() as observed:
        async with db.transaction() as session:
            claimed = (await session.execute(_CLAIM_MANY, {"job_ids": list(order)})).all()
            done: list[uuid.UUID] = []
            for key, name, payload, attempts in sorted(claimed, key=lambda row: order[row[0]]):
                finish, failure = await _attempt(platform, session, key, name, payload, attempts, observed)
                if finish.get("status") is OutboxStatus.DONE:
                    done.append(key)
                    continue
                if failure is not None:
                    finish |= {"status": OutboxStatus.PENDING, "available_at": utcnow() + backoff(attempts)}
                await session.execute(_FINISH.values(**finish), {"job_id": key})
            if done:
                await session.execute(
                    update(_JOBS)  # type: ignore[arg-type]
                    .where(_JOBS.c.id.in_(done))
                    .values(status=OutboxStatus.DONE, finished_at=utcnow(), last_error=None)
                )


def backoff(attempts: int) -> timedelta:
    """Before the next attempt of a job that failed ``attempts`` times: as dramatiq's own retries (0.5 s,
    doubling, at most 5 minutes)."""
    return timedelta(milliseconds=min(500 * 2 ** (attempts - 1), 300_000))


def run_forever(platform: Platform) -> None:
    """``legetime worker``: dramatiq workers plus the relay, until interrupted."""
    metrics.configure(platform.settings)  # its jobs counted with the API's, in a shared metrics directory
    tracing.configure(platform.settings)
    runner = JobRunner(platform)
    runner.start_workers()

    async def main() -> None:
        from legetime.core.platform.runtime_settings import follow_changes

        await platform.start()
        stop_following = await follow_changes(platform)  # operators' settings changes
        runner.start_scheduler()
        try:
            await asyncio.Event().wait()
        finally:
            stop_following()
            await runner.stop_scheduler()
            runner.stop()
            await platform.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
