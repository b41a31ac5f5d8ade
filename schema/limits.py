"""Request bodies are bounded per route and refused before they are read: a client that announces too much
(``Content-Length``) gets 413 at once, and one that streams more than it may is cut off at the limit.
Nothing beyond the limit is ever held in memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from legetime.core.platform.errors import ErrorCode
from legetime.schema.http import negotiate, refusal


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware; ``limit_of(scope)`` is the most a request to that route may send (bytes)."""

    def __init__(self, app: ASGIApp, limit_of: Callable[[Scope], int]) -> None:
        self.app = app
        self.limit_of = limit_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_of(scope)
        headers = dict(scope.get("headers") or ())
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(scope, receive, send, limit)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        accept = dict(scope.get("headers") or ()).get(b"accept", b"").decode("latin-1")
        message = f"The request body is larger than this address takes ({limit} bytes)."
        response: Any = refusal(ErrorCode.PAYLOAD_TOO_LARGE, message, 413, negotiate(accept))
        response.headers["Connection"] = "close"  # the rest of the body is not read
        await response(scope, receive, send)
