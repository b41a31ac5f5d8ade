"""Alembic environment of the plugins' tables: every installed plugin's branch, in a version table apart
from the core's, on the database where plugin tables live (``plugin_tables``)."""

from __future__ import annotations

import asyncio
import concurrent.futures

from alembic import context
from sqlalchemy.engine import Connection

from legetime.core.platform.db.engine import Database
from legetime.core.platform.db.migrate import PLUGIN_VERSION_TABLE

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=config.attributes.get("metadata") or None,
        version_table=PLUGIN_VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run(url: str) -> None:
    database = Database(url, foreign_keys=False)
    try:
        async with database.engine.connect() as connection:
            await connection.run_sync(_configure)
            await connection.commit()
    finally:
        await database.dispose()


def run() -> None:
    url = config.attributes["database_url"]
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_run(str(url)))
        return
    # Called from async code (a test building a provider): migrate from a thread with a loop of its own.
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _run(str(url))).result()


run()
