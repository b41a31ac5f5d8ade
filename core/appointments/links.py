"""Signed, short-lived links in the texts around an appointment: one appointment, one purpose.

A link acts without a login (arrival, the page that shows what a form link is for) or together with one
(forms after BankID), so the token itself must prove what it is for. It carries the appointment's id, the
purpose, the plan it was made for and its expiry, signed with HMAC-SHA256 under a key derived for this
use alone (``derive_key("appointment-links")``); nothing in it is secret, nothing about health is in it.

- **Compact**: 41 bytes, 55 characters base64url — short enough for one SMS with the rest of the text.
- **Deterministic**: the same appointment, purpose, plan and expiry give the same token, so a text made
  again for a failover to another SMS provider is the same text. Expiries are computed from the
  appointment's own times (``expires_at``), never from "now".
- **Checked in constant time** (``hmac.compare_digest``); an altered or unknown token and a token of
  another purpose are "not found"; one out of its time, or made for a plan the appointment has left (it
  moved or was cancelled: forms and arrival), is ``LINK_EXPIRED``.

Expiries: forms until the appointment starts; arrival until it ends (it opens one hour before:
``ARRIVAL_OPENS``, checked where arrival is registered); payment and survey 30 days after the visit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import structlog

from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.appointment_models import Appointment
from legetime.core.platform.errors import LinkExpired, NotFound
from legetime.core.platform.runtime import Platform

log = structlog.get_logger(__name__)

KEY_PURPOSE = "appointment-links"
ARRIVAL_OPENS = timedelta(hours=1)
"""Arrival may be registered from this long before the start."""
AFTER_VISIT = timedelta(days=30)
"""How long the payment and survey links work after the visit."""

NOT_FOUND_MESSAGE = "Fant ikke lenken. Sjekk at hele lenken fra meldingen er med."
EXPIRED_MESSAGE = "Lenken er utløpt eller gjelder ikke lenger. Logg inn i appen for å se timen din."


class LinkPurpose(StrEnum):
    FORMS = "forms"
    ARRIVAL = "arrival"
    PAYMENT = "payment"
    SURVEY = "survey"


_CODES: dict[LinkPurpose, int] = {
    LinkPurpose.FORMS: 1,
    LinkPurpose.ARRIVAL: 2,
    LinkPurpose.PAYMENT: 3,
    LinkPurpose.SURVEY: 4,
}
"""The purpose's byte in the token: stable, never reused (tokens in sent texts must keep their meaning)."""
_PURPOSES = {code: purpose for purpose, code in _CODES.items()}
_BODY = struct.Struct(">B16sII")  # purpose, appointment id, plan, expiry (Unix seconds)
_MAC_BYTES = 16
"""HMAC-SHA256 truncated to 128 bits (RFC 2104 §5 allows truncation to at least half its length)."""
_PLANNED = frozenset({LinkPurpose.FORMS, LinkPurpose.ARRIVAL})
"""Purposes bound to the appointment's time: void when it moves."""


@dataclass(frozen=True)
class LinkClaims:
    appointment_id: uuid.UUID
    purpose: LinkPurpose
    plan: int
    expires_at: datetime


def _mac(platform: Platform, body: bytes) -> bytes:
    return hmac.new(platform.derive_key(KEY_PURPOSE), body, hashlib.sha256).digest()[:_MAC_BYTES]


def make_token(
    platform: Platform, appointment: Appointment, purpose: LinkPurpose, expires_at: datetime
) -> str:
    """The token for one appointment, one purpose, its current plan, valid until ``expires_at`` (to the
    second). Same inputs, same token."""
    body = _BODY.pack(_CODES[purpose], appointment.id.bytes, appointment.plan, int(expires_at.timestamp()))
    return base64.urlsafe_b64encode(body + _mac(platform, body)).rstrip(b"=").decode("ascii")


def expires_at(appointment: Appointment, purpose: LinkPurpose) -> datetime:
    """When a link of ``purpose`` stops working, from the appointment's own times (deterministic)."""
    if purpose is LinkPurpose.FORMS:
        assert appointment.starts_at is not None
        return appointment.starts_at
    if purpose is LinkPurpose.ARRIVAL:
        assert appointment.ends_at is not None
        return appointment.ends_at
    visit = appointment.completed_at or appointment.ends_at
    assert visit is not None
    return visit + AFTER_VISIT


def link_url(platform: Platform, token: str) -> str:
    """The page a link opens: a route of the frontend (the platform itself is headless)."""
    return f"{platform.settings.public_url.rstrip('/')}/t/{token}"


def link_for(platform: Platform, appointment: Appointment, purpose: LinkPurpose) -> str:
    """The full link of ``purpose`` for the appointment's current plan, with its standard expiry."""
    return link_url(platform, make_token(platform, appointment, purpose, expires_at(appointment, purpose)))


def decode(platform: Platform, token: str, purpose: LinkPurpose | None, now: datetime) -> LinkClaims:
    """What a token says, if we signed it (for ``purpose``; any when None) and it has not expired;
    without the database."""
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise NotFound(NOT_FOUND_MESSAGE, field="token") from None
    body, mac = raw[: _BODY.size], raw[_BODY.size :]
    if len(raw) != _BODY.size + _MAC_BYTES or not hmac.compare_digest(mac, _mac(platform, body)):
        raise NotFound(NOT_FOUND_MESSAGE, field="token")
    code, appointment_id, plan, expiry = _BODY.unpack(body)
    found = _PURPOSES.get(code)
    if found is None or (purpose is not None and found is not purpose):
        raise NotFound(NOT_FOUND_MESSAGE, field="token")
    claims = LinkClaims(uuid.UUID(bytes=appointment_id), found, plan, datetime.fromtimestamp(expiry, UTC))
    if now >= claims.expires_at:
        log.info("appointment.link_refused", appointment_id=str(claims.appointment_id), reason="expired")
        raise LinkExpired(EXPIRED_MESSAGE, field="token")
    return claims


async def read_token(ctx: Ctx, token: str, purpose: LinkPurpose, *, for_update: bool = False) -> Appointment:
    """The appointment a valid link of ``purpose`` is for (``for_update`` locks it for a change).
    Forms and arrival links also need the appointment still on the plan they were made for."""
    return (await _read(ctx, token, purpose, for_update=for_update))[0]


async def read_any(ctx: Ctx, token: str) -> tuple[Appointment, LinkPurpose]:
    """The appointment and the purpose of a valid link of any purpose (the page a link opens)."""
    return await _read(ctx, token, None, for_update=False)


async def _read(
    ctx: Ctx, token: str, wanted: LinkPurpose | None, *, for_update: bool
) -> tuple[Appointment, LinkPurpose]:
    claims = decode(ctx.platform, token, wanted, ctx.now)
    purpose = claims.purpose
    appointment = await ctx.session.get(
        Appointment, claims.appointment_id, with_for_update=for_update, populate_existing=for_update
    )
    if appointment is None:
        raise NotFound(NOT_FOUND_MESSAGE, field="token")
    stale = purpose in _PLANNED and (claims.plan != appointment.plan or appointment.cancelled_at is not None)
    if stale or appointment.purged_at is not None:
        log.info("appointment.link_refused", appointment_id=str(appointment.id), reason="replanned")
        raise LinkExpired(EXPIRED_MESSAGE, field="token")
    return appointment, purpose
