"""One structured line per HTTP request: method, path, status and time — never the query string (GET
variables may hold a national ID; image links carry their signature), never a header or the body."""

from __future__ import annotations

import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("legetime.http")


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

        try:
            await self.app(scope, receive, tracked_send)
        finally:
            log.info(
                "http.request",
                method=scope["method"],
                path=_route_of(scope),
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )


def _route_of(scope: Scope) -> str:
    """The route's template where Starlette matched one (``/files/{attachment_id}``), else the path."""
    route = scope.get("route")
    return str(getattr(route, "path", None) or scope["path"])
