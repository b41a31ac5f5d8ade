"""The job path: N jobs with a trivial handler through outbox → relay → dramatiq/Redis → worker, against
a raw redis-py LPUSH/BRPOP loop of N items in the same run.

The trivial handler comes from this module as a plugin (``register_jobs``). Plugins are loaded from
entry points, and installing a package into the shared environment would change what every other
``legetime`` run there sees, so the worker is started as ``python -m bench.jobs worker``: exactly what
``legetime worker`` does (settings, logging, ``Platform.create``, ``run_forever``) with this module as an
extra plugin.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import uuid
from typing import Any

from legetime.core.hookspecs import hookimpl
from legetime.core.platform.jobs.types import JobContext

JOB_NAME = "bench.noop"


async def noop(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The trivial handler: nothing to do (the job is marked done in the runner's transaction)."""


@hookimpl
def register_jobs() -> dict[str, Any]:
    return {JOB_NAME: noop}


def worker_main() -> None:
    """``legetime worker`` plus this module's job (see the module docstring)."""
    from legetime.core.platform.config import load_settings
    from legetime.core.platform.jobs.runner import run_forever
    from legetime.core.platform.logging import configure_logging
    from legetime.core.platform.runtime import Platform

    settings = load_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    platform = Platform.create(settings, extra_plugins=[sys.modules[__name__]])
    if not settings.redis_url:
        raise SystemExit("the bench worker needs LEGETIME_REDIS_URL")
    print(
        f"bench worker: {settings.worker_threads} threads, namespace {settings.queue_namespace!r}", flush=True
    )
    run_forever(platform)


async def run_outbox_jobs(count: int, *, batch: int = 500, within: float = 300.0) -> tuple[float, int]:
    """Enqueue ``count`` jobs with the project's ``enqueue`` (``batch`` per transaction) and wait until
    all are done in the outbox table. Returns (seconds from the first enqueue to the last done, failed).

    This process stands for an API process: like ``legetime serve`` with a Redis URL, it relays its own
    commits at once (the workers' poll is the safety net for other processes' commits)."""
    from sqlalchemy import func, select

    from legetime.core.platform.config import load_settings
    from legetime.core.platform.db.models import OutboxJob, OutboxStatus
    from legetime.core.platform.jobs.outbox import enqueue
    from legetime.core.platform.jobs.runner import JobRunner
    from legetime.core.platform.runtime import Platform

    platform = Platform.create(load_settings(), load_entry_points=False)
    runner = JobRunner(platform)
    runner.start_relay(poll=False)
    run = uuid.uuid4().hex[:8]
    try:
        ids = []
        started = time.perf_counter()
        for start in range(0, count, batch):
            async with platform.db.transaction() as session:
                for i in range(start, min(start + batch, count)):
                    ids.append((await enqueue(session, JOB_NAME, {"run": run, "i": i})).id)
        enqueued = time.perf_counter() - started
        # By id (the primary key): a look-up that does not grow with the jobs of earlier rounds.
        finished = OutboxJob.id.in_(ids)
        deadline = time.monotonic() + within
        while True:
            async with platform.db.transaction() as session:
                rows = (
                    await session.execute(
                        select(OutboxJob.status, func.count()).where(finished).group_by(OutboxJob.status)
                    )
                ).all()
            by_status = {status: n for status, n in rows}
            done = by_status.get(OutboxStatus.DONE, 0)
            failed = by_status.get(OutboxStatus.FAILED, 0)
            if done + failed >= count:
                if os.environ.get("BENCH_JOBS_VERBOSE"):
                    print(f"    enqueued in {enqueued:.3f} s", flush=True)
                return time.perf_counter() - started, failed
            if time.monotonic() > deadline:
                raise RuntimeError(f"jobs not done after {within:.0f} s: {by_status}")
            await asyncio.sleep(0.005)
    finally:
        await runner.stop_relay()
        runner.stop()
        await platform.close()


async def wait_for_the_chain(within: float = 300.0) -> tuple[int, float]:
    """Wait until the access log's sequencer has chained every entry written so far (a case-list load
    before leaves tens of thousands, which the worker chains while the jobs would run). Returns (how many
    were waiting, seconds until none was)."""
    from legetime.core.platform.config import load_settings
    from legetime.core.platform.runtime import Platform
    from legetime.core.protection.audit import chain_lag

    platform = Platform.create(load_settings(), load_entry_points=False)
    started = time.perf_counter()
    first: int | None = None
    try:
        while True:
            async with platform.db.transaction() as session:
                waiting, _ = await chain_lag(session)
            first = waiting if first is None else first
            if waiting == 0 or time.perf_counter() - started > within:
                return first, time.perf_counter() - started
            await asyncio.sleep(0.1)
    finally:
        await platform.close()


def run_raw_redis(url: str, count: int, key: str) -> float:
    """A raw loop: one thread LPUSHes ``count`` items one at a time, another BRPOPs them. Seconds from the
    first push to the last pop."""
    import redis

    producer, consumer = redis.Redis.from_url(url), redis.Redis.from_url(url)
    received = threading.Event()

    def consume() -> None:
        for _ in range(count):
            if consumer.brpop([key], timeout=30) is None:
                return
        received.set()

    try:
        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        started = time.perf_counter()
        for i in range(count):
            producer.lpush(key, f'{{"i": {i}}}')
        thread.join(timeout=60)
        elapsed = time.perf_counter() - started
        if not received.is_set():
            raise RuntimeError("the raw Redis loop did not receive every item")
        return elapsed
    finally:
        producer.delete(key)
        producer.close()
        consumer.close()


if __name__ == "__main__":
    if sys.argv[1:] != ["worker"]:
        raise SystemExit("usage: python -m bench.jobs worker")
    worker_main()
