"""`legetime worker` as a real process: it relays committed outbox jobs through Redis and runs them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from legetime.core.platform.db.engine import Database
from legetime.core.platform.db.models import OutboxJob, OutboxStatus
from legetime.core.platform.jobs.outbox import enqueue
from tests.cli import ROOT, run_cli


async def _enqueue_and_wait(url: str, worker: subprocess.Popen[str]) -> OutboxJob:
    database = Database(url)
    try:
        async with database.transaction() as session:
            job = await enqueue(session, "hello.greet", {"to": "verden"})
        for _ in range(300):
            async with database.transaction() as session:
                current = await session.get(OutboxJob, job.id)
                assert current is not None
                if current.status is OutboxStatus.DONE:
                    return current
            assert worker.poll() is None, "the worker stopped"
            await asyncio.sleep(0.1)
        raise AssertionError(f"job not done: {current.status} {current.last_error}")
    finally:
        await database.dispose()


def test_worker_runs_committed_jobs_through_redis(
    database_url: str,
    redis_url: str,
    install: Any,
    tmp_path: Path,
) -> None:
    plugin_dir = install("legetime-hello")  # its job handler "hello.greet"
    env = {
        "LEGETIME_DATABASE_URL": database_url,
        "LEGETIME_REDIS_URL": redis_url,
        "LEGETIME_QUEUE_NAMESPACE": f"legetime-test-{uuid.uuid4().hex[:8]}",
        "LEGETIME_DATA_DIR": str(tmp_path),
    }
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("LEGETIME_")}
    process_env |= env | {"PYTHONPATH": os.pathsep.join([str(plugin_dir), str(ROOT)])}
    worker = subprocess.Popen(
        [sys.executable, "-m", "legetime.cli", "worker", "--threads", "2"],
        env=process_env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        job = asyncio.run(_enqueue_and_wait(database_url, worker))
        assert job.attempts == 1
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0]
    assert "Worker: 2 threads" in output


def test_worker_needs_redis(tmp_path: Path) -> None:
    result = run_cli("worker", env={"LEGETIME_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "LEGETIME_REDIS_URL" in result.stderr
