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
sends the document) and a warning is logged.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from typing import Any

import structlog
from cross_web import HTTPException
from graphql import GraphQLError

from legetime.core.platform.errors import ErrorCode
from legetime.schema.documents import MAX_DOCUMENT_CHARACTERS

log = structlog.get_logger(__name__)

NOT_FOUND_MESSAGE = "PersistedQueryNotFound"
"""The message clients look for (older ones by the message, newer ones by the code)."""
MAX_ENTRIES = 1000
MAX_CHARACTERS = 16_000_000
"""What this process keeps at most: documents, and their characters in all."""
REDIS_TTL_SECONDS = 24 * 3600
_HASH = re.compile(r"[0-9a-f]{64}")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


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

    async def get(self, digest: str) -> str | None:
        text = self._local.get(digest)
        if text is not None:
            self._local.move_to_end(digest)
            return text
        if self.redis_url is None:
            return None
        from redis.asyncio import Redis  # only with a Redis URL: the embedded default starts without it
        from redis.exceptions import RedisError

        try:
            # A connection of its own: Redis is asked only for a hash this process has not seen yet.
            async with Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=2) as redis:
                stored = await redis.get(f"{self.prefix}:{digest}")
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
        """Keep ``text`` under its hash (the caller has checked that it is its hash, and that it is valid;
        a text too long to be kept parsed is not kept here either: it runs, sent in full, every time)."""
        if len(text) > MAX_DOCUMENT_CHARACTERS or self.knows(digest):
            return
        self._remember(digest, text)
        if self.redis_url is None:
            return
        from redis.asyncio import Redis
        from redis.exceptions import RedisError

        try:
            async with Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=2) as redis:
                await redis.set(f"{self.prefix}:{digest}", text, ex=REDIS_TTL_SECONDS)
        except (RedisError, OSError) as exc:
            log.warning("persisted_query.redis_unavailable", error=type(exc).__name__)
