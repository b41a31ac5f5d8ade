"""Operators' management of outbound webhook endpoints: make, change, enable or disable, delete, rotate the
secret, send a delivery again, and read the delivery log. Operators only; every change is in the access
log. The signing secret is returned when made or rotated, and never again (``webhooks_out.signing``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import delete, select

from legetime.core.identity.actors import require_operator
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.base import new_id
from legetime.core.platform.db.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from legetime.core.platform.errors import NotFound, ValidationError
from legetime.core.platform.events import EventType
from legetime.core.platform.jobs.outbox import enqueue
from legetime.core.platform.webhooks_out import addresses, delivery, signing
from legetime.core.protection import audit

MAX_DESCRIPTION = 500
OPERATOR_DISABLED = "Slått av av en driftsoperatør."


class Keep(Enum):
    KEEP = "keep"


KEEP = Keep.KEEP
"""An ``update`` argument left as it is."""


@dataclass(frozen=True)
class WithSecret:
    endpoint: WebhookEndpoint
    secret: str
    """Shown this once."""


def _event_types(values: Sequence[str] | None) -> list[str] | None:
    if values is None:
        return None
    known = {t.value for t in EventType}
    if not values:
        raise ValidationError("Velg minst én hendelsestype, eller alle.", field="eventTypes")
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ValidationError(f"Ukjent hendelsestype: {unknown[0]}.", field="eventTypes")
    return sorted(set(values))


def _description(value: str | None) -> str | None:
    value = (value or "").strip() or None
    if value is not None and len(value) > MAX_DESCRIPTION:
        raise ValidationError(f"Beskrivelsen kan ha høyst {MAX_DESCRIPTION} tegn.", field="description")
    return value


async def _log(ctx: Ctx, object_type: str, object_id: uuid.UUID, action: str) -> None:
    await audit.log(ctx, person_id=None, object_type=object_type, object_id=str(object_id), action=action)


async def create(
    ctx: Ctx,
    *,
    url: str,
    event_types: Sequence[str] | None,
    description: str | None = None,
    enabled: bool = True,
) -> WithSecret:
    require_operator(ctx.actor)
    url = url.strip()
    await addresses.check(url, production=ctx.platform.settings.is_production)
    endpoint = WebhookEndpoint(
        id=new_id(),
        url=url,
        description=_description(description),
        event_types=_event_types(event_types),
        enabled=enabled,
        disabled_reason=None if enabled else OPERATOR_DISABLED,
        disabled_at=None if enabled else ctx.now,
        consecutive_failures=0,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    secret = signing.new_secret()
    signing.give_key(ctx.platform.keyring, endpoint)
    signing.store_secret(ctx.platform.keyring, endpoint, secret)
    ctx.session.add(endpoint)
    await _log(ctx, "webhook_endpoint", endpoint.id, "create")
    return WithSecret(endpoint, secret)


async def get(ctx: Ctx, endpoint_id: uuid.UUID, *, for_update: bool = False) -> WebhookEndpoint:
    require_operator(ctx.actor)
    query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    endpoint = await ctx.session.scalar(query.with_for_update() if for_update else query)
    if endpoint is None:
        raise NotFound("Fant ikke endepunktet.", field="id")
    return endpoint


async def update(
    ctx: Ctx,
    endpoint_id: uuid.UUID,
    *,
    url: str | None = None,
    event_types: Sequence[str] | Keep | None = KEEP,
    description: str | Keep | None = KEEP,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    endpoint = await get(ctx, endpoint_id, for_update=True)
    if url is not None:
        url = url.strip()
        await addresses.check(url, production=ctx.platform.settings.is_production)
        endpoint.url = url
    if not isinstance(event_types, Keep):
        endpoint.event_types = _event_types(event_types)
    if not isinstance(description, Keep):
        endpoint.description = _description(description)
    action = "update"
    if enabled is True and not endpoint.enabled:
        endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = True, None, None
        endpoint.consecutive_failures, endpoint.failing_since = 0, None
        action = "enable"
    elif enabled is False and endpoint.enabled:
        endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = False, OPERATOR_DISABLED, ctx.now
        action = "disable"
    endpoint.updated_at = ctx.now
    await _log(ctx, "webhook_endpoint", endpoint.id, action)
    return endpoint


async def rotate_secret(ctx: Ctx, endpoint_id: uuid.UUID) -> WithSecret:
    """A new secret; the current one keeps signing (a second signature) for a grace period."""
    endpoint = await get(ctx, endpoint_id, for_update=True)
    secret = signing.new_secret()
    signing.rotate_secret(ctx.platform.keyring, endpoint, secret, ctx.now + delivery.POLICY.secret_grace)
    endpoint.secret_rotated_at = endpoint.updated_at = ctx.now
    await _log(ctx, "webhook_endpoint", endpoint.id, "rotate_secret")
    return WithSecret(endpoint, secret)


async def remove(ctx: Ctx, endpoint_id: uuid.UUID) -> uuid.UUID:
    """Delete the endpoint with its delivery log; attempts still queued for it find nothing to do."""
    endpoint = await get(ctx, endpoint_id, for_update=True)
    deliveries = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id)
    await ctx.session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
    await ctx.session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    await ctx.session.delete(endpoint)
    await _log(ctx, "webhook_endpoint", endpoint.id, "delete")
    return endpoint.id


async def redeliver(ctx: Ctx, delivery_id: uuid.UUID) -> WebhookDelivery:
    """Send a delivery once more, now (whatever became of it: delivered, failed or still being tried)."""
    require_operator(ctx.actor)
    row = await ctx.session.get(WebhookDelivery, delivery_id)
    if row is None:
        raise NotFound("Fant ikke leveransen.", field="deliveryId")
    endpoint = await ctx.session.get(WebhookEndpoint, row.endpoint_id)
    if endpoint is None or not endpoint.enabled:
        raise ValidationError("Endepunktet er slått av. Slå det på først.", field="deliveryId")
    await enqueue(ctx.session, delivery.DELIVER_JOB, {"delivery_id": str(row.id), "manual": True})
    await _log(ctx, "webhook_delivery", row.id, "redeliver")
    return row


async def endpoints(ctx: Ctx) -> list[WebhookEndpoint]:
    require_operator(ctx.actor)
    rows = await ctx.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.created_at))
    return list(rows)


async def deliveries(
    ctx: Ctx, endpoint_id: uuid.UUID, *, first: int, status: str | None = None
) -> list[WebhookDelivery]:
    """The endpoint's deliveries, newest first."""
    await get(ctx, endpoint_id)
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
        .limit(first)
    )
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return list(await ctx.session.scalars(query))


async def attempts(ctx: Ctx, delivery_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[WebhookAttempt]]:
    """The attempts of these deliveries, oldest first."""
    found: dict[uuid.UUID, list[WebhookAttempt]] = {key: [] for key in delivery_ids}
    if delivery_ids:
        rows: Any = await ctx.session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(delivery_ids)))
            .order_by(WebhookAttempt.attempted_at, WebhookAttempt.id)
        )
        for row in rows:
            found[row.delivery_id].append(row)
    return found
