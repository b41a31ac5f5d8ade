"""Live updates: domain events, once committed, reach the GraphQL subscriptions of every API process.

A transaction's events are handed over right after it commits (``events.publish_after_commit``), by the
process that committed it, in commit order. With Redis configured they go through a Redis pub/sub channel
(from a publisher thread, so a commit never waits on Redis), which each API process listens to from its
first socket on; on the embedded default they go straight to this process's subscribers (a job ran in a
worker thread with an event loop of its own, so each subscriber is handed events in its own loop).

The same channel carries two signals besides events: sessions ended (a logout, an erasure), so that every
process closes the sockets logged in with them at once (``schema/live_sockets.py``); and settings changed
(an operator's change), so that every process applies it (``runtime_settings``).

What travels is the event itself: ids, type, status, role — never content. A subscriber decides, per
event and with the access rules, what its person may see (``schema/live_api.py``). Delivery is at most
once and best effort (a subscriber that is too slow loses the oldest updates): a client that reconnects
asks the API for the current state, as it must after any gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from typing import Any

import structlog

from legetime.core.platform.config import Settings
from legetime.core.platform.events import Event, EventType

log = structlog.get_logger(__name__)

QUEUE_SIZE = 256
"""Updates kept for a subscriber that has not read them yet; beyond, the oldest are dropped."""
RECONNECT_SECONDS = 1.0
PUBLISH_TIMEOUT_SECONDS = 2.0

SessionsEnded = Callable[[uuid.UUID | None, uuid.UUID | None], None]
"""Called with (session id, person id): that session, or every session of that person, has ended."""


class LiveEvents:
    def __init__(self, settings: Settings) -> None:
        self.redis_url = settings.redis_url
        self.channel = f"{settings.queue_namespace}:live-events"
        self._subscribers: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]] = {}
        self._session_watchers: list[tuple[asyncio.AbstractEventLoop, SessionsEnded]] = []
        self._settings_watchers: list[tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = []
        self._lock = threading.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._outgoing: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._publisher: threading.Thread | None = None

    def committed(self, events: list[Event]) -> None:
        """Hand a committed transaction's events to every subscriber, in this process and (with Redis) the
        others. From any thread; never blocks."""
        if self.redis_url is None:
            for event in events:
                self._fan_out(event)
            return
        for event in events:
            self._send(json.dumps(_encode(event)))

    def end_sessions(
        self, *, session_id: uuid.UUID | None = None, person_id: uuid.UUID | None = None
    ) -> None:
        """Tell every process that a session (a logout), or all of a person's (an erasure), has ended, so
        that the sockets logged in with them close now rather than at their next check. After the commit."""
        if self.redis_url is None:
            self._sessions_ended(session_id, person_id)
            return
        ended = {"kind": "sessions_ended", "session_id": _str(session_id), "person_id": _str(person_id)}
        self._send(json.dumps(ended))

    def watch_sessions(self, callback: SessionsEnded) -> Callable[[], None]:
        """Call ``callback`` (in the caller's loop) whenever sessions end, in any process. Returns the
        function that stops it."""
        loop = asyncio.get_running_loop()
        entry = (loop, callback)
        with self._lock:
            self._session_watchers.append(entry)
        if self.redis_url is not None:
            self._listen(loop)

        def stop() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._session_watchers.remove(entry)

        return stop

    def settings_changed(self) -> None:
        """Tell every process (this one included) that operators changed settings. After the commit."""
        if self.redis_url is None:
            self._settings_changed()
            return
        self._send(json.dumps({"kind": "settings_changed"}))

    def watch_settings(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (in the caller's loop) whenever settings change, in any process. Returns the
        function that stops it."""
        loop = asyncio.get_running_loop()
        entry = (loop, callback)
        with self._lock:
            self._settings_watchers.append(entry)
        if self.redis_url is not None:
            self._listen(loop)

        def stop() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._settings_watchers.remove(entry)

        return stop

    async def subscribe(self) -> AsyncIterator[Event]:
        """The events committed from now on, until the caller stops iterating."""
        with self._registered() as updates:
            while True:
                yield await updates.get()

    async def batches(self, every: float) -> AsyncIterator[list[Event]]:
        """The events committed from now on, handed over at most once every ``every`` seconds: what a
        subscriber that recomputes something on each change takes (the figures of the operation)."""
        with self._registered() as updates:
            while True:
                batch = [await updates.get()]
                while not updates.empty():
                    batch.append(updates.get_nowait())
                yield batch
                await asyncio.sleep(every)

    @contextlib.contextmanager
    def _registered(self) -> Iterator[asyncio.Queue[Event]]:
        loop = asyncio.get_running_loop()
        updates: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        key = id(updates)
        with self._lock:
            self._subscribers[key] = (loop, updates)
        if self.redis_url is not None:
            self._listen(loop)
        try:
            yield updates
        finally:
            with self._lock:
                self._subscribers.pop(key, None)

    async def close(self) -> None:
        """Stop listening to Redis and publish what is still waiting (the platform is closing)."""
        if self._listener is not None and not self._listener.done():
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._listener
        if self._publisher is not None:
            self._outgoing.put(None)
            await asyncio.to_thread(self._publisher.join, PUBLISH_TIMEOUT_SECONDS)
            self._publisher = None

    def _send(self, message: str) -> None:
        with self._lock:
            if self._publisher is None or not self._publisher.is_alive():
                self._publisher = threading.Thread(
                    target=self._publish_loop, name="live-publisher", daemon=True
                )
                self._publisher.start()
        self._outgoing.put(message)

    def _publish_loop(self) -> None:
        """Publish what commits hand over, one message at a time, in order (Redis delivers messages in the
        order it receives them)."""
        from redis import Redis

        assert self.redis_url is not None
        client: Redis | None = None
        while (message := self._outgoing.get()) is not None:
            try:
                if client is None:
                    client = Redis.from_url(
                        self.redis_url,
                        socket_timeout=PUBLISH_TIMEOUT_SECONDS,
                        socket_connect_timeout=PUBLISH_TIMEOUT_SECONDS,
                    )
                client.publish(self.channel, message)
            except Exception as exc:  # lost: subscribers ask again after a gap
                log.warning("live.publish_failed", error=type(exc).__name__)
                client = None
        if client is not None:
            client.close()

    def _fan_out(self, event: Event) -> None:
        with self._lock:
            targets = list(self._subscribers.values())
        for loop, updates in targets:
            with contextlib.suppress(RuntimeError):  # its loop has closed meanwhile
                loop.call_soon_threadsafe(_put, updates, event)

    def _sessions_ended(self, session_id: uuid.UUID | None, person_id: uuid.UUID | None) -> None:
        with self._lock:
            watchers = list(self._session_watchers)
        for loop, callback in watchers:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback, session_id, person_id)

    def _settings_changed(self) -> None:
        with self._lock:
            watchers = list(self._settings_watchers)
        for loop, callback in watchers:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback)

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """Listen to the Redis channel in this (the API's) loop, from the first socket on."""
        if self._listener is None or self._listener.done():
            self._listener = loop.create_task(self._relay())

    async def _relay(self) -> None:
        """Hand everything on the channel to this process's subscribers and watchers; reconnect after a
        failure (what was published meanwhile is lost: clients ask again after a gap)."""
        from redis.asyncio import Redis

        assert self.redis_url is not None
        while True:
            client = Redis.from_url(self.redis_url)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._received(json.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live.relay_failed", error=type(exc).__name__)
                await asyncio.sleep(RECONNECT_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                    await client.aclose()

    def _received(self, data: dict[str, Any]) -> None:
        if data.get("kind") == "sessions_ended":
            self._sessions_ended(_uuid(data["session_id"]), _uuid(data["person_id"]))
        elif data.get("kind") == "settings_changed":
            self._settings_changed()
        else:
            self._fan_out(_decode(data))


def _put(updates: asyncio.Queue[Event], event: Event) -> None:
    if updates.full():
        updates.get_nowait()  # a slow subscriber loses the oldest update, not the newest
    updates.put_nowait(event)


def _str(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _uuid(value: str | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(value)


def _encode(event: Event) -> dict[str, Any]:
    return {
        "kind": "event",
        "id": str(event.id),
        "type": event.type.value,
        "occurred_at": event.occurred_at.isoformat(),
        "case_id": _str(event.case_id),
        "case_status": event.case_status,
        "actor_role": event.actor_role,
        "data": dict(event.data),
    }


def _decode(data: dict[str, Any]) -> Event:
    return Event(
        id=uuid.UUID(data["id"]),
        type=EventType(data["type"]),
        occurred_at=datetime.fromisoformat(data["occurred_at"]),
        case_id=_uuid(data["case_id"]),
        case_status=data["case_status"],
        actor_role=data["actor_role"],
        data=data["data"],
    )
