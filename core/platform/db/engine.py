"""The database handle: one async engine and a session factory per process (and per event loop)."""

from __future__ import annotations

import asyncio
import os
import re
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

WRITER_WAIT_SECONDS = 30.0
"""How long a transaction on SQLite may wait for the other writers of its process (then: unavailable)."""


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
    # A transaction that may write takes SQLite's write lock up front (BEGIN IMMEDIATE): writers run one
    # after the other, so a read-then-write never meets a stale snapshot ("database is locked" mid-way),
    # and SAVEPOINTs behave (SQLAlchemy's documented recipe for pysqlite/aiosqlite). This is the embedded
    # default; PostgreSQL takes row locks instead.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_read(connection: Any) -> None:
    # A request's reads: a snapshot (WAL), no write lock, so readers never queue behind each other or
    # behind a writer. Their access-log entries are written after them (``schema.context``).
    connection.exec_driver_sql("BEGIN")


def _drop_closed(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    """A pooled connection's liveness, checked without a round trip: asyncpg marks a connection closed as
    soon as its event loop reads the server's end of it (a restart, ``pg_terminate_backend``, an idle
    timeout), and an idle pooled connection's end is read while it waits in the pool. Such a connection
    is dropped here and the pool hands out another (SQLAlchemy's ``DisconnectionError`` protocol: up to
    three attempts). A connection lost without a word from the server (a cut network) is not seen here;
    its first statement fails as unavailable (``is_unavailable``) and the pool is invalidated."""
    driver_connection = getattr(dbapi_connection, "driver_connection", None)
    is_closed = getattr(driver_connection, "is_closed", None)
    if is_closed is not None and is_closed():
        raise exc.DisconnectionError("the server closed the connection")


def is_unavailable(error: BaseException) -> bool:
    """Whether an error means the database cannot be reached for now (down, restarting, the connection
    lost): a request may be retried, unlike a bug. Walks the cause chain (drivers wrap their errors)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, exc.DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, exc.OperationalError | exc.InterfaceError | ConnectionError | TimeoutError):
            return True
        if type(seen).__name__ in _DRIVER_CONNECTION_ERRORS:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# asyncpg's own classes for a server that is going away or not there (named, not imported: the driver is
# only loaded for PostgreSQL).
_DRIVER_CONNECTION_ERRORS = frozenset(
    {
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "CannotConnectNowError",
        "AdminShutdownError",
        "CrashShutdownError",
        "TooManyConnectionsError",
    }
)


class SharedSession(AsyncSession):
    """A session that several coroutines of one request use at once: GraphQL resolves sibling fields and
    DataLoader batches concurrently, and SQLAlchemy refuses overlapping operations on one session. Each
    operation waits for the one before it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._operation = asyncio.Lock()

    # ``scalars`` and ``stream_scalars`` go through ``execute`` and ``stream``: not wrapped again.
    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        async with self._operation:
            return await super().execute(*args, **kwargs)

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        async with self._operation:
            return await super().scalar(*args, **kwargs)

    async def stream(self, *args: Any, **kwargs: Any) -> Any:
        async with self._operation:
            return await super().stream(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        async with self._operation:
            return await super().get(*args, **kwargs)

    async def get_one(self, *args: Any, **kwargs: Any) -> Any:
        async with self._operation:
            return await super().get_one(*args, **kwargs)

    async def refresh(self, *args: Any, **kwargs: Any) -> None:
        async with self._operation:
            await super().refresh(*args, **kwargs)

    async def merge(self, *args: Any, **kwargs: Any) -> Any:
        async with self._operation:
            return await super().merge(*args, **kwargs)

    async def delete(self, *args: Any, **kwargs: Any) -> None:
        async with self._operation:
            await super().delete(*args, **kwargs)

    async def flush(self, *args: Any, **kwargs: Any) -> None:
        async with self._operation:
            await super().flush(*args, **kwargs)

    async def commit(self) -> None:
        async with self._operation:
            await super().commit()

    async def rollback(self) -> None:
        async with self._operation:
            await super().rollback()

    async def close(self) -> None:
        async with self._operation:
            await super().close()


_READ_STATEMENTS = ("SELECT", "WITH", "INSERT INTO audit_event ")
"""What a read session may run: reads, and the access log's entries (a page that logs itself is a WITH)."""
_WRITES = re.compile(r"\b(?:INSERT\s+INTO|DELETE\s+FROM|UPDATE)\s+(\w+)", re.IGNORECASE)
"""The tables a statement writes to: a WITH may write only the access log (``audit.logging_select``)."""


class ReadSessionWrote(RuntimeError):
    """A statement that is not a read ran in a read session (autocommit on PostgreSQL: it would stay)."""


def _reads_only(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    head = statement.lstrip()
    if not head.startswith(_READ_STATEMENTS) or (
        head.startswith("WITH") and any(table != "audit_event" for table in _WRITES.findall(head))
    ):
        raise ReadSessionWrote(f"a read session may only read: {head.split(None, 3)[:3]}")


def _private_file(path: Path) -> None:
    """The embedded database holds health data: its file is created readable by its owner only (SQLite
    gives the -wal and -shm files it makes next to it the same permissions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


class Database:
    def __init__(
        self, url: str, *, echo: bool = False, foreign_keys: bool = True, pooled: bool = True
    ) -> None:
        """``foreign_keys=False`` is for migrations only: SQLite rebuilds a table to alter it (batch mode),
        which foreign keys that point at it would refuse while rows exist. ``pooled=False``: a connection
        per transaction, usable from any event loop (asyncpg connections belong to the loop that opened
        them)."""
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            _private_file(Path(parsed.database))
        # Errors keep the SQL but not its parameters: those are national ID hashes, sealed content, names.
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if not pooled:
            kwargs.update(poolclass=NullPool)
        elif not self.is_sqlite:
            # No pre-ping: on asyncpg it is three round trips on every checkout (BEGIN, ``;``, ROLLBACK),
            # a third of a case-list request's. ``_drop_closed`` does its work without the network.
            kwargs.update(pool_size=10, max_overflow=10)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if pooled and not self.is_sqlite:
            event.listen(self.engine.sync_engine, "checkout", _drop_closed)
        self.read_engine = self.engine
        if not self.is_sqlite:
            # A request's reads on PostgreSQL: each statement on its own (autocommit), no BEGIN and COMMIT
            # round trips. Under READ COMMITTED a transaction around them saw no more than each statement
            # does; a statement that reads and logs (``audit.logging_select``) is atomic by itself, and
            # the buffered entries of the other reads are written with one INSERT before the answer is
            # sent, as before. Read sessions only read: ``_reads_only`` refuses anything else.
            self.read_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
            event.listen(self.read_engine.sync_engine, "before_cursor_execute", _reads_only)
        if self.is_sqlite:
            # Reads get an engine of their own, whose transactions begin without the write lock.
            self.read_engine = create_async_engine(url, **kwargs)
            for engine, begin in ((self.engine, _sqlite_begin), (self.read_engine, _sqlite_begin_read)):
                event.listen(
                    engine.sync_engine,
                    "connect",
                    lambda dbapi, record: _sqlite_pragmas(dbapi, record, foreign_keys=foreign_keys),
                )
                event.listen(engine.sync_engine, "begin", begin)
        self._writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = async_sessionmaker(
            self.read_engine, expire_on_commit=False, class_=SharedSession
        )
        """For the read session of one GraphQL request, used by concurrent resolvers."""

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: commits on success, rolls back on any exception."""
        if not self.is_sqlite:
            async with self.sessions() as session, session.begin():
                yield session
            return
        # SQLite has one writer at a time. Coroutines of this process queue for it here, in order,
        # instead of in SQLite's busy handler, which sleeps in growing steps (up to 100 ms) and lets
        # a late comer overtake: that was most of the embedded default's tail latency.
        writer = self._writers.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with asyncio.timeout(WRITER_WAIT_SECONDS):
            await writer.acquire()
        try:
            async with self.sessions() as session, session.begin():
                yield session
        finally:
            writer.release()

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
