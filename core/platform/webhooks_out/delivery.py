"""Delivering domain events to webhook endpoints: one delivery per event and subscribed endpoint, one
attempt per job.

``fan_out`` runs in the event's dispatch job: it writes a delivery for each enabled endpoint subscribed
to the event's type and enqueues its first attempt, in that job's transaction. ``deliver_job`` makes one
attempt (a signed POST) and records it; a failed attempt enqueues the next one as a new job, due after
the next delay of ``POLICY.schedule`` (the Standard Webhooks/Svix schedule: at once, 5 s, 5 min, 30 min,
2 h, 5 h, then every 10 h, about three days in all). After the last one the delivery has failed. An
endpoint whose deliveries have all failed for ``POLICY.disable_after`` (5 days: no delivery made since
then got through) is disabled, with the reason for operators to see; deliveries still waiting for it fail.

The payload holds ids, types, statuses and times only: an integrator fetches what it may see through the
API. ``webhook-id`` is the event's id, the same on every attempt, redelivery and endpoint.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.platform.db.base import new_id, utcnow
from legetime.core.platform.db.models import DomainEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from legetime.core.platform.jobs.outbox import enqueue
from legetime.core.platform.webhooks_out import addresses, signing

if TYPE_CHECKING:
    from legetime.core.platform.events import Event
    from legetime.core.platform.jobs.types import JobContext
    from legetime.core.platform.runtime import Platform

log = structlog.get_logger(__name__)

DELIVER_JOB = "webhooks.deliver"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
USER_AGENT = "Legetime-Webhooks/1"


def _hours(*hours: float) -> tuple[timedelta, ...]:
    return tuple(timedelta(hours=h) for h in hours)


@dataclass(frozen=True)
class Policy:
    schedule: tuple[timedelta, ...] = (
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        *_hours(2, 5, 10, 10, 10, 10, 10, 10, 10),
    )
    """The delay before each attempt after the first: 13 attempts over about 3.2 days."""
    timeout: float = 10.0
    """Seconds an attempt may take, connecting and answering included."""
    disable_after: timedelta = timedelta(days=5)
    """An endpoint whose deliveries have all failed for this long is disabled."""
    secret_grace: timedelta = timedelta(hours=24)
    """How long a rotated secret keeps signing."""

    def delay_after(self, attempt: int) -> timedelta | None:
        """The delay before the attempt after scheduled attempt ``attempt`` (1 = the first); None after
        the last."""
        return self.schedule[attempt - 1] if attempt <= len(self.schedule) else None

    def scaled(self, factor: float) -> Policy:
        """The same policy with every delay multiplied (a test runs days of retries in seconds)."""
        return replace(self, schedule=tuple(delay * factor for delay in self.schedule))


POLICY = Policy()


def subscribed(endpoint: WebhookEndpoint, event_type: str) -> bool:
    return endpoint.event_types is None or event_type in endpoint.event_types


async def fan_out(session: AsyncSession, event: Event) -> int:
    """A delivery, and the job of its first attempt, for each enabled endpoint subscribed to the event's
    type; once per endpoint however often the dispatch runs. Returns how many it made."""
    endpoints = (
        await session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True)))
    ).all()
    wanted = [endpoint for endpoint in endpoints if subscribed(endpoint, event.type.value)]
    if not wanted:
        return 0
    done = set(
        await session.scalars(select(WebhookDelivery.endpoint_id).where(WebhookDelivery.event_id == event.id))
    )
    now, made = utcnow(), 0
    for endpoint in wanted:
        if endpoint.id in done:
            continue
        delivery = WebhookDelivery(
            id=new_id(),
            endpoint_id=endpoint.id,
            event_id=event.id,
            event_type=event.type.value,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        session.add(delivery)
        await enqueue(session, DELIVER_JOB, {"delivery_id": str(delivery.id), "attempt": 1})
        made += 1
    return made


def body_of(row: DomainEvent) -> str:
    """The JSON body: ``{"type", "timestamp", "data": {"id", "type", "occurredAt", "caseId", "caseStatus",
    "actorRole", …the type's ids and codes}}`` (docs/events.md)."""
    occurred = row.occurred_at.isoformat().replace("+00:00", "Z")
    fixed = {
        "id": str(row.id),
        "type": row.type,
        "occurredAt": occurred,
        "caseId": None if row.case_id is None else str(row.case_id),
        "caseStatus": row.case_status,
        "actorRole": row.actor_role,
    }
    data = {**fixed, **{k: v for k, v in (row.data or {}).items() if k not in fixed}}
    return json.dumps({"type": row.type, "timestamp": occurred, "data": data}, separators=(",", ":"))


async def deliver_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    """One attempt of one delivery: scheduled (``attempt``: its place in the schedule) or asked for by an
    operator (``manual``). Records it, and enqueues the next scheduled attempt after a failure."""
    session = ctx.session
    manual = bool(payload.get("manual"))
    delivery = await session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == uuid.UUID(payload["delivery_id"]))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if delivery is None or (delivery.status != PENDING and not manual):
        return  # the endpoint was deleted, or the delivery is settled already
    endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id, populate_existing=True)
    row = await session.scalar(select(DomainEvent).where(DomainEvent.id == delivery.event_id))
    if endpoint is None or not endpoint.enabled or row is None:
        if delivery.status == PENDING:
            _settle(delivery, FAILED, utcnow())
        log.info("webhook.not_sent", delivery_id=str(delivery.id), reason="endpoint_disabled_or_gone")
        return
    status_code, error, latency_ms = await _post(ctx.platform, endpoint, str(row.id), body_of(row))
    now = utcnow()
    delivery.attempts += 1
    session.add(
        WebhookAttempt(
            id=new_id(),
            delivery_id=delivery.id,
            attempted_at=now,
            status_code=status_code,
            error=error,
            latency_ms=latency_ms,
            manual=manual,
        )
    )
    fields = {
        "delivery_id": str(delivery.id),
        "endpoint_id": str(endpoint.id),
        "event_id": str(row.id),
        "status_code": status_code,
        "latency_ms": latency_ms,
        "manual": manual,
    }
    if error is None:
        _settle(delivery, DELIVERED, now)
        endpoint.consecutive_failures, endpoint.failing_since = 0, None
        log.info("webhook.delivered", **fields)
        return
    log.warning("webhook.attempt_failed", error=error, **fields)
    if manual:
        return  # a failed redelivery changes nothing: a pending delivery keeps its schedule
    attempt = int(payload.get("attempt", 1))
    delay = POLICY.delay_after(attempt)
    if delay is not None:
        delivery.next_attempt_at = now + delay
        await enqueue(
            session,
            DELIVER_JOB,
            {"delivery_id": str(delivery.id), "attempt": attempt + 1},
            dedupe_key=f"{DELIVER_JOB}:{delivery.id}:{attempt + 1}",
            delay=delay,
        )
        return
    _settle(delivery, FAILED, now)
    log.warning("webhook.failed", delivery_id=str(delivery.id), endpoint_id=str(endpoint.id))
    await _count_failure(session, endpoint, delivery, now)


