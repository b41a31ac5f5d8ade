"""Headers every answer carries, and what a browser on another origin may do.

- An API answer is data, never a page: ``nosniff``, no referrer, no framing, and a CSP that lets it
  load nothing. The GraphiQL page gets its own CSP: its scripts by address and hash, nothing inline but
  those, no framing (``graphiql_csp``).
- CORS: only the origins in ``LEGETIME_CORS_ORIGINS`` (the frontends) may call the API from a browser;
  in development also any page on this machine (a frontend dev server on localhost:3000).
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from legetime.core.platform.config import Settings

API_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
    b"content-security-policy": b"default-src 'none'; frame-ancestors 'none'",
}
LOCAL_ORIGINS = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?"
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
_SCRIPT_SOURCES = re.compile(r"<(?:script|link)[^>]*\b(?:src|href)=\"(https://[^/\"]+)/", re.I)


class SecurityHeaders:
    """Adds ``API_HEADERS`` to every HTTP answer that does not set them itself (the GraphiQL page does)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in API_HEADERS.items() if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


def cors(settings: Settings) -> Middleware:
    return Middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_origin_regex=None if settings.is_production else LOCAL_ORIGINS,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "Accept"],
        allow_credentials=False,  # bearer tokens, never cookies
        max_age=600,
    )


@lru_cache(maxsize=4)
def graphiql_csp(html: str) -> str:
    """The page's own scripts by hash, its CDN by address: nothing else runs, nothing frames it."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    hosts = " ".join(sorted(set(_SCRIPT_SOURCES.findall(html))))
    return (
        f"default-src 'none'; script-src {hashes} {hosts}; style-src 'unsafe-inline' {hosts}; "
        f"font-src data: {hosts}; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
