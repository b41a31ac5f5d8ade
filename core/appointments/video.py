"""Video consultations: who gets a join token when, the room's life, and the photo sent in the chat.

**Who joins.** The appointment's clinician (a staff session), and the patient side (the patient, or the
guardian who booked for her child: ``access.as_patient``) when her session came from a BankID login at
assurance level *high* (``AuthSession.assurance_level``; every identity provider here is a BankID, the
simulated ``bankid-test`` included, and *high* is what health data needs: BankID with code or app, not a
weaker factor). Anyone else — an operator, another patient, a clinician of another appointment, nobody
logged in — gets "not found", whether the appointment exists or not.

**When.** A video appointment that is booked, reminded or arrived, from ``JOIN_EARLY`` before it starts
until it ends. The token lives until the end plus ``TOKEN_GRACE`` (a consultation running a few minutes
over), never more than the provider's maximum. The participant's identity in the video service is an
opaque keyed hash of the person and the appointment (stable for reconnects, never a national ID); the
display name is her given name, or "Lege <family name>" for the clinician. Each join is in the access log
(``join_video``); the patient side joining marks her arrived.

**Never recorded.** Nothing here asks the provider for recording; providers declare ``records = False``
(``core.platform.providers.video``) and the LiveKit provider never sends an egress.

**Closing.** Completing, cancelling or marking a no-show closes the room: a job on the outbox, enqueued
in the transition's transaction (``video_rooms``).

**The chat photo.** A photo sent in the chat is stored with the referring consultation (``case_id``)
through the consultation's own image path (``attachments.attach_image``): cleaned of metadata, sealed with
its own key, under the case's IMAGE_STORAGE consent, and deleted when that consent is withdrawn or the
case's communication is deleted — as any image of the case. A video appointment booked directly has no
case, so no place that the image rules already govern; its chat photos are refused (``NOT_SUPPORTED``)
rather than given a second storage with rules of its own. Only the patient side sends photos, while the
video may be joined.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import ColumnElement, false, or_, select

from legetime.core.appointments import access, booking
from legetime.core.consultation import attachments
from legetime.core.consultation.access import require_person
from legetime.core.identity.actors import Actor
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.appointment_models import Appointment, AppointmentMode, AppointmentStatus
from legetime.core.platform.db.models import Attachment, AuthSession, Case, CaseStatus, Person
from legetime.core.platform.errors import (
    ErrorCode,
    Forbidden,
    NotFound,
    NotSupported,
    ValidationError,
)
from legetime.core.platform.providers import VIDEO
from legetime.core.platform.providers.identity import AssuranceLevel
from legetime.core.platform.providers.video import (
    VideoJoin,
    VideoParticipant,
    VideoRole,
    VideoRoomRequest,
)
from legetime.core.platform.runtime import Platform
from legetime.core.protection import content

log = structlog.get_logger(__name__)

JOIN_EARLY = timedelta(minutes=10)
TOKEN_GRACE = timedelta(minutes=15)
MAX_TTL = timedelta(hours=12)
"""The video contract's longest token."""
JOINABLE = frozenset({AppointmentStatus.BOOKED, AppointmentStatus.REMINDED, AppointmentStatus.ARRIVED})
CLOSE_JOB = "appointments.close_video_room"
IDENTITY_KEY = "video-identity"
CHAT_IMAGE_STATUSES = frozenset({*attachments.OPEN_FOR_IMAGES, CaseStatus.ANSWERED, CaseStatus.CLOSED})
"""A referring case is answered or closed by the time of the video: its images may still be added to
from the consultation it referred to (not to a cancelled case)."""

BANKID_REQUIRED = "Logg inn med BankID for å bli med i videokonsultasjonen."
NOT_VIDEO = "Timen er ikke en videokonsultasjon."
NOT_OPEN = "Videokonsultasjonen er ikke åpen. Du kan koble til fra 10 minutter før timen til den slutter."


# --- who and when ------------------------------------------------------------------------------------------


def _participant_condition(ctx: Ctx) -> ColumnElement[bool]:
    """The patient side, or the appointment's own clinician: no one else even learns it exists."""
    clinician = Appointment.clinician_id == ctx.actor.person_id if ctx.actor.is_clinician else false()
    return or_(access.as_patient(ctx.actor, ctx.today), clinician)


async def bankid_session(ctx: Ctx) -> bool:
    """Whether the actor's session came from a BankID login at assurance level high."""
    if ctx.actor.session_id is None:
        return False
    level = await ctx.session.scalar(
        select(AuthSession.assurance_level).where(AuthSession.id == ctx.actor.session_id)
    )
    return level == AssuranceLevel.HIGH.value


@dataclass(frozen=True)
class _Seat:
    appointment: Appointment
    role: VideoRole


