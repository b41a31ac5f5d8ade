"""A small SQLite file for state that simulated providers keep outside process memory (the fake PSP,
the SMS outbox): shared safely by API and worker processes, private to the owner, in WAL mode."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class SqliteFile:
    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self._schema = schema
        self._ready = False
        self._lock = threading.Lock()

    def connect(self) -> sqlite3.Connection:
        """A new connection (one per operation: cheap, and safe across threads and processes).
        ``isolation_level=None``: callers issue BEGIN/COMMIT; ``timeout``: wait for another writer."""
        self._ensure_schema()
        connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        connection.row_factory = sqlite3.Row
        return connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken at once (``BEGIN IMMEDIATE``), so read-then-write cannot race."""
        connection = self.connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    def _ensure_schema(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Private before SQLite creates it (its -wal and -shm files copy the database file's mode).
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            # Switching to WAL needs the database to itself, and SQLite does not wait for that (no busy
            # timeout): processes creating the schema at once take turns through a file lock.
            with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
                try:
                    connection.execute("PRAGMA journal_mode=WAL")
                    connection.executescript(self._schema)
                finally:
                    connection.close()
            self._ready = True
