"""The context of one core operation: the database session, the platform and who is asking."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.identity.actors import Actor
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.runtime import Platform


@dataclass
class Ctx:
    session: AsyncSession
    platform: Platform
    actor: Actor
    now: datetime = field(default_factory=utcnow)

    @property
    def today(self) -> date:
        """Today where the service runs (Europe/Oslo): ages and SLA days are local."""
        return self.now.astimezone(self.platform.settings.zone).date()
