"""The operators' playground: GraphiQL at ``/graphql`` (a GET that accepts HTML), served entirely by the
platform, with a BankID login panel and the saved operations (docs/operations.md, "The playground").

- The page is ours (``page``): no inline script, no third-party origin. Its scripts are the vendored
  GraphiQL builds (schema/static/graphiql/, pinned and verified by ``tools/vendor_graphiql.py``, loaded
  with their ``integrity``) and ``playground.js``; its policy is ``headers.GRAPHIQL_CSP``.
- The assets (``ide_routes``) live under ``/graphql/ide/``: the vendored files in versioned folders, ours
  with their content hash in the address, so all of them may be cached for a year. ``examples.json`` is
  ``playground_examples``, the same source the README's walkthrough is written from.
- The login panel keeps the session token in ``sessionStorage`` (this tab only) and sends it with every
  operation and in the socket's ``connection_init``. In production it is for staff: a login without a staff
  role is logged out again at once. The page holds no data and every operation is authorized by its token
  on the server, so the page itself needs no rule beyond being off unless ``LEGETIME_GRAPHIQL=true``.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from html import escape
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from legetime.core.platform.config import Settings
from legetime.schema.headers import GRAPHIQL_CSP
from legetime.schema.playground_examples import EXAMPLES

STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "/graphql/ide"
LONG_CACHE = "public, max-age=31536000, immutable"
PAGE_HEADERS = {
    "Content-Security-Policy": GRAPHIQL_CSP,
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}
SCRIPTS = (
    ("react", "react.production.min.js"),
    ("react-dom", "react-dom.production.min.js"),
    ("graphiql", "graphiql.min.js"),
    ("@graphiql/plugin-explorer", "index.umd.js"),
)
STYLES = (("graphiql", "graphiql.min.css"), ("@graphiql/plugin-explorer", "style.css"))
OWN_SCRIPT, OWN_STYLE = "playground/playground.js", "playground/playground.css"


@cache
def manifest() -> dict[str, Any]:
    """The vendored builds: package → version, folder, file → integrity (schema/static/graphiql/)."""
    loaded: dict[str, Any] = json.loads((STATIC / "graphiql" / "manifest.json").read_text())
    return loaded


@cache
def _own_version(path: str) -> str:
    return hashlib.sha256((STATIC / path).read_bytes()).hexdigest()[:16]


def _vendored(root: str, package: str, name: str) -> tuple[str, str]:
    entry = manifest()[package]
    return f"{root}{PREFIX}/graphiql/{entry['directory']}/{name}", entry["files"][name]


def page(settings: Settings, root_path: str = "") -> str:
    """The playground's HTML: links and data attributes only; everything that runs is a file."""
    styles = [
        f'<link rel="stylesheet" href="{href}" integrity="{sri}">'
        for href, sri in (_vendored(root_path, package, name) for package, name in STYLES)
    ]
    styles.append(
        f'<link rel="stylesheet" href="{root_path}{PREFIX}/{OWN_STYLE}?v={_own_version(OWN_STYLE)}">'
    )
    scripts = [
        f'<script src="{src}" integrity="{sri}"></script>'
        for src, sri in (_vendored(root_path, package, name) for package, name in SCRIPTS)
    ]
    scripts.append(f'<script src="{root_path}{PREFIX}/{OWN_SCRIPT}?v={_own_version(OWN_SCRIPT)}"></script>')
    data = {
        "endpoint": f"{root_path}/graphql",
        "examples": f"{root_path}{PREFIX}/examples.json",
        "staff-only": "true" if settings.is_production else "false",
        "environment": settings.environment.value,
    }
    attributes = " ".join(f'data-{name}="{escape(value)}"' for name, value in data.items())
    newline = "\n    "
    return f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta name="referrer" content="no-referrer">
    <title>Legetime · GraphiQL</title>
    <link rel="icon" href="data:,">
    {newline.join(styles)}
  </head>
  <body {attributes}>
    <header class="lt-bar">
      <strong class="lt-brand">Legetime</strong>
      <form id="lt-login" class="lt-login" autocomplete="off" hidden>
        <label for="lt-national-id">National ID</label>
        <input id="lt-national-id" name="nationalId" inputmode="numeric" maxlength="12"
          placeholder="11 digits">
        <button type="submit" id="lt-login-button">Log in with BankID</button>
        <button type="button" id="lt-cancel" hidden>Cancel</button>
      </form>
      <div id="lt-session" class="lt-session" hidden>
        <span id="lt-who"></span>
        <button type="button" id="lt-logout">Log out</button>
      </div>
      <span id="lt-status" class="lt-status" role="status" aria-live="polite"></span>
    </header>
    <main id="graphiql" class="lt-graphiql">Loading…</main>
    {newline.join(scripts)}
  </body>
</html>
"""


def page_response(settings: Settings, root_path: str = "") -> HTMLResponse:
    return HTMLResponse(page(settings, root_path), headers=PAGE_HEADERS)


class Assets(StaticFiles):
    """The vendored and our own files, cached for a year: every address names its version or hash."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = LONG_CACHE
        return response

    async def get_response(self, path: str, scope: Scope) -> Response:
        if Path(path).suffix not in (".js", ".css", ".json", ".md", "") or Path(path).name.startswith("."):
            return Response("Not found", status_code=404, media_type="text/plain")
        return await super().get_response(path, scope)


async def examples(request: Request) -> JSONResponse:
    return JSONResponse([example.as_json() for example in EXAMPLES], headers={"Cache-Control": "no-cache"})


def ide_routes(settings: Settings) -> list[BaseRoute]:
    """The playground's assets and examples; none when GraphiQL is off."""
    if not settings.graphiql:
        return []
    return [
        Route(f"{PREFIX}/examples.json", examples, methods=["GET"]),
        Mount(PREFIX, app=Assets(directory=STATIC), name="graphiql-assets"),
    ]
