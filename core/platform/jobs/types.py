"""What a job is: a handler run once per outbox row (``register_jobs``), or work run on a schedule
(``register_periodic_jobs``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from legetime.core.platform.config import Settings
    from legetime.core.platform.runtime import Platform


@dataclass(frozen=True)
class JobContext:
    platform: Platform
    session: AsyncSession
    """The handler's database work commits together with marking the job done."""
    job_id: str
    """Stable across redeliveries: use it as the idempotency key towards providers."""
    attempt: int


JobHandler = Callable[[JobContext, dict[str, Any]], Awaitable[None]]


class JobFailed(Exception):
    """Raised by a handler when trying again by itself will not help, or must wait for a person to ask:
    the job is marked failed at once, with the message (a code, never content) as its last error, and
    not retried. Its database work is rolled back as for any failure."""


@dataclass(frozen=True)
class PeriodicJob:
    """Work run on a schedule in every process that runs jobs (``legetime worker``; ``legetime serve``
    without Redis), at most one run at a time per process. Several processes run it side by side, so
    ``run`` must lock what it takes (``FOR UPDATE SKIP LOCKED``) and be safe to repeat."""

    name: str
    """Unique among periodic jobs, ``"<plugin>.<what>"``; names the schedule in logs."""
    run: Callable[[Platform], Awaitable[Any]]
    """Opens its own transactions (a long run commits in batches)."""
    every: Callable[[Settings], timedelta]
    """The interval, read from the settings when the scheduler starts."""
