"""Run the ``legetime`` command in a subprocess, as an operator would: one command, or the server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from legetime.core.platform.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str, env: dict[str, str] | None = None, pythonpath: list[Path] = ()
) -> subprocess.CompletedProcess[str]:  # type: ignore[assignment]
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith("LEGETIME_") or k.startswith("LEGETIME_TEST_")
    }
    full_env.update(env or {})
    full_env["PYTHONPATH"] = os.pathsep.join([*(str(p) for p in pythonpath), str(ROOT)])
    full_env["COLUMNS"] = "250"  # rich tables: don't wrap names
    return subprocess.run(
        [sys.executable, "-m", "legetime.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        cwd=ROOT,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(
    log: Path,
    *,
    command: list[str] | None = None,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    process: list[subprocess.Popen[bytes]] | None = None,
    options: tuple[str, ...] = (),
) -> Iterator[str]:
    """``legetime serve`` on a free port until the block ends, as an operator starts it (its output in
    ``log``); yields its base URL once ``/readyz`` answers 200. ``command`` runs another ``legetime``
    (an installed one); by default this checkout's, with ``env`` over a clean environment. The server's
    process is appended to ``process`` when given (to signal it); ``options`` go to ``serve``."""
    port = free_port()
    if command is None:
        command = [sys.executable, "-m", "legetime.cli"]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("LEGETIME_")}
        env = clean | (env or {}) | {"PYTHONPATH": str(ROOT)}
    with log.open("w") as output:
        server = subprocess.Popen(
            [*command, "serve", "--port", str(port), *options],
            env=env,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    if process is not None:
        process.append(server)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"`legetime serve` ended:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"`legetime serve` did not become ready:\n{log.read_text()}"
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextmanager
def working(log: Path, *, env: dict[str, str], threads: int = 2) -> Iterator[subprocess.Popen[bytes]]:
    """``legetime worker`` until the block ends, as an operator starts it (its output in ``log``), with
    ``env`` over a clean environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LEGETIME_")}
    with log.open("w") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "legetime.cli", "worker", "--threads", str(threads)],
            env=clean | env | {"PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=30)


@dataclass(frozen=True)
class Deployment:
    """Two API processes and a worker on one PostgreSQL and Redis, as deployed (``deployed``)."""

    settings: Settings
    first: str
    second: str


@contextmanager
def deployed(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[Deployment]:
    """Two `legetime serve` and a `legetime worker` on a migrated database with demo data, with a Redis
    queue namespace of their own; yields their settings and the two servers' base URLs."""
    from tests.conftest import seed_demo
    from tests.migrated import upgrade

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_url,
        queue_namespace=f"legetime-test-{uuid.uuid4().hex[:8]}",
    )
    env = {
        "LEGETIME_DATA_DIR": str(settings.data_dir),
        "LEGETIME_DATABASE_URL": database_url,
        "LEGETIME_REDIS_URL": redis_url,
        "LEGETIME_QUEUE_NAMESPACE": settings.queue_namespace,
    }
    upgrade(database_url)
    seed_demo(settings)
    with (
        serving(tmp_path / "first.log", env=env) as first,
        serving(tmp_path / "second.log", env=env) as second,
        working(tmp_path / "worker.log", env=env),
    ):
        yield Deployment(settings, first, second)
