"""The subscription sockets of this API process: who holds them, and when they are closed.

A socket logs in with ``connection_init`` (``LegetimeGraphQL.on_ws_connect``); from then on it belongs to
a person and a session, and is closed by the server:

- **when its session ends**: at once on a logout or an erasure in any process (``LiveEvents.end_sessions``
  reaches every process), and at the latest at the next check (every ``CHECK_SECONDS``, one query for all
  of this process's sockets) when it expired or the signal was lost — close code 4403;
- **when it has been idle** for ``IDLE_SECONDS``: no operation running and no message from the client
  (the protocol's ``ping`` counts) — close code 1000, a normal closure a client need not retry;
- **when its person opens one too many**: more than ``MAX_CONNECTIONS_PER_PERSON`` in this process close
  the oldest (a tab left open), code 4429, which clients do not retry.

Dead peers are found by the WebSocket protocol's own pings (``legetime serve`` sends one every 20 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler

from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import AuthSession
from legetime.schema.context import Context

if TYPE_CHECKING:
    from legetime.core.platform.runtime import Platform

log = structlog.get_logger(__name__)

MAX_CONNECTIONS_PER_PERSON = 5
IDLE_SECONDS = 300.0
CHECK_SECONDS = 30.0
CHECK_BATCH = 500
SESSION_ENDED = (4403, "Session ended")
TOO_MANY = (4429, "Too many connections: the oldest was closed")
IDLE = (1000, "Idle")


class LiveSocketHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """strawberry's ``graphql-transport-ws`` handler, registered with the process's ``LiveSockets`` once
    it has logged in."""

    active_at: float = 0.0
    closing: bool = False

    @property
    def sockets(self) -> LiveSockets:
        sockets: LiveSockets = getattr(self.view, "sockets")  # noqa: B009 (the view is LegetimeGraphQL)
        return sockets

    async def handle_message(self, message: Any) -> None:
        self.active_at = time.monotonic()
        await super().handle_message(message)

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            self.sockets.opened(self)

    async def shutdown(self) -> None:
        self.sockets.closed(self)
        await super().shutdown()

    def idle(self, now: float) -> bool:
        return not self.operations and now - self.active_at > IDLE_SECONDS

    def end(self, close: tuple[int, str]) -> None:
        """Close the socket (from the process's checks); its operations end with it."""
        if not self.closing:
            self.closing = True
            task = asyncio.get_running_loop().create_task(self.websocket.close(*close))
            task.add_done_callback(_quietly)


class LiveSockets:
    """This process's logged-in sockets, by person; the checks that close them."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._by_person: dict[uuid.UUID, list[LiveSocketHandler]] = {}
        self._checks: asyncio.Task[None] | None = None
        self._stop_watching: Callable[[], None] | None = None

    def opened(self, socket: LiveSocketHandler) -> None:
        person_id = socket.context.actor.person_id
        assert person_id is not None
        held = self._by_person.setdefault(person_id, [])
        held.append(socket)
        for oldest in held[: max(0, len(held) - MAX_CONNECTIONS_PER_PERSON)]:
            log.info("live.socket_evicted", person_id=str(person_id))
            oldest.end(TOO_MANY)
        if self._checks is None or self._checks.done():
            self._stop_watching = self.platform.live.watch_sessions(self._sessions_ended)
            self._checks = asyncio.get_running_loop().create_task(self._check_forever())

    def closed(self, socket: LiveSocketHandler) -> None:
        person_id = socket.context.actor.person_id
        held = self._by_person.get(person_id) if person_id is not None else None
        if held is not None and socket in held:
            held.remove(socket)
            if not held:
                del self._by_person[person_id]  # type: ignore[arg-type]

    def count(self) -> int:
        return sum(len(held) for held in self._by_person.values())

    async def stop(self) -> None:
        if self._stop_watching is not None:
            self._stop_watching()
        if self._checks is not None:
            self._checks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checks

    def _all(self) -> list[LiveSocketHandler]:
        return [socket for held in self._by_person.values() for socket in held]

    def _sessions_ended(self, session_id: uuid.UUID | None, person_id: uuid.UUID | None) -> None:
        for socket in self._all():
            actor = socket.context.actor
            if actor.session_id == session_id or (person_id is not None and actor.person_id == person_id):
                socket.end(SESSION_ENDED)

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            try:
                await self.check()
            except Exception as exc:  # the next round tries again
                log.warning("live.socket_check_failed", error=type(exc).__name__)

    async def check(self) -> None:
        """Close the sockets that have been idle too long, and those whose session has ended."""
        now = time.monotonic()
        sockets = self._all()
        for socket in sockets:
            if socket.idle(now):
                socket.end(IDLE)
        session_ids = {s.context.actor.session_id for s in sockets if s.context.actor.session_id is not None}
        if not session_ids:
            return
        ids, standing = sorted(session_ids), set[uuid.UUID]()
        async with self.platform.db.read_sessions() as session:
            for start in range(0, len(ids), CHECK_BATCH):  # SQLite takes a bounded number of parameters
                standing.update(
                    await session.scalars(
                        select(AuthSession.id).where(
                            AuthSession.id.in_(ids[start : start + CHECK_BATCH]),
                            AuthSession.revoked_at.is_(None),
                            AuthSession.expires_at > utcnow(),
                        )
                    )
                )
        for socket in sockets:
            if socket.context.actor.session_id not in standing:
                socket.end(SESSION_ENDED)


def _quietly(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.info("live.socket_close_failed", error=type(task.exception()).__name__)
