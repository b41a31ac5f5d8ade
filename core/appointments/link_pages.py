"""What a link in a text does without a login: the page it opens, and the arrival it registers.

**The page** (``open_link``) shows only what she needs to act on it: what the link is for, when the
appointment is, where (the clinic's name and address) and which forms are still missing. Not her name,
not the type of visit, not the clinician: whoever holds her phone may open it.

**Arrival** (``arrive_by_link``) needs no login: the arrival link is the proof, and it works only from an
hour before the start (``links.ARRIVAL_OPENS``) until the end, for the plan it was made for. Registering
twice answers the same. We cannot know who tapped the link, so the access log does not pretend it was the
patient: its actor is the link (role ``link``, no person), the person the entry concerns is the patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from legetime.core.appointments import booking, forms, links
from legetime.core.identity.actors import Actor
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.appointment_models import (
    Appointment,
    AppointmentMode,
    Clinic,
    FormKind,
)
from legetime.core.platform.errors import NotFound, ValidationError


class _LinkHolder(Actor):
    """Whoever holds a valid link from a text: logged as ``link``, never given access to anything."""

    @property
    def role(self) -> str:
        return "link"


LINK_HOLDER = _LinkHolder(person_id=None)

TOO_EARLY_MESSAGE = "Du kan registrere ankomst fra én time før timen."


@dataclass(frozen=True)
class LinkPage:
    purpose: links.LinkPurpose
    starts_at: datetime | None
    clinic_name: str
    clinic_address: str
    forms_missing: list[FormKind]


def _as_link(ctx: Ctx) -> Ctx:
    return Ctx(session=ctx.session, platform=ctx.platform, actor=LINK_HOLDER, now=ctx.now)


async def open_link(ctx: Ctx, token: str) -> LinkPage:
    """The page of a valid link (the read is logged, as the link)."""
    appointment, purpose = await links.read_any(ctx, token)
    clinic = await ctx.session.get(Clinic, appointment.clinic_id)
    assert clinic is not None
    missing = await forms.missing(ctx.session, appointment) if purpose is links.LinkPurpose.FORMS else []
    await booking.log_appointment(_as_link(ctx), appointment, "read_link", purpose.value)
    return LinkPage(
        purpose=purpose,
        starts_at=appointment.starts_at,
        clinic_name=clinic.name,
        clinic_address=clinic.address,
        forms_missing=missing,
    )


async def arrive_by_link(ctx: Ctx, token: str) -> Appointment:
    """She is here: registered from the arrival link, within its window; again answers the same."""
    appointment = await links.read_token(ctx, token, links.LinkPurpose.ARRIVAL, for_update=True)
    if appointment.mode is not AppointmentMode.IN_PERSON:
        raise NotFound(links.NOT_FOUND_MESSAGE, field="token")
    if appointment.arrived_at is not None:
        return appointment
    assert appointment.starts_at is not None
    if ctx.now < appointment.starts_at - links.ARRIVAL_OPENS:
        raise ValidationError(TOO_EARLY_MESSAGE, field="token")
    return await booking.mark_arrived(_as_link(ctx), appointment)
