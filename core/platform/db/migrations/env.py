"""Alembic environment: async engine, the same migrations on SQLite (batch mode) and PostgreSQL."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

import legetime.core.platform.db.appointment_models
import legetime.core.platform.db.models  # noqa: F401 - registers the tables on the metadata
from legetime.core.platform.db.base import Base
from legetime.core.platform.db.migrate import run_on

config = context.config
target_metadata = Base.metadata


def _core_table(name: str | None, type_: str, parent_names: object) -> bool:
    """Autogenerate compares the core's tables only: on PostgreSQL the plugins' tables (their own Alembic
    branches, ``plugin_tables``) share the database."""
    return type_ != "table" or name in target_metadata.tables


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
        include_name=_core_table,
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    run_on(str(url), _configure)


run()
