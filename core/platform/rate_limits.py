"""Limits on what one client may do per time, for expensive operations anyone may call (starting a
login costs a provider round trip and a row; a persisted query is a document the server keeps). Counted
in Redis when the platform has it, so every API process shares the count; in the process's memory on the
embedded default.

``check`` refuses a request over its limit (``RateLimited``); ``allows`` only says whether it is within
it, for what degrades instead of failing (a persisted query over the limit runs, but is not kept). Both
count the same way; a request may cost more than one (``cost``).

A limit is the ``limits`` library's notation, several separated by ``;`` ("10/minute;100/hour"). If
Redis cannot be reached, the request is let through and a warning logged: an outage of the counter must
not lock everyone out of logging in.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog
from limits import parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from legetime.core.platform import metrics
from legetime.core.platform.errors import ErrorCode, LegetimeError

if TYPE_CHECKING:
    from legetime.core.platform.config import Settings

log = structlog.get_logger(__name__)

LOGIN_START = "login.start"
LOGIN_POLL = "login.poll"
PERSISTED_QUERY_REGISTER = "persisted_query.register"


class RateLimited(LegetimeError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"For mange forsøk. Prøv igjen om {retry_after} sekunder.")
        self.retry_after = retry_after


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        self._pool: Any = None
        if settings.redis_url:
            # Imported only with Redis (the embedded default starts without it). A pool of our own, so that
            # ``close`` can let its connections go (the storage has no close of its own).
            from redis.asyncio import ConnectionPool

            self._pool = ConnectionPool.from_url(settings.redis_url)
            storage = storage_from_string(
                f"async+{settings.redis_url}",
                implementation="redispy",
                key_prefix=f"{settings.queue_namespace}:limits",
                connection_pool=self._pool,
            )
        else:
            storage = storage_from_string("async+memory://")
        assert isinstance(storage, Storage)  # the "async+" schemes give the asyncio storages
        self._limiter = MovingWindowRateLimiter(storage)
        self._rules = {
            LOGIN_START: parse_many(settings.login_rate_limit),
            LOGIN_POLL: parse_many(settings.login_poll_rate_limit),
            PERSISTED_QUERY_REGISTER: parse_many(settings.persisted_query_rate_limit),
        }

    async def close(self) -> None:
        """Let the counter's Redis connections go (the platform is closing)."""
        if self._pool is not None:
            await self._pool.disconnect()

    async def check(self, rule: str, client: str) -> None:
        """Count one request of ``client`` under ``rule``; raise ``RateLimited`` when it is over a limit."""
        retry_after = await self._hit(rule, client, 1)
        if retry_after is not None:
            raise RateLimited(retry_after)

    async def allows(self, rule: str, client: str, cost: int = 1) -> bool:
        """Count a request of ``client`` costing ``cost`` under ``rule``; False when it is over a limit."""
        return await self._hit(rule, client, cost) is None

    async def _hit(self, rule: str, client: str, cost: int) -> int | None:
        """Count the request; the seconds until the client may try again when it is over a limit, else
        None (also when the counter cannot be reached: see the module docstring)."""
        try:
            for item in self._rules[rule]:
                if not await self._limiter.hit(item, rule, client, cost=cost):
                    stats = await self._limiter.get_window_stats(item, rule, client)
                    break
            else:
                return None
        except Exception as exc:  # the counter is away: let the request through
            log.warning("rate_limits.unavailable", rule=rule, error=type(exc).__name__)
            return None
        retry_after = max(1, int(stats.reset_time - time.time()) + 1)
        log.info("rate_limited", rule=rule, limit=str(item), cost=cost, retry_after=retry_after)
        metrics.observe_rate_limited(rule)
        return retry_after
