"""SMS to the requester when something happens on her case. The text never holds health content: it
says there is news and asks her to log in. Sent once per event (the reference is the provider's
idempotency key, and the notification row records what was sent)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import Case, Notification, Person
from legetime.core.platform.jobs.outbox import enqueue
from legetime.core.platform.jobs.types import JobContext
from legetime.core.platform.providers import SMS
from legetime.core.platform.providers.sms import SmsMessage

TEXTS = {
    "answered": "Hei! Legen har svart på henvendelsen din. Logg inn på {url} for å lese svaret. "
    "Hilsen Legetime",
    "follow_up": "Hei! Legen har et spørsmål til deg om henvendelsen din. Logg inn på {url} for å svare. "
    "Hilsen Legetime",
}


SEND_SMS_JOB = "notify.sms"


async def notify(ctx: Ctx, case: Case, event: str, about: str) -> None:
    """Send the requester an SMS about the event, once (the reference is the idempotency key)."""
    reference = f"{case.id}:{event}:{about}"
    await enqueue(
        ctx.session,
        SEND_SMS_JOB,
        {"case_id": str(case.id), "event": event, "reference": reference},
        dedupe_key=f"sms:{reference}",
    )


async def send_sms_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    reference = str(payload["reference"])
    event = str(payload["event"])
    case = await ctx.session.get(Case, uuid.UUID(payload["case_id"]))
    if case is None:
        return
    notification = await ctx.session.scalar(select(Notification).where(Notification.reference == reference))
    if notification is None:
        notification = Notification(case_id=case.id, event=event, reference=reference, status="pending")
        ctx.session.add(notification)
    if notification.status == "sent":
        return
    requester = await ctx.session.get(Person, case.requester_id)
    if requester is None or not requester.phone:
        notification.status = "no_phone"
        return
    provider = ctx.platform.providers.get(SMS)
    settings = ctx.platform.settings
    receipt = await provider.send(
        SmsMessage(
            to=requester.phone,
            body=TEXTS[event].format(url=settings.public_url),
            sender=settings.sms_sender,
            reference=reference,
        )
    )
    notification.to = requester.phone
    notification.provider = provider.name
    notification.provider_id = receipt.provider_id
    notification.segments = receipt.segments
    notification.status = "sent"
    notification.sent_at = utcnow()
