"""Alembic environment of the plugins' tables: every installed plugin's branch, in a version table apart
from the core's, on the database where plugin tables live (``plugin_tables``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from legetime.core.platform.db.migrate import PLUGIN_VERSION_TABLE, run_on

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


def run() -> None:
    url = config.attributes["database_url"]
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    run_on(str(url), _configure)


run()
