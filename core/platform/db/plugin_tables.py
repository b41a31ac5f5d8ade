"""Tables that plugins own in the platform's database (``register_tables``), and the database handle their
providers use (``ProviderContext.database``).

- **Where.** On PostgreSQL, in the platform's database. On the embedded SQLite default, in a second file
  next to the main one (``<name>-plugins.<suffix>``): SQLite has one writer per file, and a provider
  commits its own state (a claim before a call to its service) while the job that called it still holds
  the main file's write lock. Either way, no plugin keeps a file of its own.
- **Migrations.** Each plugin's tables are an Alembic branch of their own (the branch label is the
  plugin's table prefix), in a version table apart from the core's (``plugin_alembic_version``), so a
  plugin's migrations never depend on the core's revision numbers. ``legetime migrate`` applies every
  installed plugin's branch; ``legetime drop-plugin-tables <prefix>`` removes one before its package is
  uninstalled (docs/plugins.md).
- **Connections.** A provider runs in whichever event loop calls it (the API's, a worker thread's), and
  asyncpg connections belong to the loop that opened them: the handle opens a connection per transaction,
  apart from the platform's pool, so a provider's state never ties up the requests' connections. A
  provider touches its state around a call to its service, which costs far more than the connection.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import MetaData
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.platform.db.engine import Database
from legetime.core.platform.errors import PluginError

PREFIX = re.compile(r"[a-z][a-z0-9_]{1,30}")


@dataclass(frozen=True)
class PluginTables:
    """What ``register_tables`` returns: a plugin's tables and its migrations."""

    prefix: str
    """Starts every table name (``<prefix>_…``) and labels the plugin's Alembic branch: lowercase letters,
    digits and ``_``, unique among installed plugins."""
    metadata: MetaData
    """The plugin's tables (SQLAlchemy Core ``Table`` objects or ORM models on a ``MetaData`` of its own);
    checked against the migrations by the test suite's drift check."""
    migrations: Path
    """The folder of the plugin's Alembic revision files. The first has ``down_revision = None`` and
    ``branch_labels = ("<prefix>",)``."""

    def check(self, plugin: str) -> None:
        if not PREFIX.fullmatch(self.prefix):
            raise PluginError(f"plugin {plugin!r}: table prefix {self.prefix!r} is not {PREFIX.pattern}")
        for table in self.metadata.tables.values():
            if not table.name.startswith(f"{self.prefix}_"):
                raise PluginError(f"plugin {plugin!r}: table {table.name!r} must start with {self.prefix}_")
        if not self.migrations.is_dir():
            raise PluginError(f"plugin {plugin!r}: no migrations folder at {self.migrations}")


def collect_tables(answers: Iterable[tuple[str, object]]) -> list[PluginTables]:
    """The plugins' answers to ``register_tables`` (plugin name, answer), checked."""
    found: dict[str, PluginTables] = {}
    for plugin, offered in answers:
        if offered is None:
            continue
        if not isinstance(offered, PluginTables):
            raise PluginError(f"plugin {plugin!r} offered {offered!r}, not PluginTables")
        offered.check(plugin)
        if offered.prefix in found:
            raise PluginError(f"table prefix {offered.prefix!r} registered twice (again by {plugin!r})")
        found[offered.prefix] = offered
    return list(found.values())


def plugin_database_url(database_url: str) -> str:
    """Where plugin tables live for a platform database (see the module's docstring)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return database_url
    main = Path(url.database)
    companion = main.with_name(f"{main.stem}-plugins{main.suffix}")
    return url.set(database=str(companion)).render_as_string(hide_password=False)


class PluginDatabase:
    """The platform database as plugins see it: ``async with database.transaction() as session``."""

    def __init__(self, database_url: str) -> None:
        self.url = plugin_database_url(database_url)
        self._database: Database | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction of its own: commits on success, rolls back on any exception."""
        if self._database is None:
            self._database = Database(self.url, pooled=False)
        async with self._database.transaction() as session:
            yield session

    async def dispose(self) -> None:
        if self._database is not None:
            await self._database.dispose()
