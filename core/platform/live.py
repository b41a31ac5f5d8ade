"""Live updates: domain events, once committed, reach the GraphQL subscriptions of every API process.

An event is published by its dispatch job (``events.dispatch_job``), after the change committed, in
whichever process ran the job. With Redis configured it goes through a Redis pub/sub channel, which each
API process listens to from its first subscriber on; on the embedded default it goes straight to this
process's subscribers (the job ran in a worker thread of the API process, with an event loop of its own,
so each subscriber is handed events in its own loop).

What travels is the event itself: ids, type, status, role — never content. A subscriber decides, per
event and with the access rules, what its person may see (``schema/live_api.py``). Delivery is at most
once and best effort (a subscriber that is too slow loses the oldest updates): a client that reconnects
asks the API for the current state, as it must after any gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import structlog

from legetime.core.platform.config import Settings
from legetime.core.platform.events import Event, EventType

log = structlog.get_logger(__name__)

QUEUE_SIZE = 256
"""Updates kept for a subscriber that has not read them yet; beyond, the oldest are dropped."""
RECONNECT_SECONDS = 1.0


class LiveEvents:
    def __init__(self, settings: Settings) -> None:
        self.redis_url = settings.redis_url
        self.channel = f"{settings.queue_namespace}:live-events"
        self._subscribers: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]] = {}
        self._lock = threading.Lock()
        self._listener: asyncio.Task[None] | None = None

    async def publish(self, event: Event) -> None:
        """Hand a committed event to every subscriber, in this process and (with Redis) the others."""
        if self.redis_url is None:
            self._fan_out(event)
            return
        from redis.asyncio import Redis

        client = Redis.from_url(self.redis_url)
        try:
            await client.publish(self.channel, _encode(event))
        finally:
            await client.aclose()

    async def subscribe(self) -> AsyncIterator[Event]:
        """The events committed from now on, until the caller stops iterating."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        key = id(queue)
        with self._lock:
            self._subscribers[key] = (loop, queue)
        if self.redis_url is not None:
            self._listen(loop)
        try:
            while True:
                yield await queue.get()
        finally:
            with self._lock:
                self._subscribers.pop(key, None)

    async def close(self) -> None:
        """Stop listening to Redis (the platform is closing)."""
        if self._listener is not None and not self._listener.done():
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._listener

    def _fan_out(self, event: Event) -> None:
        with self._lock:
            targets = list(self._subscribers.values())
        for loop, queue in targets:
            with contextlib.suppress(RuntimeError):  # its loop has closed meanwhile
                loop.call_soon_threadsafe(_put, queue, event)

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """Listen to the Redis channel in this (the API's) loop, from the first subscription on."""
        if self._listener is None or self._listener.done():
            self._listener = loop.create_task(self._relay())

    async def _relay(self) -> None:
        """Hand every event on the channel to this process's subscribers; reconnect after a failure (the
        updates published meanwhile are lost: clients ask again after a gap)."""
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
                        self._fan_out(_decode(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live.relay_failed", error=type(exc).__name__)
                await asyncio.sleep(RECONNECT_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                    await client.aclose()


def _put(queue: asyncio.Queue[Event], event: Event) -> None:
    if queue.full():
        queue.get_nowait()  # a slow subscriber loses the oldest update, not the newest
    queue.put_nowait(event)


def _encode(event: Event) -> str:
    return json.dumps(
        {
            "id": str(event.id),
            "type": event.type.value,
            "occurred_at": event.occurred_at.isoformat(),
            "case_id": str(event.case_id) if event.case_id else None,
            "case_status": event.case_status,
            "actor_role": event.actor_role,
            "data": dict(event.data),
        }
    )


def _decode(raw: bytes | str) -> Event:
    data: dict[str, Any] = json.loads(raw)
    return Event(
        id=uuid.UUID(data["id"]),
        type=EventType(data["type"]),
        occurred_at=datetime.fromisoformat(data["occurred_at"]),
        case_id=uuid.UUID(data["case_id"]) if data["case_id"] else None,
        case_status=data["case_status"],
        actor_role=data["actor_role"],
        data=data["data"],
    )
