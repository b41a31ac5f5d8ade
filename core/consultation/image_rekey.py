"""Giving images stored before revision 0012 a key of their own (``legetime storage rekey``).

Such an image is sealed with its case's communication key (or, from before revision 0003, not sealed), so
deleting it after consent to storing images is withdrawn does not make its copies unreadable until the
whole communication is deleted. This re-encrypts each one with a new data key of its own, as a new object:

1. read the object from the configured storage provider and open it (communication key, or as it is);
2. seal it with a new key and store it under a new storage key;
3. in one transaction record the new object and the key on the row — only if the row still names the
   old object (an image erased or moved meanwhile is left alone, and the new object deleted again);
4. delete the old object.

Resumable and idempotent: a row that has its own key is done; a run interrupted between 2 and 3 wrote an
object no row names, which the next run replaces (same new storage key). Logs and failures carry
attachment ids and error codes only. Do not run it alongside ``storage migrate``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.sql import ColumnElement

from legetime.core.platform.crypto import KeyUnavailable, Tampered
from legetime.core.platform.db.models import Attachment, Case
from legetime.core.platform.errors import LegetimeError, StorageNotFound
from legetime.core.platform.providers import STORAGE
from legetime.core.protection import content

if TYPE_CHECKING:
    from legetime.core.platform.providers import StorageProvider
    from legetime.core.platform.runtime import Platform

log = structlog.get_logger(__name__)

BATCH = 100
SEALED_CONTENT_TYPE = "application/octet-stream"


@dataclass
class RekeySummary:
    total: int = 0
    rekeyed: int = 0
    skipped: int = 0
    """Erased or moved to another object while being re-encrypted."""
    failed: int = 0
    old_left: int = 0
    """Old objects whose deletion failed (still readable with the communication key until retention)."""
    failures: list[tuple[uuid.UUID, str]] = field(default_factory=list)


def _legacy(provider: str) -> list[ColumnElement[bool]]:
    return [Attachment.key_id.is_(None), Attachment.storage_provider == provider]


def rekeyed_storage_key(attachment: Attachment) -> str:
    return f"cases/{attachment.case_id}/{attachment.id.hex}.own.sealed"


async def rekey_images(
    platform: Platform, *, progress: Callable[[int, int], None] | None = None
) -> RekeySummary:
    """Re-encrypt every image without a key of its own on the configured storage provider (see the module
    docstring)."""
    storage = platform.providers.get(STORAGE)
    summary = RekeySummary()
    async with platform.db.transaction() as session:
        summary.total = int(await session.scalar(select(func.count()).where(*_legacy(storage.name))) or 0)
    if progress:
        progress(0, summary.total)
    last: uuid.UUID | None = None
    done = 0
    while True:
        async with platform.db.transaction() as session:
            query = (
                select(Attachment, Case)
                .join(Case, Case.id == Attachment.case_id)
                .where(*_legacy(storage.name))
                .order_by(Attachment.id)
                .limit(BATCH)
            )
            if last is not None:
                query = query.where(Attachment.id > last)
            rows = (await session.execute(query)).tuples().all()
            session.expunge_all()
        if not rows:
            break
        last = rows[-1][0].id
        for attachment, case in rows:
            await _rekey(platform, storage, summary, attachment, case)
        done += len(rows)
        if progress:
            progress(done, max(done, summary.total))
    log.info(
        "storage_rekey.finished",
        rekeyed=summary.rekeyed,
        skipped=summary.skipped,
        failed=summary.failed,
        old_left=summary.old_left,
    )
    return summary


async def _rekey(
    platform: Platform, storage: StorageProvider, summary: RekeySummary, attachment: Attachment, case: Case
) -> None:
    ring = platform.keyring
    old_key = attachment.storage_key
    try:
        data = await storage.open(old_key)
        if attachment.sealed:
            data = content.open_image(ring, case, attachment, data)
        sealed = content.seal_image(ring, case, attachment, data)  # sets the new key on the (detached) row
        stored = await storage.put(rekeyed_storage_key(attachment), sealed, SEALED_CONTENT_TYPE)
    except StorageNotFound:
        return _failed(summary, attachment.id, "missing_in_storage")
    except (KeyUnavailable, Tampered) as exc:
        return _failed(summary, attachment.id, type(exc).__name__)
    except LegetimeError as exc:
        return _failed(summary, attachment.id, exc.code.value)
    async with platform.db.transaction() as session:
        result = await session.execute(
            update(Attachment)
            .where(
                Attachment.id == attachment.id,
                Attachment.key_id.is_(None),
                Attachment.storage_key == old_key,
                Attachment.storage_provider == storage.name,
            )
            .values(
                key_id=attachment.key_id,
                wrapped_key=attachment.wrapped_key,
                sealed=True,
                storage_key=stored.key,
            )
            .execution_options(synchronize_session=False)
        )
        recorded = bool(getattr(result, "rowcount", 0))
    if not recorded:  # erased (or changed) meanwhile: keep nothing an erasure removed
        summary.skipped += 1
        log.info("storage_rekey.changed_meanwhile", attachment_id=str(attachment.id))
        await _delete(storage, stored.key)
        return None
    summary.rekeyed += 1
    if not await _delete(storage, old_key):
        summary.old_left += 1
        log.warning("storage_rekey.old_object_left", attachment_id=str(attachment.id))
    return None


async def _delete(storage: StorageProvider, key: str) -> bool:
    try:
        await storage.delete(key)
    except Exception:  # housekeeping: the caller counts and logs it
        return False
    return True


def _failed(summary: RekeySummary, attachment_id: uuid.UUID, why: str) -> None:
    summary.failed += 1
    summary.failures.append((attachment_id, why))
    log.warning("storage_rekey.failed", attachment_id=str(attachment_id), reason=why)
