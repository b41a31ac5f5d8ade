"""A pooled PostgreSQL connection the server has closed is not handed out (no pre-ping round trip:
``legetime.core.platform.db.engine._drop_closed``)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from legetime.core.platform.db.engine import Database


async def test_a_connection_the_server_closed_is_replaced_without_a_failed_request(
    fresh_postgres_url: str,
) -> None:
    db = Database(fresh_postgres_url)
    try:
        async with db.engine.connect() as connection:
            first = await connection.scalar(text("SELECT pg_backend_pid()"))
        # The pooled connection is ended from outside (as a restart or an idle timeout would).
        other = Database(fresh_postgres_url, pooled=False)
        try:
            async with other.engine.connect() as killer:
                ended = await killer.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            assert ended is True
        finally:
            await other.dispose()
        await asyncio.sleep(0.2)  # the event loop reads the server's end of the idle connection
        async with db.read_sessions() as session:
            second = await session.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
    finally:
        await db.dispose()
