"""Headers every answer carries, and what a browser on another origin may do.

- An API answer is data, never a page: ``nosniff``, no referrer, no framing, and a CSP that lets it
  load nothing. The GraphiQL page (``legetime.schema.playground``) gets its own CSP, ``GRAPHIQL_CSP``:
  scripts, styles and connections from this origin only (its own assets, the API and its websocket),
  nothing inline but one hashed style, no third-party origin, no framing.
- CORS: only the origins in ``LEGETIME_CORS_ORIGINS`` (the frontends) may call the API from a browser;
  in development also any page on this machine (a frontend dev server on localhost:3000).
"""

from __future__ import annotations

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


_DIALOG_SCROLL_LOCK_STYLE = "sha256-Y/huXlwoYkVyQlxwSVcCi1RCDGDCSVBzDt0hYP9qlTc="
GRAPHIQL_CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",  # the vendored builds and playground.js; the page has no inline script
        # Stylesheets from this origin; React and CodeMirror set styles through the CSSOM, which CSP allows.
        # No 'unsafe-inline': the one inline <style> GraphiQL adds (react-remove-scroll-bar's, while a
        # dialog is open; the same text on this page, whose body does not scroll) is allowed by its hash.
        f"style-src 'self' '{_DIALOG_SCROLL_LOCK_STYLE}'",
        "connect-src 'self'",  # the API; CSP Level 3 'self' also matches ws:/wss: of this host and port
        "img-src 'self' data:",
        "font-src 'self' data:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    )
)
"""The playground's policy: nothing but this origin, nothing inline, nothing framing it."""
