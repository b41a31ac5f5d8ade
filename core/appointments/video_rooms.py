"""Closing a video appointment's room when the visit is over (completed, cancelled, no-show).

Why a job: the close is enqueued on the outbox in the transition's own transaction, so it runs only once
the transition committed (no room is closed for a transition that rolled back); a video service that is
down is retried with the outbox's backoff; and the transition itself never fails because of the video
service. Until the job ran, no new token is issued (``video``: the status no longer allows one) and the
tokens already out expire on their own (the end of the appointment plus a grace). Apart from ``video``
so that ``booking`` can call it without importing the join rules, which build on ``booking``.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.appointment_models import Appointment
from legetime.core.platform.errors import ProviderError, ValidationError
from legetime.core.platform.jobs.outbox import enqueue
from legetime.core.platform.jobs.types import JobContext, JobFailed
from legetime.core.platform.providers import VIDEO
from legetime.core.platform.providers.video import VideoRoom

log = structlog.get_logger(__name__)

CLOSE_JOB = "appointments.close_video_room"


def room_of(appointment: Appointment) -> VideoRoom | None:
    """The room a participant was given (``Appointment.video_room``), if anyone ever joined."""
    if appointment.video_room is None:
        return None
    return VideoRoom(provider_id=appointment.video_room, reference=str(appointment.id))


async def close_if_open(ctx: Ctx, appointment: Appointment) -> None:
    """The visit is over: close its room, if it ever had one, once this transaction committed."""
    if appointment.video_room is None:
        return
    await enqueue(
        ctx.session,
        CLOSE_JOB,
        {"appointment_id": str(appointment.id)},
        dedupe_key=f"video-close:{appointment.id}",
    )


async def close_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Close the room. ``ProviderUnavailable`` propagates (retried with backoff); a refusal that retrying
    does not mend fails the job with its code; a room of a provider no longer configured is left to
    close itself (its empty and departure timeouts) and logged."""
    appointment = await ctx.session.get(Appointment, uuid.UUID(payload["appointment_id"]))
    room = room_of(appointment) if appointment is not None else None
    if appointment is None or room is None:
        return
    try:
        await ctx.platform.providers.get(VIDEO).close_room(room)
    except ValidationError:
        log.warning("video.close_skipped", appointment_id=str(appointment.id), reason="other_provider")
        return
    except ProviderError as exc:
        if exc.retryable:
            raise
        log.warning("video.close_failed", appointment_id=str(appointment.id), code=str(exc.code))
        raise JobFailed(f"video close refused: {exc.code}") from None
    log.info("video.closed", appointment_id=str(appointment.id))
