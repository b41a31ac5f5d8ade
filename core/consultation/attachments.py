"""Images a patient attaches: decoded and re-encoded without metadata (``images``), sealed with the
case's communication key and stored through the storage provider, readable by the case's patient/guardian
and its clinician only. The storage provider only ever holds ciphertext, so images are served by the
platform (``/files/<id>``, a signed short-lived URL), which opens them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.consultation import consents
from legetime.core.consultation.access import as_patient, load_case
from legetime.core.consultation.images import sanitize_image
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.models import Attachment, Case, CaseStatus, ConsentPurpose
from legetime.core.platform.errors import NotFound, ValidationError
from legetime.core.platform.providers import STORAGE
from legetime.core.platform.runtime import Platform
from legetime.core.protection import audit, content

OPEN_FOR_IMAGES = (CaseStatus.DRAFT, CaseStatus.SUBMITTED, CaseStatus.IN_REVIEW, CaseStatus.AWAITING_PATIENT)
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
URL_LIFETIME = timedelta(minutes=10)


async def attach_image(ctx: Ctx, case_id: uuid.UUID, data: bytes) -> Attachment:
    case = await load_case(ctx, case_id, as_patient(ctx.actor, ctx.today), for_update=True)
    if case.status not in OPEN_FOR_IMAGES:
        raise ValidationError("Du kan ikke legge ved bilder på denne saken nå.", field="caseId")
    await consents.require(
        ctx,
        case.subject_id,
        ConsentPurpose.IMAGE_STORAGE,
        case.id,
        "Du må samtykke til lagring av bilder før du legger ved bilder.",
    )
    clean = await asyncio.to_thread(sanitize_image, data)  # decoding is CPU work: off the event loop
    storage = ctx.platform.providers.get(STORAGE)
    attachment_id = uuid.uuid4()
    key = f"cases/{case.id}/{attachment_id.hex}.sealed"
    sealed = content.seal_image(ctx.platform.keyring, case, attachment_id, clean.data)
    stored = await storage.put(key, sealed, "application/octet-stream")
    attachment = Attachment(
        id=attachment_id,
        case_id=case.id,
        uploaded_by_id=ctx.actor.person_id,
        storage_provider=storage.name,
        storage_key=stored.key,
        content_type=clean.content_type,
        size_bytes=len(clean.data),
        width=clean.width,
        height=clean.height,
        sha256=clean.sha256,
        created_at=ctx.now,
    )
    ctx.session.add(attachment)
    await ctx.session.flush()
    await audit.log(
        ctx,
        person_id=case.subject_id,
        object_type="attachment",
        object_id=str(attachment.id),
        action="create",
    )
    return attachment


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
        data = content.open_image(platform.keyring, case, attachment.id, data)
    return data, attachment.content_type