def _settle(delivery: WebhookDelivery, status: str, now: datetime) -> None:
    delivery.status, delivery.finished_at, delivery.next_attempt_at = status, now, None


async def _count_failure(
    session: AsyncSession, endpoint: WebhookEndpoint, delivery: WebhookDelivery, now: datetime
) -> None:
    """A delivery failed for good: disable the endpoint when every delivery has failed for long enough,
    and fail the deliveries still waiting for it."""
    endpoint.consecutive_failures += 1
    since = endpoint.failing_since = endpoint.failing_since or delivery.created_at
    if not endpoint.enabled or now - since < POLICY.disable_after:
        return
    endpoint.enabled = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = (
        f"Slått av automatisk: alle leveranser siden {since:%Y-%m-%d %H:%M} UTC har feilet "
        f"({endpoint.consecutive_failures} på rad)."
    )
    log.warning(
        "webhook.endpoint_disabled", endpoint_id=str(endpoint.id), failures=endpoint.consecutive_failures
    )
    waiting = await session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.status == PENDING
        )
    )
    for other in waiting:
        _settle(other, FAILED, now)


async def _post(
    platform: Platform, endpoint: WebhookEndpoint, message_id: str, body: str
) -> tuple[int | None, str | None, int]:
    """POST the signed body to the endpoint's checked address: (status code, error code, latency ms)."""
    import httpx  # with the first delivery, not at start-up

    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = await addresses.target(endpoint.url, production=platform.settings.is_production)
    except addresses.AddressRefused:
        return None, "address_refused", elapsed()
    headers = signing.headers(
        signing.signing_secrets(platform.keyring, endpoint, utcnow()), message_id, body, utcnow()
    )
    headers |= {"host": target.host_header, "user-agent": USER_AGENT}
    extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
    try:
        async with (
            asyncio.timeout(POLICY.timeout),
            httpx.AsyncClient(timeout=POLICY.timeout, follow_redirects=False, trust_env=False) as client,
        ):
            request = client.build_request(
                "POST", target.url, content=body.encode(), headers=headers, extensions=extensions
            )
            response = await client.send(request, stream=True)  # the answer's body is not read
            await response.aclose()
    except (TimeoutError, httpx.TimeoutException):
        return None, "timeout", elapsed()
    except httpx.HTTPError:
        return None, "connect_error", elapsed()
    if 200 <= response.status_code < 300:
        return response.status_code, None, elapsed()
    return response.status_code, "http_status", elapsed()
