"""Per-request context: the platform, the request, the actor (from the bearer token), DataLoaders and
the request's read session.

Reads of one request share one session, opened with the request (the bearer token is looked up in it).
Its resolvers run concurrently (sibling fields, DataLoader batches), so it is a ``SharedSession``. The
access-log entries of its reads are collected and written with one INSERT when the request ends, before
the answer is sent (``LegetimeGraphQL.run``): on PostgreSQL in the read session, whose statements each
commit on their own (``Database.read_engine``; a page of cases logs itself in its own statement); on
SQLite in a short write transaction right after the reads, so that reading never takes the write lock.
Either way no answer is sent whose reads were not logged.
Each mutation runs in a transaction of its own (``legetime.schema.mutation.mutate``), so a refused mutation
leaves nothing half-stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types import Info as StrawberryInfo

from legetime.core.identity.actors import ANONYMOUS, Actor
from legetime.core.identity.auth import authenticate
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.rate_limits import RateLimited
from legetime.core.platform.runtime import Platform
from legetime.core.protection import audit


@dataclass
class Context:
    platform: Platform
    request: Any
    actor: Actor = ANONYMOUS
    token: str | None = None
    _session: AsyncSession | None = None
    loaders: dict[str, Any] = field(default_factory=dict)
    response: Any = None
    """Where a resolver sets a header of the HTTP answer (``Retry-After``)."""
    connection_params: dict[str, Any] | None = None
    """A websocket's ``connection_init`` payload (``LegetimeGraphQL.on_ws_connect``)."""

    @property
    def client(self) -> str:
        """The calling client's address (behind a proxy, as ``legetime serve`` trusts its headers)."""
        client = getattr(self.request, "client", None)
        return str(client.host) if client is not None else "unknown"

    async def limit(self, rule: str) -> None:
        """Count this request under a rate limit; over it: ``RateLimited``, and ``Retry-After`` set."""
        try:
            await self.platform.rate_limits.check(rule, self.client)
        except RateLimited as exc:
            if self.response is not None:
                self.response.headers["Retry-After"] = str(exc.retry_after)
            raise

    @classmethod
    async def create(cls, platform: Platform, request: Any, response: Any = None) -> Context:
        context = cls(platform=platform, request=request, token=_bearer(request), response=response)
        if context.token:
            # In the read session the request goes on with: one connection per request, not two.
            session = await context._read_session()
            context.actor = await authenticate(session, platform, context.token)
            if platform.db.is_sqlite:
                # End the snapshot: what a mutation of this request commits must be seen by the reads
                # after it (PostgreSQL's READ COMMITTED sees it anyway).
                await session.commit()
        return context

    async def _read_session(self) -> AsyncSession:
        if self._session is None:
            session = self.platform.db.read_sessions()
            audit.buffer_entries(session)
            await session.begin()
            self._session = session
        return self._session

    async def read(self) -> Ctx:
        """The request's read session, opened on first use."""
        return Ctx(session=await self._read_session(), platform=self.platform, actor=self.actor)

    async def close(self, *, failed: bool = False) -> None:
        """End the read session: commit it with its access-log entries, or roll it back (``failed``)."""
        session, self._session = self._session, None
        if session is None:
            return
        try:
            if failed:
                await session.rollback()
                return
            entries = audit.take_buffered(session)
            if self.platform.db.is_sqlite:
                await session.commit()
                if entries:
                    async with self.platform.db.transaction() as writer:
                        await audit.write_rows(writer, entries)
            else:
                await audit.write_rows(session, entries)
                await session.commit()
        finally:
            await session.close()

    def loader(self, name: str, factory: Any) -> Any:
        """A DataLoader made once per request (batching within the request, no cache across them)."""
        if name not in self.loaders:
            self.loaders[name] = factory(self)
        return self.loaders[name]


def _bearer(request: Any) -> str | None:
    header = request.headers.get("authorization", "") if request is not None else ""
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


Info = StrawberryInfo[Context, None]
