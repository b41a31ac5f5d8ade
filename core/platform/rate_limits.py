"""Limits on what one client may do per time, for expensive operations anyone may call (starting a
login costs a provider round trip and a row). Counted in Redis when the platform has it, so every API
process shares the count; in the process's memory on the embedded default.

A limit is the ``limits`` library's notation, several separated by ``;`` ("10/minute;100/hour"). If
Redis cannot be reached, the request is let through and a warning logged: an outage of the counter must
not lock everyone out of logging in.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog
from limits import parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from legetime.core.platform.errors import ErrorCode, LegetimeError

if TYPE_CHECKING:
    from legetime.core.platform.config import Settings

log = structlog.get_logger(__name__)

LOGIN_START = "login.start"
LOGIN_POLL = "login.poll"


class RateLimited(LegetimeError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"For mange forsøk. Prøv igjen om {retry_after} sekunder.")
        self.retry_after = retry_after


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        storage = (
            storage_from_string(
                f"async+{settings.redis_url}",
                implementation="redispy",
                key_prefix=f"{settings.queue_namespace}:limits",
            )
            if settings.redis_url
            else storage_from_string("async+memory://")
        )
        assert isinstance(storage, Storage)  # the "async+" schemes give the asyncio storages
        self._limiter = MovingWindowRateLimiter(storage)
        self._rules = {
            LOGIN_START: parse_many(settings.login_rate_limit),
            LOGIN_POLL: parse_many(settings.login_poll_rate_limit),
        }

    async def check(self, rule: str, client: str) -> None:
        """Count one request of ``client`` under ``rule``; raise ``RateLimited`` when it is over a limit."""
        try:
            for item in self._rules[rule]:
                if not await self._limiter.hit(item, rule, client):
                    stats = await self._limiter.get_window_stats(item, rule, client)
                    retry_after = max(1, int(stats.reset_time - time.time()) + 1)
                    log.info("rate_limited", rule=rule, limit=str(item), retry_after=retry_after)
                    raise RateLimited(retry_after)
        except RateLimited:
            raise
        except Exception as exc:  # the counter is away: let the request through (see the module docstring)
            log.warning("rate_limits.unavailable", rule=rule, error=type(exc).__name__)