async def _seat(ctx: Ctx, appointment_id: uuid.UUID) -> _Seat:
    """The appointment, if the actor may be in its video now, and as whom. "Not found" for anyone who is
    not a participant; a typed refusal for a participant without BankID or outside the window."""
    require_person(ctx.actor)
    appointment = await access.load(ctx, appointment_id, _participant_condition(ctx), for_update=True)
    if ctx.actor.is_clinician and appointment.clinician_id == ctx.actor.person_id:
        role = VideoRole.CLINICIAN
    else:
        if not await bankid_session(ctx):
            raise Forbidden(BANKID_REQUIRED, field="appointmentId", code=ErrorCode.UNAUTHENTICATED)
        role = VideoRole.PATIENT if appointment.patient_id == ctx.actor.person_id else VideoRole.GUARDIAN
    if appointment.mode is not AppointmentMode.VIDEO:
        raise ValidationError(NOT_VIDEO, field="appointmentId")
    if not open_now(appointment, ctx.now):
        raise Forbidden(NOT_OPEN, field="appointmentId")
    return _Seat(appointment, role)


def open_now(appointment: Appointment, now: datetime) -> bool:
    """Booked (or arrived) and within its window: ``JOIN_EARLY`` before the start until the end."""
    if appointment.status not in JOINABLE or appointment.starts_at is None or appointment.ends_at is None:
        return False
    return appointment.starts_at - JOIN_EARLY <= now <= appointment.ends_at


def identity(platform: Platform, person_id: uuid.UUID, appointment_id: uuid.UUID, role: VideoRole) -> str:
    """Opaque and stable per person and appointment (a reconnect is the same participant); the video
    service can link nothing to a person."""
    message = f"{person_id}:{appointment_id}".encode()
    digest = hmac.new(platform.derive_key(IDENTITY_KEY), message, hashlib.sha256).hexdigest()[:32]
    return f"{role.value[0]}-{digest}"


async def _display_name(ctx: Ctx, role: VideoRole) -> str:
    person = await ctx.session.get(Person, ctx.actor.person_id)
    assert person is not None
    if role is VideoRole.CLINICIAN:
        return f"Lege {person.family_name}"
    return person.given_name


# --- joining -----------------------------------------------------------------------------------------------


async def join(ctx: Ctx, appointment_id: uuid.UUID) -> VideoJoin:
    """A join token for the actor in the appointment's room (opened now, the same room every time)."""
    seat = await _seat(ctx, appointment_id)
    appointment = seat.appointment
    assert appointment.starts_at is not None and appointment.ends_at is not None
    provider = ctx.platform.providers.get(VIDEO)
    room = await provider.create_room(
        VideoRoomRequest(
            reference=str(appointment.id), starts_at=appointment.starts_at, ends_at=appointment.ends_at
        )
    )
    appointment.video_room = room.provider_id
    assert ctx.actor.person_id is not None
    participant = VideoParticipant(
        identity=identity(ctx.platform, ctx.actor.person_id, appointment.id, seat.role),
        display_name=await _display_name(ctx, seat.role),
        role=seat.role,
    )
    ttl = min(appointment.ends_at + TOKEN_GRACE - ctx.now, MAX_TTL)
    joined = await provider.join(room, participant, ttl)
    clinician = seat.role is VideoRole.CLINICIAN
    await booking.log_appointment(ctx, appointment, "join_video", "treatment" if clinician else None)
    if not clinician and appointment.status in (AppointmentStatus.BOOKED, AppointmentStatus.REMINDED):
        await booking.mark_arrived(ctx, appointment)
    log.info("video.joined", appointment_id=str(appointment.id), role=seat.role.value)
    return joined


# --- the chat photo ----------------------------------------------------------------------------------------


async def _chat_case(ctx: Ctx, appointment_id: uuid.UUID) -> tuple[Appointment, uuid.UUID]:
    """The appointment (the patient side, in its video window) and the case its chat photos go to."""
    seat = await _seat(ctx, appointment_id)
    if seat.role is VideoRole.CLINICIAN:
        raise Forbidden("Bare pasienten kan sende bilder i videokonsultasjonen.", field="appointmentId")
    appointment = seat.appointment
    if appointment.case_id is None:
        raise NotSupported(
            "Bilder kan bare sendes i videokonsultasjoner som er henvist fra en nettkonsultasjon. "
            "Vis bildet i videoen i stedet.",
            field="appointmentId",
        )
    case = await ctx.session.get(Case, appointment.case_id)
    if case is None or content.communication_deleted(case):
        raise NotFound("Konsultasjonen som henviste til timen er slettet.", field="appointmentId")
    return appointment, appointment.case_id


async def chat_case_id(platform: Platform, actor: Actor, appointment_id: uuid.UUID) -> uuid.UUID:
    """A short look before the upload is decoded: the case a photo would go to, or the refusal."""
    async with platform.db.transaction() as session:
        ctx = Ctx(session=session, platform=platform, actor=actor)
        _, case_id = await _chat_case(ctx, appointment_id)
        return case_id


async def attach_chat_image(
    ctx: Ctx,
    appointment_id: uuid.UUID,
    image: attachments.PreparedImage,
    idempotency_key: str | None = None,
) -> Attachment:
    """Store a photo from the chat with the referring case, as any image of the case."""
    appointment, case_id = await _chat_case(ctx, appointment_id)
    attachment = await attachments.attach_image(
        ctx, case_id, image, idempotency_key, open_statuses=CHAT_IMAGE_STATUSES
    )
    await booking.log_appointment(ctx, appointment, "video_image")
    return attachment
