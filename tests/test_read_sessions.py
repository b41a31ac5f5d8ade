"""A GraphQL request's reads on PostgreSQL run each statement on its own (autocommit: no BEGIN and COMMIT
round trips), so a read session must never write: anything but a read or the access log's entries is
refused before it reaches the database."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, text

from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.engine import Database, ReadSessionWrote
from legetime.core.platform.db.models import AuditEvent, OutboxJob
from legetime.core.protection import audit


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite's: snapshot transactions
def test_a_read_session_reads_logs_and_refuses_to_write(database_url: str) -> None:
    async def run() -> None:
        db = Database(database_url)
        try:
            async with db.read_sessions() as session:
                assert await session.scalar(select(func.count()).select_from(OutboxJob)) == 0
                await audit.write_rows(
                    session, [(utcnow(), None, "patient", None, "case", "c-1", "list", None)]
                )
                with pytest.raises(ReadSessionWrote, match="may only read"):
                    await session.execute(text("DELETE FROM outbox_job"))
                with pytest.raises(ReadSessionWrote):
                    await session.execute(text("UPDATE audit_event SET reason = 'x'"))
                with pytest.raises(ReadSessionWrote):  # a WITH may write the access log only
                    gone = "WITH gone AS (DELETE FROM outbox_job RETURNING id) SELECT count(*) FROM gone"
                    await session.execute(text(gone))
            async with db.transaction() as session:  # the entry stayed: each statement commits itself
                logged = await session.scalar(select(func.count()).where(AuditEvent.object_id == "c-1"))
                assert logged == 1
        finally:
            await db.dispose()

    asyncio.run(run())
