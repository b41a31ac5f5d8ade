"""Images a patient attaches: decoded and re-encoded without metadata (``core.images``), stored through
the storage provider, readable by the case's patient/guardian and its clinician only."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from core import audit, consents
from core.access import as_patient, load_case
from core.ctx import Ctx
from core.db.models import Attachment, CaseStatus, ConsentPurpose
from core.errors import ValidationError
from core.images import sanitize_image

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
    storage = ctx.platform.providers.storage()
    attachment_id = uuid.uuid4()
    key = f"cases/{case.id}/{attachment_id.hex}.{EXTENSIONS[clean.content_type]}"
    stored = await storage.put(key, clean.data, clean.content_type)
    attachment = Attachment(
        id=attachment_id,
        case_id=case.id,
        uploaded_by_id=ctx.actor.person_id,
        storage_provider=storage.name,
        storage_key=stored.key,
        content_type=clean.content_type,
        size_bytes=stored.size,
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


async def image_url(ctx: Ctx, attachment: Attachment) -> str:
    """A short-lived signed URL; the caller has already been allowed to read the case."""
    return await ctx.platform.providers.storage().url(attachment.storage_key, URL_LIFETIME)
