"""The database handle: one async engine and a session factory per process (and per event loop)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any, foreign_keys: bool = True) -> None:
    # Foreign keys are off by default in SQLite; WAL lets the API read while the worker writes.
    # isolation_level=None hands transaction control to SQLAlchemy (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # Every transaction takes SQLite's write lock up front (BEGIN IMMEDIATE): transactions run one after
    # the other, so a read-then-write never meets a stale snapshot ("database is locked" mid-way), and
    # SAVEPOINTs behave (SQLAlchemy's documented recipe for pysqlite/aiosqlite). Readers outside a
    # transaction still proceed (WAL). This is the embedded default; PostgreSQL takes row locks instead.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    def __init__(self, url: str, *, echo: bool = False, foreign_keys: bool = True) -> None:
        """``foreign_keys=False`` is for migrations only: SQLite rebuilds a table to alter it (batch mode),
        which foreign keys that point at it would refuse while rows exist."""
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database:
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {"echo": echo}
        if not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(
                self.engine.sync_engine,
                "connect",
                lambda dbapi, record: _sqlite_pragmas(dbapi, record, foreign_keys=foreign_keys),
            )
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: commits on success, rolls back on any exception."""
        async with self.sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
