"""What a job handler is. Handlers are registered by name through the ``register_jobs`` hook."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

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
