"""Per-request context: the platform, the request, the actor (from the bearer token), DataLoaders and
the request's read session.

Reads of one request share one session (committed at the end: reads are logged in the access log). Its
resolvers run concurrently (sibling fields, DataLoader batches), so it is a ``SharedSession``.
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
        token = _bearer(request)
        actor = ANONYMOUS
        if token:
            async with platform.db.transaction() as session:
                actor = await authenticate(session, platform, token)
        return cls(platform=platform, request=request, actor=actor, token=token, response=response)

    async def read(self) -> Ctx:
        """The request's read session, opened on first use."""
        if self._session is None:
            self._session = self.platform.db.shared_sessions()
            await self._session.begin()
        return Ctx(session=self._session, platform=self.platform, actor=self.actor)

    async def close(self, *, failed: bool = False) -> None:
        if self._session is not None:
            if failed:
                await self._session.rollback()
            else:
                await self._session.commit()
            await self._session.close()
            self._session = None

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
