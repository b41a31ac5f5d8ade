"""Video consultations as clients see them: a join token for the appointment's patient (after BankID) or
its clinician, and a photo sent in the consultation's chat. The rules live in
``legetime.core.appointments.video``."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.file_uploads import Upload

from legetime.core.appointments import video
from legetime.core.consultation import attachments
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db import models
from legetime.core.platform.errors import LegetimeError
from legetime.core.platform.providers.video import VideoJoin as CoreVideoJoin
from legetime.schema.case_api import MAX_UPLOAD_BYTES, RETRY_KEY
from legetime.schema.case_types import Attachment
from legetime.schema.clinic_api import parse_uuid
from legetime.schema.context import Info
from legetime.schema.errors import Error
from legetime.schema.mutation import mutate


@strawberry.type(description="Where and with what the participant's video client connects; live only.")
class VideoJoin:
    url: str = strawberry.field(description="The video service's address for the client.")
    token: str = strawberry.field(
        description="Lets this participant into this appointment's room until `expiresAt`; never records."
    )
    expires_at: datetime


@strawberry.input
class JoinVideoConsultationInput:
    appointment_id: strawberry.ID


@strawberry.type
class JoinVideoConsultationPayload:
    join: VideoJoin | None = None
    errors: list[Error]


@strawberry.input
class AttachVideoChatImageInput:
    appointment_id: strawberry.ID
    image: Upload
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retrying with the same key and file returns the same attachment; the image is stored "
        f"once. {RETRY_KEY}",
    )


@strawberry.type
class AttachVideoChatImagePayload:
    attachment: Attachment | None = None
    errors: list[Error]


def _id(value: strawberry.ID) -> uuid.UUID:
    return parse_uuid(value, "appointmentId")


@strawberry.type
class VideoMutation:
    @strawberry.mutation(
        description="A join token for a video appointment: its patient (or the guardian who booked it, "
        "logged in with BankID) or its clinician, from 10 minutes before it starts until it ends. The "
        "patient joining registers her arrival. Live only: never recorded."
    )
    async def join_video_consultation(
        self, info: Info, input: JoinVideoConsultationInput
    ) -> JoinVideoConsultationPayload:
        async def work(ctx: Ctx) -> CoreVideoJoin:
            return await video.join(ctx, _id(input.appointment_id))

        joined, errors = await mutate(info, work)
        if joined is None:
            return JoinVideoConsultationPayload(errors=errors)
        view = VideoJoin(url=joined.url, token=joined.token, expires_at=joined.expires_at)
        return JoinVideoConsultationPayload(join=view, errors=[])

    @strawberry.mutation(
        description="Send a photo in a video consultation's chat (the patient side, while the video is "
        "open). It is stored with the consultation that referred to the appointment, like its other "
        "images (metadata removed; deleted when image storage consent is withdrawn). An appointment "
        "without a referring consultation takes no photos: NOT_SUPPORTED."
    )
    async def attach_video_chat_image(
        self, info: Info, input: AttachVideoChatImageInput
    ) -> AttachVideoChatImagePayload:
        platform, actor = info.context.platform, info.context.actor
        data = await input.image.read(MAX_UPLOAD_BYTES + 1)  # type: ignore[attr-defined]
        try:  # who may send it, then decoded before the transaction (see prepare_image)
            appointment_id = _id(input.appointment_id)
            case_id = await video.chat_case_id(platform, actor, appointment_id)
            image = await attachments.prepare_image(
                platform, actor, case_id, data, idempotency_key=input.idempotency_key
            )
        except LegetimeError as exc:
            return AttachVideoChatImagePayload(errors=[Error.from_exception(exc)])

        async def work(ctx: Ctx) -> models.Attachment:
            return await video.attach_chat_image(
                ctx, appointment_id, image, idempotency_key=input.idempotency_key
            )

        row, errors = await mutate(info, work)
        if row is None:
            return AttachVideoChatImagePayload(errors=errors)
        attachment = Attachment(
            id=strawberry.ID(str(row.id)),
            content_type=row.content_type,
            width=row.width,
            height=row.height,
            size_bytes=row.size_bytes,
            created_at=row.created_at,
            _model=row,
        )
        return AttachVideoChatImagePayload(attachment=attachment, errors=[])
