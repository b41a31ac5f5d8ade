"""Getting a notice's text to the patient's phone: through the SMS providers in their order
(``LEGETIME_SMS_PROVIDERS``), with failover, and the networks' delivery reports in the SMS log.

- **Attempts.** Each hand-over to a provider is an ``SmsAttempt``; the notice mirrors the latest one.
  The first provider gets the notice's reference; a later one gets ``<reference>/<provider>``. Each
  reference is that provider's idempotency key, so a job that fails after a send and runs again sends
  nothing twice, whichever provider it reached.
- **Failover** happens on an answer that is final: the provider refused the text (``ProviderError``), or
  its network reported it ``failed``. An outcome that is not known (``ProviderUnavailable``: a timeout, a
  5xx, a rate limit) is retried with the same provider and reference, never failed over, so a text that
  is merely slow is not sent twice. Texts stay exactly once per event.
- **Reports** arrive at ``POST /webhooks/sms/<provider>``, verified by the provider
  (``parse_delivery_report``).
  A report only moves an attempt forward (queued → sent → delivered or failed, both final), so a late or
  repeated report changes nothing; a report of an attempt that is no longer the notice's latest is kept on
  that attempt only.
- **A report can overtake the send.** The job that sends a text records the attempt when its transaction
  commits, after the provider answered; a network that fails at once can report within that window. A
  report whose attempt is not (yet) known is kept as a job (``REPORT_JOB``) that applies it once the
  attempt is there, with the job system's backoff, and lets it go after the last attempt (a message that
  is not ours: another system on the same account).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.consultation import case_events
from legetime.core.consultation.sms_texts import notice_text
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import Case, Notification, SmsAttempt
from legetime.core.platform.errors import ProviderError, ProviderUnavailable
from legetime.core.platform.events import EventType
from legetime.core.platform.jobs.outbox import enqueue
from legetime.core.platform.jobs.types import JobContext
from legetime.core.platform.providers import SMS
from legetime.core.platform.providers.sms import DeliveryReport, DeliveryStatus, SmsMessage
from legetime.core.platform.runtime import Platform
from legetime.core.platform.webhooks import WebhookOutcome

log = structlog.get_logger(__name__)

FAILOVER_JOB = "notify.sms_failover"
REPORT_JOB = "notify.sms_report"

# A notice's statuses once it went to a provider (``notifications`` has the ones before).
SENT = "sent"
DELIVERED = "delivered"
FAILED = "failed"
REFUSED = "refused"  # an attempt only: the provider said no at once

_RANK = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DELIVERED: 2,
    DeliveryStatus.FAILED: 2,
}
_FINAL = {DeliveryStatus.DELIVERED.value, DeliveryStatus.FAILED.value, REFUSED}


def reference_for(notice: Notification, provider: str, position: int) -> str:
    return notice.reference if position == 0 else f"{notice.reference}/{provider}"


async def deliver(ctx: JobContext, notice: Notification, to: str, body: str, *, after: str | None) -> None:
    """Hand the text to the first provider (after ``after``, for a failover) that takes it; the notice
    fails when none does. ``ProviderUnavailable`` propagates: the job retries with the same provider."""
    names = ctx.platform.providers.names(SMS.capability)
    start = names.index(after) + 1 if after in names else 0
    settings = ctx.platform.settings
    for position in range(start, len(names)):
        name = names[position]
        provider = ctx.platform.providers.get(SMS, name)
        reference = reference_for(notice, name, position)
        message = SmsMessage(to=to, body=body, sender=settings.sms_sender, reference=reference)
        try:
            receipt = await provider.send(message)
        except ProviderUnavailable:
            raise
        except ProviderError as exc:
            reason = _reason(str(exc.code), str(exc))
            ctx.session.add(
                SmsAttempt(
                    notification_id=notice.id,
                    provider=name,
                    reference=reference,
                    status=REFUSED,
                    error=reason,
                )
            )
            notice.failure_reason = reason
            log.warning("sms.refused", notification_id=str(notice.id), provider=name, code=str(exc.code))
            continue
        ctx.session.add(
            SmsAttempt(
                notification_id=notice.id,
                provider=name,
                reference=reference,
                provider_id=receipt.provider_id,
                segments=receipt.segments,
                encoding=receipt.encoding.value,
                sender=message.sender,
                status=receipt.status.value,
            )
        )
        notice.to = to
        notice.provider = name
        notice.provider_id = receipt.provider_id
        notice.segments = receipt.segments
        notice.status = SENT
        notice.sent_at = utcnow()
        log.info("sms.sent", notification_id=str(notice.id), case_id=str(notice.case_id), provider=name)
        return
    notice.status = FAILED
    notice.status_at = utcnow()
    if notice.case_id is not None:
        await case_events.emit(
            ctx, EventType.SMS_FAILED, notice.case_id, notification_id=str(notice.id), notice=notice.event
        )
    log.warning(
        "sms.failed", notification_id=str(notice.id), case_id=str(notice.case_id), providers=len(names)
    )


async def receive_delivery_report(
    platform: Platform, provider_name: str, headers: Mapping[str, str], body: bytes
) -> WebhookOutcome:
    """A provider's network reports on a text. Verified by the provider; applied to its attempt."""
    try:
        provider = platform.providers.get(SMS, provider_name)
    except LookupError:
        return WebhookOutcome.UNKNOWN_PROVIDER
    try:
        report = await provider.parse_delivery_report(headers, body)
    except ProviderError as exc:
        log.warning("sms.report_rejected", provider=provider_name, code=str(exc.code))
        return WebhookOutcome.REJECTED
    async with platform.db.transaction() as session:
        if not await _apply(session, provider_name, report):
            log.info("sms.report_early", provider=provider_name, status=report.status.value)
            await enqueue(
                session,
                REPORT_JOB,
                {
                    "provider": provider_name,
                    "provider_id": report.provider_id,
                    "status": report.status.value,
                    "at": report.at.isoformat(),
                    "error": report.error,
                },
                dedupe_key=f"sms-report:{provider_name}:{report.provider_id}:{report.status.value}",
            )
    return WebhookOutcome.ACCEPTED


