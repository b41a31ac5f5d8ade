"""Master key rotation: rewrap every data key under the active master key, in batches, without touching
the content it encrypts. Afterwards the old master key can be removed from ``LEGETIME_MASTER_KEYS`` —
and every backup whose data keys it wrapped becomes unreadable with it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select

from legetime.core.platform.crypto import WrappedKey
from legetime.core.platform.db.models import Attachment, Case, Person, RuntimeSettings, WebhookEndpoint

if TYPE_CHECKING:
    from legetime.core.platform.runtime import Platform

# (model, [(key id column, wrapped key column)]) of every wrapped data key.
WRAPPED: tuple[tuple[Any, tuple[tuple[str, str], ...]], ...] = (
    (Case, (("communication_key_id", "communication_key"), ("record_key_id", "record_key"))),
    (Person, (("key_id", "wrapped_key"),)),
    # An image's own key; an image stored before revision 0012 has none (NULL ``key_id``: never stale).
    (Attachment, (("key_id", "wrapped_key"),)),
    (WebhookEndpoint, (("key_id", "wrapped_key"),)),  # its signing secrets
    (RuntimeSettings, (("key_id", "wrapped_key"),)),  # settings operators changed (provider secrets)
)


@dataclass
class RotationSummary:
    active_key: str
    rewrapped: int = 0
    remaining: int = 0


def _stale(model: Any, pairs: tuple[tuple[str, str], ...], active: str) -> Any:
    return or_(*(getattr(model, key_id) != active for key_id, _ in pairs))


async def count_stale(platform: Platform) -> int:
    active = platform.keyring.active_id
    async with platform.db.transaction() as session:
        total = 0
        for model, pairs in WRAPPED:
            total += int(await session.scalar(select(func.count()).where(_stale(model, pairs, active))) or 0)
        return total


async def rotate(
    platform: Platform, *, batch_size: int = 500, progress: Callable[[int, int], None] | None = None
) -> RotationSummary:
    ring = platform.keyring
    summary = RotationSummary(active_key=ring.active_id)
    total = await count_stale(platform)
    for model, pairs in WRAPPED:
        while True:
            async with platform.db.transaction() as session:
                rows = (
                    await session.scalars(
                        select(model)
                        .where(_stale(model, pairs, ring.active_id))
                        .limit(batch_size)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
                for row in rows:
                    for key_id, wrapped in pairs:
                        if getattr(row, wrapped) is None:  # shredded: nothing to rewrap
                            setattr(row, key_id, ring.active_id)
                            continue
                        new = ring.rewrap(WrappedKey(getattr(row, key_id), getattr(row, wrapped)))
                        setattr(row, key_id, new.key_id)
                        setattr(row, wrapped, new.wrapped)
            if not rows:
                break
            summary.rewrapped += len(rows)
            if progress:
                progress(summary.rewrapped, max(total, summary.rewrapped))
    summary.remaining = await count_stale(platform)
    return summary
