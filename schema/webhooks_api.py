"""Operators: outbound webhook endpoints (Standard Webhooks) and their delivery log. The rules live in
``legetime.core.protection.webhook_endpoints``; docs/events.md, "Webhooks", describes what is sent."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from legetime.core.identity.actors import require_operator
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db import models
from legetime.core.platform.errors import ValidationError
from legetime.core.platform.events import EventType
from legetime.core.protection import webhook_endpoints as endpoints
from legetime.schema.context import Info
from legetime.schema.errors import Error
from legetime.schema.mutation import global_uuid, mutate
from legetime.schema.pagination import check_page_size

WebhookEventType = strawberry.enum(
    EventType, name="WebhookEventType", description="A domain event type an endpoint can subscribe to."
)
DELIVERY_STATUSES = ("pending", "delivered", "failed")


@strawberry.type(description="One POST of a delivery.")
class WebhookAttempt:
    attempted_at: datetime
    status_code: int | None = strawberry.field(description="The endpoint's HTTP status, if it answered.")
    error: str | None = strawberry.field(
        description="Why it failed: timeout, connect_error, address_refused or http_status (not 2xx)."
    )
    latency_ms: int
    manual: bool = strawberry.field(description="Asked for with `redeliverWebhook`.")


@strawberry.type(description="One event for one endpoint.")
class WebhookDelivery:
    id: strawberry.ID
    event_id: strawberry.ID = strawberry.field(description="The event's id: the `webhook-id` header.")
    event_type: str
    status: str = strawberry.field(description="pending (being tried), delivered or failed.")
    attempt_count: int
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    attempts: list[WebhookAttempt] = strawberry.field(description="Oldest first.")

    @classmethod
    def of(cls, row: models.WebhookDelivery, attempts: list[models.WebhookAttempt]) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(str(row.id)),
            event_id=strawberry.ID(str(row.event_id)),
            event_type=row.event_type,
            status=row.status,
            attempt_count=row.attempts,
            next_attempt_at=row.next_attempt_at,
            created_at=row.created_at,
            finished_at=row.finished_at,
            attempts=[
                WebhookAttempt(
                    attempted_at=a.attempted_at,
                    status_code=a.status_code,
                    error=a.error,
                    latency_ms=a.latency_ms,
                    manual=a.manual,
                )
                for a in attempts
            ],
        )


@strawberry.type(description="An integrator's URL for signed webhooks. Its secret is never shown again.")
class WebhookEndpoint:
    id: strawberry.ID
    url: str
    description: str | None
    event_types: list[WebhookEventType] | None = strawberry.field(  # type: ignore[valid-type]
        description="The subscribed types; null for all (types added later included)."
    )
    enabled: bool
    disabled_reason: str | None = strawberry.field(
        description="Why it is disabled: by an operator, or because its deliveries kept failing."
    )
    disabled_at: datetime | None
    consecutive_failures: int = strawberry.field(
        description="Deliveries failed for good since the last one delivered."
    )
    failing_since: datetime | None
    secret_rotated_at: datetime | None
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="Until then deliveries carry the previous secret's signature too."
    )
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="The delivery log, newest first.")
    async def deliveries(
        self, info: Info, first: int = 50, status: str | None = None
    ) -> list[WebhookDelivery]:
        ctx = await info.context.read()
        check_page_size(first, None, ctx.platform.settings.max_page_size)
        if status is not None and status not in DELIVERY_STATUSES:
            raise ValidationError("status must be pending, delivered or failed.", field="status")
        rows = await endpoints.deliveries(ctx, uuid.UUID(str(self.id)), first=first, status=status)
        attempts = await endpoints.attempts(ctx, [row.id for row in rows])
        return [WebhookDelivery.of(row, attempts[row.id]) for row in rows]

    @classmethod
    def of(cls, row: models.WebhookEndpoint) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(str(row.id)),
            url=row.url,
            description=row.description,
            event_types=None if row.event_types is None else [EventType(t) for t in row.event_types],
            enabled=row.enabled,
            disabled_reason=row.disabled_reason,
            disabled_at=row.disabled_at,
            consecutive_failures=row.consecutive_failures,
            failing_since=row.failing_since,
            secret_rotated_at=row.secret_rotated_at,
            previous_secret_expires_at=row.previous_secret_expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.input
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description="https (in production), to a public address.")
    event_types: list[WebhookEventType] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="The types to send; null (the default) for all."
    )
    description: str | None = None
    enabled: bool = True


@strawberry.input
class UpdateWebhookEndpointInput:
    id: strawberry.ID
    url: str | None = None
    event_types: list[WebhookEventType] | None = strawberry.field(  # type: ignore[valid-type]
        default=strawberry.UNSET, description="Left out: unchanged; null: all types."
    )
    description: str | None = strawberry.field(default=strawberry.UNSET, description="Left out: unchanged.")
    enabled: bool | None = strawberry.field(
        default=None, description="Enabling clears the reason and the failure count."
    )


@strawberry.input
class DeleteWebhookEndpointInput:
    id: strawberry.ID


@strawberry.input
class RotateWebhookSecretInput:
    id: strawberry.ID


@strawberry.input
class RedeliverWebhookInput:
    delivery_id: strawberry.ID


@strawberry.type
class WebhookSecretPayload:
    endpoint: WebhookEndpoint | None = None
    secret: str | None = strawberry.field(
        default=None, description="The signing secret (whsec_…): shown this once, store it now."
    )
    errors: list[Error]


@strawberry.type
class WebhookEndpointPayload:
    endpoint: WebhookEndpoint | None = None
    errors: list[Error]


@strawberry.type
class DeleteWebhookEndpointPayload:
    deleted_id: strawberry.ID | None = None
    errors: list[Error]


@strawberry.type
class RedeliverWebhookPayload:
    delivery: WebhookDelivery | None = None
    errors: list[Error]


def _types(values: list[EventType] | None) -> list[str] | None:
    return None if values is None else [EventType(v).value for v in values]


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="Operators: the webhook endpoints, oldest first.")
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        ctx = await info.context.read()
        return [WebhookEndpoint.of(row) for row in await endpoints.endpoints(ctx)]

    @strawberry.field(description="Operators: one webhook endpoint.")
    async def webhook_endpoint(self, info: Info, id: strawberry.ID) -> WebhookEndpoint:
        ctx = await info.context.read()
        require_operator(ctx.actor)
        return WebhookEndpoint.of(await endpoints.get(ctx, global_uuid(id, field="id")))


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(description="Operators: a webhook endpoint; the answer holds its secret, once.")
    async def create_webhook_endpoint(
        self, info: Info, input: CreateWebhookEndpointInput
    ) -> WebhookSecretPayload:
        async def work(ctx: Ctx) -> endpoints.WithSecret:
            return await endpoints.create(
                ctx,
                url=input.url,
                event_types=_types(input.event_types),
                description=input.description,
                enabled=input.enabled,
            )

        made, errors = await mutate(info, work)
        if made is None:
            return WebhookSecretPayload(errors=errors)
        return WebhookSecretPayload(endpoint=WebhookEndpoint.of(made.endpoint), secret=made.secret, errors=[])

    @strawberry.mutation(description="Operators: change an endpoint's URL, types, description, or enable it.")
    async def update_webhook_endpoint(
        self, info: Info, input: UpdateWebhookEndpointInput
    ) -> WebhookEndpointPayload:
        async def work(ctx: Ctx) -> models.WebhookEndpoint:
            types = input.event_types
            description = input.description
            return await endpoints.update(
                ctx,
                global_uuid(input.id, field="id"),
                url=input.url,
                event_types=endpoints.KEEP if types is strawberry.UNSET else _types(types),
                description=endpoints.KEEP if description is strawberry.UNSET else description,
                enabled=input.enabled,
            )

        row, errors = await mutate(info, work)
        return WebhookEndpointPayload(endpoint=WebhookEndpoint.of(row) if row else None, errors=errors)

    @strawberry.mutation(description="Operators: delete an endpoint and its delivery log.")
    async def delete_webhook_endpoint(
        self, info: Info, input: DeleteWebhookEndpointInput
    ) -> DeleteWebhookEndpointPayload:
        async def work(ctx: Ctx) -> uuid.UUID:
            return await endpoints.remove(ctx, global_uuid(input.id, field="id"))

        deleted, errors = await mutate(info, work)
        return DeleteWebhookEndpointPayload(
            deleted_id=strawberry.ID(str(deleted)) if deleted else None, errors=errors
        )

    @strawberry.mutation(
        description="Operators: a new signing secret, shown once; the old one also signs for 24 hours."
    )
    async def rotate_webhook_secret(
        self, info: Info, input: RotateWebhookSecretInput
    ) -> WebhookSecretPayload:
        async def work(ctx: Ctx) -> endpoints.WithSecret:
            return await endpoints.rotate_secret(ctx, global_uuid(input.id, field="id"))

        made, errors = await mutate(info, work)
        if made is None:
            return WebhookSecretPayload(errors=errors)
        return WebhookSecretPayload(endpoint=WebhookEndpoint.of(made.endpoint), secret=made.secret, errors=[])

    @strawberry.mutation(description="Operators: send a delivery again, now (one attempt).")
    async def redeliver_webhook(self, info: Info, input: RedeliverWebhookInput) -> RedeliverWebhookPayload:
        async def work(ctx: Ctx) -> WebhookDelivery:
            row = await endpoints.redeliver(ctx, global_uuid(input.delivery_id, field="deliveryId"))
            attempts = await endpoints.attempts(ctx, [row.id])
            return WebhookDelivery.of(row, attempts[row.id])

        delivery, errors = await mutate(info, work)
        return RedeliverWebhookPayload(delivery=delivery, errors=errors)
