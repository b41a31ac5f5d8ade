"""Alembic migrations: the same migrations go up and down on SQLite and PostgreSQL, and the models
match them exactly (no drift)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import core.db.models  # noqa: F401
from core.db.base import Base
from core.db.engine import Database
from core.migrate import current_head, downgrade, upgrade
from tests.cli import run_cli

TABLES = {
    "person",
    "staff_membership",
    "consultation_case",
    "participant",
    "consent",
    "message",
    "attachment",
    "payment_reservation",
    "journal_note",
    "audit_event",
    "outbox_job",
    "login_transaction",
    "auth_session",
    "notification",
    "case_statistic",
    "case_erasure",
    "retention_run",
}


def _inspect(url: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        database = Database(url)
        try:
            async with database.engine.connect() as connection:

                def look(sync_connection: Any) -> dict[str, Any]:
                    context = MigrationContext.configure(sync_connection, opts={"compare_type": True})
                    return {
                        "tables": set(inspect(sync_connection).get_table_names()) - {"alembic_version"},
                        "revision": context.get_current_revision(),
                        "diff": compare_metadata(context, Base.metadata),
                    }

                return await connection.run_sync(look)
        finally:
            await database.dispose()

    return asyncio.run(run())


def test_migrations_up_down_up(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    state = _inspect(empty_database_url)
    assert state["tables"] == TABLES
    assert state["revision"] == current_head()

    downgrade(empty_database_url, "base")
    assert _inspect(empty_database_url)["tables"] == set()

    upgrade(empty_database_url)
    assert _inspect(empty_database_url)["tables"] == TABLES


def test_models_match_the_migrations(database_url: str) -> None:
    assert _inspect(database_url)["diff"] == []


def test_legetime_migrate_creates_the_embedded_database(tmp_path: Path) -> None:
    data = tmp_path / "embedded"
    result = run_cli("migrate", env={"LEGETIME_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr
    assert (data / "legetime.db").exists()
    assert _inspect(f"sqlite+aiosqlite:///{data / 'legetime.db'}")["tables"] == TABLES
