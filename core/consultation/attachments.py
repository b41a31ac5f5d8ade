"""Images a patient attaches: decoded and re-encoded without metadata (``images``), sealed with a data
key of their own (``content.seal_image``: deleted with the image, so its every copy is unreadable from
then on) and stored through the storage provider, readable by the case's patient/guardian and its
clinician only. The storage provider only ever holds ciphertext, so images are served by the platform
(``/files/<id>``, a signed short-lived URL), which opens them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import threading
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.consultation import consents
from legetime.core.consultation.access import as_patient, load_case, require_person
from legetime.core.identity.actors import Actor
from legetime.core.identity.ctx import Ctx
from legetime.core.platform import idempotency
from legetime.core.platform.db.models import Attachment, Case, CaseStatus, ConsentPurpose
from legetime.core.platform.errors import NotFound, ValidationError
from legetime.core.platform.providers import STORAGE
from legetime.core.platform.runtime import Platform
from legetime.core.protection import audit, content

if TYPE_CHECKING:
    from legetime.core.consultation.images import CleanImage

OPEN_FOR_IMAGES = (CaseStatus.DRAFT, CaseStatus.SUBMITTED, CaseStatus.IN_REVIEW, CaseStatus.AWAITING_PATIENT)
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
URL_LIFETIME = timedelta(minutes=10)


MAX_CONCURRENT_DECODES = max(1, (os.cpu_count() or 2) // 2)
"""Decodes at once per process: a 40-megapixel image takes ~170 MB and seconds of CPU while decoded."""
_decodes = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)


@dataclass(frozen=True)
class PreparedImage:
    """An upload decoded and re-encoded, ready to attach: ``raw`` is the file as sent (a retry is
    recognised by it), ``clean`` what is stored."""

    raw: bytes
    clean: CleanImage | None
    """None for a retry of an upload already attached: it is not decoded again."""


def sanitize_image(data: bytes) -> CleanImage:
    """``images.sanitize_image``, imported at the first upload: Pillow is not loaded at start-up."""
    from legetime.core.consultation.images import sanitize_image

    return sanitize_image(data)


def _sanitize_in_turn(data: bytes) -> CleanImage:
    with _decodes:  # waits in its worker thread: the event loop stays free
        return sanitize_image(data)


async def prepare_image(
    platform: Platform,
    actor: Actor,
    case_id: uuid.UUID,
    data: bytes,
    idempotency_key: str | None = None,
) -> PreparedImage:
    """Decode and clean an upload outside the transaction that attaches it: decoding takes seconds for a
    large image, and on SQLite a transaction holds the database's write lock, which would make everyone
    else's writes wait. Decoded only for someone who may attach to the case (a short look first: others
    get "not found", whether the case exists or not), at most ``MAX_CONCURRENT_DECODES`` at once, and not
    for a retry of an upload already attached (same key, same file)."""
    uploader_id = require_person(actor)
    key = idempotency.check_key(idempotency_key)
    requested = None
    if key is not None:
        requested = await asyncio.to_thread(idempotency.request_hash, platform, "attach_image", data)
    async with platform.db.transaction() as session:
        ctx = Ctx(session=session, platform=platform, actor=actor)
        await load_case(ctx, case_id, as_patient(actor, ctx.today))
        attached = None
        if key is not None:
            attached = await session.scalar(
                select(Attachment.id).where(
                    Attachment.case_id == case_id,
                    Attachment.uploaded_by_id == uploader_id,
                    Attachment.idempotency_key == key,
                    Attachment.request_hash == requested,
                )
            )
        if attached is not None:
            return PreparedImage(raw=data, clean=None)
    return PreparedImage(raw=data, clean=await asyncio.to_thread(_sanitize_in_turn, data))


async def attach_image(
    ctx: Ctx,
    case_id: uuid.UUID,
    image: PreparedImage,
    idempotency_key: str | None = None,
    *,
    open_statuses: Collection[CaseStatus] = OPEN_FOR_IMAGES,
) -> Attachment:
    """Attach a prepared image (``prepare_image``). A retry with the same ``idempotency_key`` (the
    uploader's own, per case) and the same file returns the attachment the first call made: the file is
    recognised by a keyed hash of its bytes as sent, so it is not stored again."""
    data = image.raw
    key = idempotency.check_key(idempotency_key)
    uploader_id = require_person(ctx.actor)
    # The case's row lock makes a retry wait for the first call, then find its attachment (PostgreSQL).
    case = await load_case(ctx, case_id, as_patient(ctx.actor, ctx.today), for_update=True)
    requested = None
    if key is not None:  # hashing ten megabytes is CPU work too: off the event loop
        requested = await asyncio.to_thread(idempotency.request_hash, ctx.platform, "attach_image", data)

    async def find() -> Attachment | None:
        existing = await ctx.session.scalar(
            select(Attachment).where(
                Attachment.case_id == case_id,
                Attachment.uploaded_by_id == uploader_id,
                Attachment.idempotency_key == key,
            )
        )
        if existing is not None and existing.request_hash != requested:
            raise idempotency.conflict("attach_image", "et annet bilde")
        return existing

    async def create() -> Attachment:
        if case.status not in open_statuses:
            raise ValidationError("Du kan ikke legge ved bilder på denne saken nå.", field="caseId")
        await consents.require(
            ctx,
            case.subject_id,
            ConsentPurpose.IMAGE_STORAGE,
            case.id,
            "Du må samtykke til lagring av bilder før du legger ved bilder.",
        )
        # Prepared outside the transaction; decoded here only if a retry's attachment vanished meanwhile.
        clean: CleanImage = (
            image.clean if image.clean is not None else await asyncio.to_thread(_sanitize_in_turn, data)
        )
        storage = ctx.platform.providers.get(STORAGE)
        attachment = Attachment(
            id=uuid.uuid4(),
            case_id=case.id,
            uploaded_by_id=uploader_id,
            content_type=clean.content_type,
            size_bytes=len(clean.data),
            width=clean.width,
            height=clean.height,
            sha256=clean.sha256,
            idempotency_key=key,
            request_hash=requested,
            created_at=ctx.now,
        )
        sealed = content.seal_image(ctx.platform.keyring, case, attachment, clean.data)  # its own key
        stored = await storage.put(
            f"cases/{case.id}/{attachment.id.hex}.sealed", sealed, "application/octet-stream"
        )
        attachment.storage_provider, attachment.storage_key = storage.name, stored.key
        ctx.session.add(attachment)
        try:
            await ctx.session.flush()
        except IntegrityError:
            # A concurrent retry stored the same image first (only if the case was not locked): no orphan.
            with contextlib.suppress(Exception):
                await storage.delete(stored.key)
            raise
        await audit.log(
            ctx,
            person_id=case.subject_id,
            object_type="attachment",
            object_id=str(attachment.id),
            action="create",
        )
        return attachment

    return await idempotency.once(ctx.session, "attach_image", key, find, create)


def _signature(platform: Platform, attachment_id: str, expires: int) -> str:
    message = f"{attachment_id}:{expires}".encode()
    return hmac.new(platform.derive_key("file-url"), message, hashlib.sha256).hexdigest()


async def image_url(ctx: Ctx, attachment: Attachment) -> str:
    """A short-lived signed URL; the caller has already been allowed to read the case."""
    expires = int(time.time() + URL_LIFETIME.total_seconds())
    signature = _signature(ctx.platform, str(attachment.id), expires)
    base = ctx.platform.settings.public_url.rstrip("/")
    return f"{base}/files/{attachment.id}?expires={expires}&signature={signature}"


async def open_signed(
    session: AsyncSession, platform: Platform, attachment_id: str, expires: str, signature: str
) -> tuple[bytes, str]:
    """The plain image behind a signed URL. Any failure (bad signature, expired, deleted) is NotFound."""
    gone = NotFound("Fant ikke bildet (lenken kan være utløpt).")
    if not expires.isdigit() or int(expires) < time.time():
        raise gone
    if not hmac.compare_digest(_signature(platform, attachment_id, int(expires)), signature):
        raise gone
    try:
        attachment = await session.get(Attachment, uuid.UUID(attachment_id))
    except ValueError:
        raise gone from None
    if attachment is None:
        raise gone
    case = await session.get(Case, attachment.case_id)
    if case is None or content.communication_deleted(case):
        raise gone
    data = await platform.providers.get(STORAGE).open(attachment.storage_key)
    if attachment.sealed:
        data = content.open_image(platform.keyring, case, attachment, data)
    return data, attachment.content_type
