"""Shared fixtures.

Database tests run on SQLite and on PostgreSQL; job tests on the in-process broker and on Redis. With
``CI=true`` a missing PostgreSQL or Redis fails the run; on a laptop without them those tests skip with
the reason. Point elsewhere with ``LEGETIME_TEST_POSTGRES_URL`` / ``LEGETIME_TEST_REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from legetime.core.platform.config import Settings
from legetime.core.platform.db.engine import Database
from legetime.core.platform.runtime import Platform
from tests.migrated import postgres_copy, upgrade

POSTGRES_URL = os.environ.get(
    "LEGETIME_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("LEGETIME_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(what: str, why: object) -> None:
    message = f"{what} is not reachable ({why})"
    if IN_CI:
        pytest.fail(f"{message}; with CI=true these tests must run, not skip", pytrace=False)
    pytest.skip(f"{message}; set it up or run in CI")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's LEGETIME_* variables; each gets its own data directory."""
    for name in list(os.environ):
        if name.startswith("LEGETIME_") and not name.startswith("LEGETIME_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LEGETIME_DATA_DIR", str(tmp_path / "data"))


# --- PostgreSQL ------------------------------------------------------------------------------------


async def _admin(sql: str) -> None:
    database = Database(POSTGRES_URL)
    try:
        async with database.engine.connect() as connection:
            await (await connection.execution_options(isolation_level="AUTOCOMMIT")).execute(text(sql))
    finally:
        await database.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    try:
        asyncio.run(_admin("SELECT 1"))
    except Exception as exc:
        _unavailable("PostgreSQL", exc)
    yield POSTGRES_URL


@pytest.fixture
def fresh_postgres_url(postgres_server: str) -> Iterator[str]:
    """An empty database of its own, dropped afterwards."""
    name = f"legetime_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database on each backend: a copy of one migrated once per session (``tests/migrated.py``;
    ``tests/test_migrations.py`` runs the migrations themselves)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        upgrade(url)
        yield url
        return
    name = f"legetime_test_{uuid.uuid4().hex[:12]}"
    yield postgres_copy(request.getfixturevalue("postgres_server"), name)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- Redis -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        _unavailable("Redis", exc)
    return REDIS_URL


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    yield redis_server


# --- the platform ----------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
async def platform(settings: Settings) -> AsyncIterator[Platform]:
    platform = Platform.create(settings, load_entry_points=False)
    yield platform
    await platform.close()


# --- third-party plugin packages ---------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"


def pip_install(source: Path, target: Path) -> None:
    """Install a package (no network, no build isolation) into a directory of its own."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def install(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Install a fixture package into a directory of its own (``pip_install``)."""
    installed: dict[str, Path] = {}

    def _install(name: str) -> Path:
        if name not in installed:
            target = tmp_path_factory.mktemp(name)
            pip_install(FIXTURES / name, target)
            installed[name] = target
        return installed[name]

    return _install


# --- the whole platform over HTTP ------------------------------------------------------------------


def seed_demo(settings: Settings) -> None:
    """Demo staff and family, through a platform of this thread's own event loop (the same settings,
    hence the same master keys, as the platform under test)."""
    from legetime.core.demo import create_demo_data

    async def seed() -> None:
        platform = Platform.create(settings, load_entry_points=False)
        try:
            await create_demo_data(platform)
        finally:
            await platform.close()

    asyncio.run(seed())


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Any]:
    """The embedded default (SQLite, in-process jobs) with demo data, driven over HTTP: (Api, Platform)."""
    from starlette.testclient import TestClient

    from legetime.schema.app import create_app
    from tests.api import Api

    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    platform = Platform.create(settings, load_entry_points=False)
    with TestClient(create_app(platform)) as client:
        yield Api(client), platform


@pytest.fixture(params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The app with demo data, driven over HTTP, on each database; jobs are not run: (Api, Platform)."""
    from starlette.testclient import TestClient

    from legetime.schema.app import create_app
    from tests.api import Api

    database_url = request.getfixturevalue("fresh_postgres_url") if request.param == "postgresql" else None
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    platform = Platform.create(settings, load_entry_points=False)
    with TestClient(create_app(platform, run_jobs_in_process=False)) as client:
        yield Api(client), platform


@pytest.fixture
def address(tmp_path: Path) -> Iterator[str]:
    """The embedded default with demo data under uvicorn (HTTP and websockets): its host:port."""
    from tests.test_subscriptions import serving

    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    with serving(settings) as address:
        yield address
