"""Alembic, configured from code so ``legetime migrate`` works from an installed package: the core's
migrations, then every installed plugin's own branch (``register_tables``; see ``plugin_tables``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from legetime.core.platform.db.plugin_tables import PluginTables, collect_tables, plugin_database_url

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).parent / "migrations"
PLUGIN_MIGRATIONS = Path(__file__).parent / "plugin_migrations"
PLUGIN_VERSION_TABLE = "plugin_alembic_version"


def run_on(url: str, configure: Callable[[Connection], None]) -> None:
    """What an Alembic environment does online: ``configure`` (which runs the migrations) on a connection
    of ``url``. From async code (a test building a provider) in a thread with an event loop of its own."""
    from legetime.core.platform.db.engine import Database

    async def run() -> None:
        database = Database(url, foreign_keys=False)
        try:
            async with database.engine.connect() as connection:
                await connection.run_sync(configure)
                await connection.commit()
        finally:
            await database.dispose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(run())
        return
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, run()).result()


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config  # imported when migrating: the SDK imports this module

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    return config


def plugin_alembic_config(database_url: str, tables: Iterable[PluginTables]) -> Config:
    """The plugins' branches, on the database where plugin tables live."""
    from alembic.config import Config

    tables = list(tables)
    config = Config()
    config.set_main_option("script_location", str(PLUGIN_MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(t.migrations) for t in tables))
    config.attributes["database_url"] = plugin_database_url(database_url)
    config.attributes["metadata"] = [t.metadata for t in tables]
    return config


def installed_tables(extra_plugins: Iterable[object] = ()) -> list[PluginTables]:
    """The tables of every installed plugin: the built-in ones, the entry points' (disabled or not: a
    disabled plugin keeps its tables until they are dropped) and ``extra_plugins``."""
    from legetime.core.platform.plugins import answers_by_plugin, create_plugin_manager

    return collect_tables(
        answers_by_plugin(create_plugin_manager(extra_plugins=extra_plugins), "register_tables")
    )


def upgrade(
    database_url: str, revision: str = "head", *, plugin_tables: Iterable[PluginTables] | None = None
) -> None:
    """The core to ``revision``; at the head, also every plugin branch to its head (the installed
    plugins' unless ``plugin_tables`` says which)."""
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)
    if revision == "head":
        upgrade_plugin_tables(database_url, plugin_tables)


def upgrade_plugin_tables(database_url: str, plugin_tables: Iterable[PluginTables] | None = None) -> None:
    """Every plugin branch to its head (the installed plugins' unless ``plugin_tables`` says which)."""
    tables = installed_tables() if plugin_tables is None else list(plugin_tables)
    if tables:
        from alembic import command

        command.upgrade(plugin_alembic_config(database_url, tables), "heads")


def downgrade(database_url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)


def drop_plugin_tables(database_url: str, prefix: str, tables: Iterable[PluginTables] | None = None) -> None:
    """Remove one plugin's tables (its branch down to base), before its package is uninstalled."""
    tables = installed_tables() if tables is None else list(tables)
    if prefix not in {t.prefix for t in tables}:
        known = ", ".join(sorted(t.prefix for t in tables)) or "none"
        raise LookupError(f"no installed plugin keeps tables under {prefix!r} (installed: {known})")
    from alembic import command

    command.downgrade(plugin_alembic_config(database_url, tables), f"{prefix}@base")


def current_head() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
