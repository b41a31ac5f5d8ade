"""The ASGI app: GraphQL at /graphql (GraphiQL in development), /healthz, /readyz, /metrics, plugin routes.

Without Redis, jobs run in this process (dramatiq's in-process broker and worker threads, plus the
outbox relay), so the embedded default is one command.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from legetime.core.consultation.sms_delivery import receive_delivery_report
from legetime.core.consultation.submission import receive_payment_webhook
from legetime.core.platform import metrics, tracing
from legetime.core.platform.errors import NotFound
from legetime.core.platform.jobs.runner import JobRunner
from legetime.core.platform.runtime import Platform
from legetime.core.platform.runtime_settings import follow_changes
from legetime.core.platform.webhooks import WebhookOutcome
from legetime.schema.appointment_payment_api import invoice_document_route
from legetime.schema.case_api import MAX_UPLOAD_BYTES
from legetime.schema.headers import SecurityHeaders, cors
from legetime.schema.limits import BodyLimit
from legetime.schema.observability import ObservedGraphQL, metrics_endpoint
from legetime.schema.playground import ide_routes
from legetime.schema.request_log import RequestLog

log = structlog.get_logger(__name__)


def create_app(platform: Platform, *, run_jobs_in_process: bool | None = None) -> Starlette:
    in_process = not platform.settings.redis_url if run_jobs_in_process is None else run_jobs_in_process
    metrics.configure(platform.settings)  # multiprocess mode before anything is counted
    tracing.configure(platform.settings)  # opt-in: nothing of OpenTelemetry is imported when off
    runner = JobRunner(platform)
    graphql = ObservedGraphQL(platform)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            await platform.db.ping()
            checks["database"] = "ok"
        except Exception as exc:
            log.warning("readyz.database", error=type(exc).__name__)
            checks["database"] = "unreachable"
        if platform.settings.redis_url:
            checks["broker"] = await _ping_redis(platform.settings.redis_url)
        else:
            checks["broker"] = "in-process"
        ready = all(value in ("ok", "in-process") for value in checks.values())
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", **checks}, status_code=200 if ready else 503
        )

    async def file(request: Request) -> Response:
        """An attached image behind a signed URL, opened (decrypted) for the holder of the link."""
        from legetime.core.consultation.attachments import open_signed

        try:
            async with platform.db.transaction() as session:
                data, content_type = await open_signed(
                    session,
                    platform,
                    request.path_params["attachment_id"],
                    request.query_params.get("expires", ""),
                    request.query_params.get("signature", ""),
                )
        except NotFound:
            return Response("Not found", status_code=404)
        headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
        return Response(data, media_type=content_type, headers=headers)

    async def payment_webhook(request: Request) -> Response:
        """A provider says a payment changed (see ``submission.receive_payment_webhook``). Every provider
        sends JSON: anything else is refused before its body is read."""
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            return Response(status_code=415)
        outcome = await receive_payment_webhook(
            platform, request.path_params["provider"], request.headers, await request.body(), str(request.url)
        )
        status = {WebhookOutcome.ACCEPTED: 204, WebhookOutcome.UNKNOWN_PROVIDER: 404}
        return Response(status_code=status.get(outcome, 400))

    async def sms_report(request: Request) -> Response:
        """A provider's network reports on a text (``sms_delivery.receive_delivery_report``). Providers
        post JSON or form bodies; the provider verifies it. Unknown messages are acknowledged (2xx), so
        that the network does not retry them for days."""
        outcome = await receive_delivery_report(
            platform, request.path_params["provider"], request.headers, await request.body()
        )
        status = {WebhookOutcome.ACCEPTED: 204, WebhookOutcome.UNKNOWN_PROVIDER: 404}
        return Response(status_code=status.get(outcome, 400))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await platform.start()
        stop_following = await follow_changes(platform)  # operators' settings changes, from any process
        if in_process:
            runner.start_workers(threads=2)
            runner.start_scheduler()
        elif platform.settings.redis_url:
            # The workers poll the outbox; this process relays its own commits at once.
            runner.start_relay(poll=False)
        try:
            yield
        finally:
            stop_following()
            await graphql.sockets.stop()
            await graphql.persisted_queries.close()  # its Redis connections
            await runner.stop_scheduler()  # and the relay
            runner.stop()
            await platform.close()

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint(platform), methods=["GET"]),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),  # subscriptions (graphql-transport-ws)
        *ide_routes(platform.settings),  # GraphiQL's own assets and examples (legetime.schema.playground)
        Route("/files/{attachment_id}", file),
        invoice_document_route(platform),  # an invoice's PDF behind its signed URL
        Route("/webhooks/payments/{provider}", payment_webhook, methods=["POST"]),
        Route("/webhooks/sms/{provider}", sms_report, methods=["POST"]),
        *platform.hooks.routes(),
    ]

    def body_limit(scope: Any) -> int:
        content_type = dict(scope.get("headers") or ()).get(b"content-type", b"")
        upload = scope["path"] == "/graphql" and content_type.startswith(b"multipart/form-data")
        # Room for an image somewhat over its limit, so that one is told IMAGE_TOO_LARGE by attachImage;
        # a body beyond that is refused unread (413).
        return platform.settings.max_body_bytes + (2 * MAX_UPLOAD_BYTES if upload else 0)

    middleware = [
        Middleware(RequestLog),
        Middleware(SecurityHeaders),
        cors(platform.settings),
        Middleware(BodyLimit, limit_of=body_limit),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
    app.state.platform = platform
    app.state.jobs = runner
    return app


async def _ping_redis(url: str) -> str:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
        return "ok"
    except Exception:
        return "unreachable"
    finally:
        await client.aclose()
