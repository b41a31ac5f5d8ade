"""Automatic persisted queries, as Apollo Client, urql and other clients speak them: a frontend sends the
SHA-256 of a document instead of the document (``extensions.persistedQuery``); the first time, the server
answers ``PERSISTED_QUERY_NOT_FOUND`` and the client sends the document with its hash, which the server
keeps once it has parsed and validated it.

The hash stands for the text only: a document sent by its hash runs exactly as if its text had been sent
(parsed and validated once per process in ``legetime.schema.documents``, the limits and the input guard
applied, GET for queries only). What is kept is what anyone could have sent: a text under its own hash,
never something a client names.

Kept in this process (the most recent ones, bounded), and, when ``LEGETIME_REDIS_URL`` is set, in Redis for
a day, so that every API process knows a hash one of them was given. Redis is asked only when this
process does not know the hash; when Redis cannot be reached the hash counts as unknown (the client
sends the document) and a warning is logged. One Redis client (a pool) per process, made on first use.

Anyone may have documents kept, so how many one client (address) registers is limited
(``LEGETIME_PERSISTED_QUERY_RATE_LIMIT``, counted like the login limits: in Redis when it is set): a
document costs one per started ``COST_CHARACTERS`` (``registration_cost``). Only a registration counts, a
hash this process already knows costs nothing. Over the limit the document still runs and answers as
sent; it is just not kept (the client sends it in full again next time).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import structlog
from cross_web import HTTPException
from graphql import GraphQLError

from legetime.core.platform.errors import ErrorCode
from legetime.schema.documents import MAX_DOCUMENT_CHARACTERS

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger(__name__)

NOT_FOUND_MESSAGE = "PersistedQueryNotFound"
"""The message clients look for (older ones by the message, newer ones by the code)."""
MAX_ENTRIES = 1000
MAX_CHARACTERS = 16_000_000
"""What this process keeps at most: documents, and their characters in all."""
REDIS_TTL_SECONDS = 24 * 3600
REDIS_TIMEOUT_SECONDS = 2
COST_CHARACTERS = 10_000
"""A registration counts one against the client's limit per started this many characters."""
_HASH = re.compile(r"[0-9a-f]{64}")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def registration_cost(text: str) -> int:
    """What keeping ``text`` counts against its client's limit: big documents count more."""
    return max(1, -(-len(text) // COST_CHARACTERS))


def requested_hash(extensions: dict[str, Any] | None) -> str | None:
    """The hash a request names (``extensions.persistedQuery.sha256Hash``), or None when it names none.
    A malformed one is the client's mistake: 400 ``BAD_REQUEST``."""
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict):
        raise HTTPException(400, "`extensions.persistedQuery` must be an object.")
    if persisted.get("version") != 1:
        raise HTTPException(400, "Unsupported persisted query version (only version 1 is).")
    value = persisted.get("sha256Hash")
    if not isinstance(value, str) or not _HASH.fullmatch(value.lower()):
        raise HTTPException(400, "`sha256Hash` must be the document's SHA-256, 64 hexadecimal digits.")
    return value.lower()


def not_found() -> GraphQLError:
    code = {"code": ErrorCode.PERSISTED_QUERY_NOT_FOUND.value, "field": None}
    return GraphQLError(NOT_FOUND_MESSAGE, extensions=code)


class PersistedQueries:
    """Documents by their SHA-256: here, and in Redis when there is one (keys ``<prefix>:<hash>``)."""

    def __init__(self, redis_url: str | None = None, *, prefix: str = "legetime:persisted-query") -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self._local: OrderedDict[str, str] = OrderedDict()
        self._characters = 0
        self._redis: Redis | None = None
        self._redis_loop: asyncio.AbstractEventLoop | None = None

    def _remember(self, digest: str, text: str) -> None:
        if digest in self._local:
            self._local.move_to_end(digest)
            return
        self._local[digest] = text
        self._characters += len(text)
        while len(self._local) > MAX_ENTRIES or self._characters > MAX_CHARACTERS:
            _, dropped = self._local.popitem(last=False)
            self._characters -= len(dropped)

    def knows(self, digest: str) -> bool:
        return digest in self._local

    def would_keep(self, digest: str, text: str) -> bool:
        """Whether ``put`` would keep ``text``: a hash not known yet, and a text short enough to be kept
        parsed (a longer one runs, sent in full, every time)."""
        return len(text) <= MAX_DOCUMENT_CHARACTERS and not self.knows(digest)

    def _client(self) -> Redis:
        """The Redis client, made on first use. Its connections belong to the event loop that made them:
        on another loop (a second ``asyncio.run``) a new client is made and the old one left behind."""
        from redis.asyncio import Redis  # only with a Redis URL: the embedded default starts without it

        loop = asyncio.get_running_loop()
        if self._redis is None or self._redis_loop is not loop:
            assert self.redis_url is not None
            self._redis = Redis.from_url(
                self.redis_url,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
            )
            self._redis_loop = loop
        return self._redis

    async def close(self) -> None:
        """Close the Redis client's connections (when the app stops)."""
        client, loop = self._redis, self._redis_loop
        self._redis = self._redis_loop = None
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()

    async def get(self, digest: str) -> str | None:
        text = self._local.get(digest)
        if text is not None:
            self._local.move_to_end(digest)
            return text
        if self.redis_url is None:
            return None
        from redis.exceptions import RedisError

        try:
            stored = await self._client().get(f"{self.prefix}:{digest}")
        except (RedisError, OSError) as exc:
            log.warning("persisted_query.redis_unavailable", error=type(exc).__name__)
            return None
        if stored is None:
            return None
        text = stored.decode() if isinstance(stored, bytes) else str(stored)
        if sha256(text) != digest:  # not what was stored under it: ignore it, the client sends the text
            log.warning("persisted_query.mismatch_in_store", hash=digest)
            return None
        self._remember(digest, text)
        return text

    async def put(self, digest: str, text: str) -> None:
        """Keep ``text`` under its hash (the caller has checked that it is its hash, that it is valid and
        that its client may register it; see ``would_keep`` for what is not kept)."""
        if not self.would_keep(digest, text):
            return
        self._remember(digest, text)
        if self.redis_url is None:
            return
        from redis.exceptions import RedisError

        try:
            await self._client().set(f"{self.prefix}:{digest}", text, ex=REDIS_TTL_SECONDS)
        except (RedisError, OSError) as exc:
            log.warning("persisted_query.redis_unavailable", error=type(exc).__name__)
