"""One structured line per HTTP request: method, path, status and time — never the query string (GET
variables may hold a national ID; image links carry their signature), never a header or the body.

The same place counts the request (``legetime_http_requests_total``; a GraphQL request also by its
operation and outcome, which ``ObservedGraphQL`` leaves in the scope under ``GRAPHQL_SCOPE_KEY``) and,
with tracing on, wraps it in a span: the trace its jobs continue."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from legetime.core.platform import metrics, tracing

log = structlog.get_logger("legetime.http")

GRAPHQL_SCOPE_KEY = "legetime.graphql"
UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})
"""Polled by machines every few seconds: counted, but no trace of their own."""


@dataclass
class GraphQLOutcome:
    """What a GraphQL request over HTTP was, for metrics and traces: its operation's label
    (``metrics.operation_label``) and its outcome (an ``ErrorCode`` value, or ``ok``; None until known)."""

    operation: str
    outcome: str | None = None


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app fails before it starts a response

        async def tracked_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        traced = tracing.active() and scope["path"] not in UNTRACED
        with tracing.span("HTTP", kind="server") if traced else contextlib.nullcontext() as span:
            try:
                await self.app(scope, receive, tracked_send)
            finally:
                seconds = time.perf_counter() - started
                log.info(
                    "http.request",
                    method=scope["method"],
                    path=_route_of(scope),
                    status=status,
                    ms=round(seconds * 1000, 1),
                )
                _observe(scope, span, status, seconds)


def _observe(scope: Scope, span: Any, status: int, seconds: float) -> None:
    route = getattr(scope.get("route"), "path", None)
    metrics.observe_http(str(route) if route else metrics.UNMATCHED_ROUTE, status)
    graphql: GraphQLOutcome | None = scope.get(GRAPHQL_SCOPE_KEY)
    outcome = None
    if graphql is not None:
        outcome = graphql.outcome or ("INTERNAL" if status >= 500 else "BAD_REQUEST")
        metrics.observe_graphql(graphql.operation, outcome, seconds)
    if span is None:
        return
    name = (
        f"GraphQL {graphql.operation}" if graphql is not None else f"{scope['method']} {route or 'unmatched'}"
    )
    span.update_name(name)
    span.set_attribute("http.request.method", scope["method"])
    span.set_attribute("http.route", str(route or metrics.UNMATCHED_ROUTE))
    span.set_attribute("http.response.status_code", status)
    if graphql is not None and outcome is not None:
        span.set_attribute("graphql.operation.name", graphql.operation)
        span.set_attribute("legetime.outcome", outcome)
    if status >= 500:
        tracing.failed(span, outcome or str(status))


def _route_of(scope: Scope) -> str:
    """The route's template where Starlette matched one (``/files/{attachment_id}``), else the path."""
    route = scope.get("route")
    return str(getattr(route, "path", None) or scope["path"])
