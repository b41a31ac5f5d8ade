"""Moving the stored images from one storage provider to another (``legetime storage migrate``).

Which objects exist is read from the database, not from the source: every live attachment recorded as
stored by the source (or already by the target). Erased images have no row, so they do not move.

Each object is read from the source, written to the target, read back and compared by SHA-256 before it
counts as copied; then its row records the target (``attachment.storage_provider``). That record is what
makes a run resumable: a second run skips rows already recorded for the target, and an interrupted one
finds the copies it made but did not record (same hash in the target) and records them. The source is
deleted only when asked, and only while the platform no longer reads from it.

Objects are copied as they are stored (sealed: ciphertext), so the platform's encryption travels with them;
an image's key stays in its row, which only changes provider. Do not run it alongside ``storage rekey``
(``image_rekey``), which gives rows new objects.
Logs and failures carry attachment ids and error codes only.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, select, update

from legetime.core.platform.db.models import Attachment
from legetime.core.platform.errors import ConfigError, LegetimeError, ProviderError, StorageNotFound
from legetime.core.platform.providers import STORAGE, Capability, ProviderContext, StorageProvider
from legetime.core.platform.registry import instantiate

if TYPE_CHECKING:
    from legetime.core.platform.runtime import Platform

log = structlog.get_logger(__name__)

BATCH = 200
SEALED_CONTENT_TYPE = "application/octet-stream"  # what attach_image stores a sealed image as


@dataclass
class MigrationSummary:
    source: str
    target: str
    total: int = 0
    copied: int = 0
    skipped: int = 0
    failed: int = 0
    source_deleted: int = 0
    failures: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    """(attachment id, why) of each failure: an error code or class name, never content."""


def storage_provider(platform: Platform, name: str) -> StorageProvider:
    """The storage provider ``name``: the configured one, or else one built from its own settings (read from
    the environment as at start-up: ``LEGETIME_STORAGE_<NAME>_*``)."""
    if name in platform.providers.names(Capability.STORAGE):
        return platform.providers.get(STORAGE, name)
    offered = {s.name: s for s in platform.providers.offered if s.capability is Capability.STORAGE}
    spec = offered.get(name)
    if spec is None:
        raise ConfigError(
            "--from/--to", f"unknown storage provider {name!r} (available: {', '.join(sorted(offered))})"
        )
    context = ProviderContext(
        settings=platform.settings, derive_key=platform.derive_key, database=platform.plugin_db
    )
    provider: StorageProvider = instantiate(spec, context).instance  # type: ignore[assignment]
    return provider


async def migrate_storage(
    platform: Platform,
    source_name: str,
    target_name: str,
    *,
    delete_source: bool = False,
    concurrency: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> MigrationSummary:
    """Copy every live image from ``source_name`` to ``target_name`` (see the module docstring).

    A provider that refuses for a reason that holds for every object (a missing bucket, refused
    credentials: a ``ProviderError`` that is not retryable) stops the run by raising it; a missing source
    object, a failed verification or an unavailable provider count as failures of that object.
    """
    if source_name == target_name:
        raise ConfigError("--to", "the target must be another provider than the source")
    configured = platform.settings.storage_provider
    if delete_source and configured == source_name:
        raise ConfigError(
            "LEGETIME_STORAGE_PROVIDER",
            f"the platform still reads images from {source_name!r}; switch it to {target_name!r} (and "
            "restart the API and workers) before deleting the source",
        )
    source = storage_provider(platform, source_name)
    target = storage_provider(platform, target_name)
    summary = MigrationSummary(source=source_name, target=target_name)
    names = (source_name, target_name)
    async with platform.db.transaction() as session:
        summary.total = int(
            await session.scalar(select(func.count()).where(Attachment.storage_provider.in_(names))) or 0
        )
    if progress:
        progress(0, summary.total)
    limit = asyncio.Semaphore(concurrency)
    done = 0
    last: uuid.UUID | None = None
    while True:
        async with platform.db.transaction() as session:
            query = (
                select(
                    Attachment.id,
                    Attachment.storage_key,
                    Attachment.storage_provider,
                    Attachment.sealed,
                    Attachment.content_type,
                )
                .where(Attachment.storage_provider.in_(names))
                .order_by(Attachment.id)
                .limit(BATCH)
            )
            if last is not None:
                query = query.where(Attachment.id > last)
            rows = (await session.execute(query)).all()
        if not rows:
            break
        last = rows[-1].id

        async def move(row: Any) -> tuple[uuid.UUID, str] | None:
            async with limit:
                return await _move(summary, source, target, row, delete_source)

        results = await asyncio.gather(*(move(row) for row in rows), return_exceptions=True)
        copies = [result for result in results if isinstance(result, tuple)]
        if copies:
            await _record(platform, target, copies)
        fatal = next((result for result in results if isinstance(result, BaseException)), None)
        if fatal is not None:
            log.error(
                "storage_migrate.stopped", error=type(fatal).__name__, code=getattr(fatal, "code", None)
            )
            raise fatal
        done += len(rows)
        if progress:
            progress(done, max(done, summary.total))
    log.info(
        "storage_migrate.finished",
        source=source_name,
        target=target_name,
        copied=summary.copied,
        skipped=summary.skipped,
        failed=summary.failed,
        source_deleted=summary.source_deleted,
    )
    return summary


async def _move(
    summary: MigrationSummary, source: StorageProvider, target: StorageProvider, row: Any, delete: bool
) -> tuple[uuid.UUID, str] | None:
    """Copy one object. Returns (attachment id, key) when its row should now record the target."""
    recorded = row.storage_provider == target.name
    if recorded and not delete:
        summary.skipped += 1  # copied and verified by an earlier run
        return None
    key: str = row.storage_key
    try:
        try:
            data = await source.open(key)
        except StorageNotFound:
            if recorded:  # moved, and its source deleted, by an earlier run
                summary.skipped += 1
                return None
            _failed(summary, row.id, "missing_in_source")
            return None
        digest = hashlib.sha256(data).hexdigest()
        if await _holds(target, key, digest):
            summary.skipped += 1  # copied and verified before, perhaps by a run that was interrupted
        else:
            await target.put(key, data, SEALED_CONTENT_TYPE if row.sealed else row.content_type)
            if not await _holds(target, key, digest):
                _failed(summary, row.id, "verification_failed")
                return None
            summary.copied += 1
        if delete:
            await source.delete(key)
            summary.source_deleted += 1
    except StorageNotFound:
        _failed(summary, row.id, "STORAGE_NOT_FOUND")
        return None
    except ProviderError as exc:
        if not exc.retryable:
            raise  # misconfiguration (a missing bucket, refused credentials): every object would fail so
        _failed(summary, row.id, exc.code.value)
        return None
    except LegetimeError as exc:
        _failed(summary, row.id, exc.code.value)
        return None
    return None if recorded else (row.id, key)


async def _holds(target: StorageProvider, key: str, digest: str) -> bool:
    """Whether the target has the object with exactly these bytes (read back and hashed)."""
    try:
        return hashlib.sha256(await target.open(key)).hexdigest() == digest
    except StorageNotFound:
        return False


def _failed(summary: MigrationSummary, attachment_id: uuid.UUID, why: str) -> None:
    summary.failed += 1
    summary.failures.append((attachment_id, why))
    log.warning("storage_migrate.failed", attachment_id=str(attachment_id), reason=why)


async def _record(platform: Platform, target: StorageProvider, copies: list[tuple[uuid.UUID, str]]) -> None:
    """Record the target on the rows of verified copies. An image erased while it was being copied has no
    row left: its copy is deleted from the target again, so the migration keeps nothing an erasure removed."""
    ids = [attachment_id for attachment_id, _ in copies]
    async with platform.db.transaction() as session:
        await session.execute(
            update(Attachment)
            .where(Attachment.id.in_(ids))
            .values(storage_provider=target.name)
            .execution_options(synchronize_session=False)
        )
        present = set((await session.scalars(select(Attachment.id).where(Attachment.id.in_(ids)))).all())
    for attachment_id, key in copies:
        if attachment_id not in present:
            log.info("storage_migrate.erased_meanwhile", attachment_id=str(attachment_id))
            await target.delete(key)
