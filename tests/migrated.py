"""A migrated database for a test in a fraction of the time Alembic takes: the migrations run once per test
session into a template, and a test's empty database becomes a copy of it (a file copy on SQLite,
``CREATE DATABASE … TEMPLATE`` on PostgreSQL). Anything else (a database that has tables already, a
revision other than the head) is migrated by Alembic itself, and ``tests/test_migrations.py`` runs the
migrations themselves, so nothing here hides a broken migration."""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from legetime.core.platform.db.engine import Database
from legetime.core.platform.db.migrate import upgrade as alembic_upgrade
from legetime.core.platform.db.plugin_tables import plugin_database_url

_templates: dict[str, str] = {}


def upgrade(database_url: str) -> None:
    """Migrate a test's database to the head, the core's tables and the installed plugins'."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        if path.exists() and path.stat().st_size > 0:
            alembic_upgrade(database_url)
            return
        _copy_sqlite(_sqlite_template(), database_url)
        return
    if not _replace_with_template(database_url):
        alembic_upgrade(database_url)


def _sqlite_template() -> str:
    if "sqlite" not in _templates:
        folder = Path(tempfile.mkdtemp(prefix="legetime-template-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        template = f"sqlite+aiosqlite:///{folder / 'legetime.db'}"
        alembic_upgrade(template)
        _templates["sqlite"] = template
    return _templates["sqlite"]


def _copy_sqlite(template: str, target: str) -> None:
    for source_url, target_url in (
        (template, target),
        (plugin_database_url(template), plugin_database_url(target)),
    ):
        source, destination = (
            Path(str(make_url(source_url).database)),
            Path(str(make_url(target_url).database)),
        )
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        destination.chmod(0o600)  # as the platform creates it: the embedded database holds health data


def _replace_with_template(database_url: str) -> bool:
    """An empty PostgreSQL database dropped and made again as a copy of the template; False if it is not
    empty or in use (then Alembic migrates it as it is)."""
    url = make_url(database_url)
    template = _postgres_template(database_url)
    admin = url.set(database="postgres").render_as_string(hide_password=False)

    async def replace() -> bool:
        if await _has_tables(database_url):
            return False
        database = Database(admin)
        try:
            async with database.engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                try:
                    await autocommit.execute(text(f'DROP DATABASE "{url.database}"'))
                except DBAPIError:  # someone is connected to it
                    return False
                await autocommit.execute(text(_create_from(str(url.database), template)))
                return True
        finally:
            await database.dispose()

    return asyncio.run(replace())


def postgres_copy(server_url: str, name: str) -> str:
    """A new database ``name`` on the server, a copy of the migrated template; its URL."""
    template = _postgres_template(server_url)
    admin = make_url(server_url).set(database="postgres").render_as_string(hide_password=False)
    asyncio.run(_execute(admin, _create_from(name, template)))
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _create_from(name: str, template: str) -> str:
    # FILE_COPY: a copy of the template's files, quicker than WAL_LOG (the default) for a small database.
    return f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY'


def _postgres_template(database_url: str) -> str:
    if "postgresql" not in _templates:
        url = make_url(database_url)
        name = f"legetime_template_{uuid.uuid4().hex[:12]}"
        admin = url.set(database="postgres").render_as_string(hide_password=False)
        asyncio.run(_execute(admin, f'CREATE DATABASE "{name}"'))
        atexit.register(
            lambda: asyncio.run(_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        )
        alembic_upgrade(url.set(database=name).render_as_string(hide_password=False))
        _templates["postgresql"] = name
    return _templates["postgresql"]


async def _has_tables(database_url: str) -> bool:
    database = Database(database_url)
    try:
        async with database.engine.connect() as connection:
            return bool(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await database.dispose()


async def _execute(database_url: str, sql: str) -> None:
    database = Database(database_url)
    try:
        async with database.engine.connect() as connection:
            await (await connection.execution_options(isolation_level="AUTOCOMMIT")).execute(text(sql))
    finally:
        await database.dispose()