async def report_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    """A report that arrived before its attempt was recorded: applied once the attempt is there."""
    report = DeliveryReport(
        provider_id=payload["provider_id"],
        status=DeliveryStatus(payload["status"]),
        at=datetime.fromisoformat(payload["at"]),
        error=payload["error"],
    )
    if await _apply(ctx.session, payload["provider"], report):
        return
    if ctx.attempt < ctx.platform.settings.job_max_attempts:
        raise AttemptNotRecorded("no attempt with this provider id yet")  # retried with backoff
    log.info("sms.report_unknown", provider=payload["provider"])  # not ours: nothing to do


class AttemptNotRecorded(Exception):
    """The report's attempt is not in the SMS log (yet)."""


async def _apply(session: AsyncSession, provider_name: str, report: DeliveryReport) -> bool:
    """Apply a verified report to its attempt (and the notice, while the attempt is its latest); False if
    no attempt has the report's provider id."""
    attempt = await session.scalar(
        select(SmsAttempt)
        .where(SmsAttempt.provider == provider_name, SmsAttempt.provider_id == report.provider_id)
        .with_for_update()
    )
    if attempt is None:
        return False
    if not _moves_forward(attempt, report):
        return True
    attempt.status, attempt.status_at = report.status.value, report.at
    attempt.error = _reason("", report.error) if report.error else None
    notice = await session.get(Notification, attempt.notification_id, with_for_update=True)
    assert notice is not None
    log.info("sms.report", notification_id=str(notice.id), provider=provider_name, status=report.status.value)
    if not _is_latest(notice, attempt) or notice.status != SENT:
        return True  # an earlier attempt, superseded by a failover
    notice.status_at = report.at
    if report.status is DeliveryStatus.DELIVERED:
        notice.status = DELIVERED
        delivered = {"notification_id": str(notice.id), "notice": notice.event, "provider": provider_name}
        if notice.case_id is not None:
            await case_events.emit_as_system(session, EventType.SMS_DELIVERED, notice.case_id, **delivered)
    elif report.status is DeliveryStatus.FAILED:
        notice.failure_reason = attempt.error or "failed"
        await enqueue(
            session,
            FAILOVER_JOB,
            {"notification_id": str(notice.id), "attempt_id": str(attempt.id)},
            dedupe_key=f"sms-failover:{attempt.id}",
        )
    return True


async def failover_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The network could not deliver the latest attempt: the next provider sends (or the notice fails)."""
    session = ctx.session
    notice = await session.get(
        Notification, uuid.UUID(payload["notification_id"]), with_for_update=True, populate_existing=True
    )
    attempt = await session.get(SmsAttempt, uuid.UUID(payload["attempt_id"]))
    if notice is None or attempt is None or notice.status != SENT or not _is_latest(notice, attempt):
        return  # settled since: delivered after all, failed over already
    assert notice.to is not None
    await deliver(ctx, notice, notice.to, await text_of(ctx, notice), after=attempt.provider)


NoticeText = Callable[[JobContext, Notification], Awaitable[str]]
_OTHER_TEXTS: dict[str, NoticeText] = {}


def texts_of_other_notices(subject: str, make: NoticeText) -> None:
    """Who makes the text again (for a failover) of notices that are not about a case: ``subject`` is
    the first part of their event (``appointment`` for ``appointment.reminder``)."""
    _OTHER_TEXTS[subject] = make


async def text_of(ctx: JobContext, notice: Notification) -> str:
    """A notice's text, made again as it was sent (the texts are made from what they are about)."""
    if notice.case_id is None:
        return await _OTHER_TEXTS[notice.event.split(".", 1)[0]](ctx, notice)
    case = await ctx.session.get(Case, notice.case_id)
    assert case is not None  # a notice's case is never deleted (erasure leaves a tombstone)
    return notice_text(ctx.platform, notice.event, case)


def _is_latest(notice: Notification, attempt: SmsAttempt) -> bool:
    """Whether the notice still mirrors this attempt (no failover has replaced it)."""
    return (notice.provider, notice.provider_id) == (attempt.provider, attempt.provider_id)


def _moves_forward(attempt: SmsAttempt, report: DeliveryReport) -> bool:
    if attempt.status in _FINAL:
        return False
    try:
        current = _RANK[DeliveryStatus(attempt.status)]
    except ValueError:
        return True
    return _RANK[report.status] > current or report.status is DeliveryStatus.FAILED


def _reason(code: str, text: str) -> str:
    """A failure as operators see it: the code and the provider's reason, short, on one line."""
    reason = " ".join(f"{code}: {text}".split()) if code else " ".join(text.split())
    return reason[:200]
