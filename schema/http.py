"""GraphQL over HTTP, as the GraphQL-over-HTTP spec has it: what a request must look like, and what the
answer says when it does not.

- A POST body is one JSON object (batching is off): ``null``, a number, a string, invalid UTF-8 or JSON
  nested too deep is a 400 with ``errors[].extensions.code = BAD_REQUEST``, never a 500.
- ``application/graphql-response+json`` when the client accepts it (GraphiQL and current clients do):
  a request that fails before running (parse, validation, variables) answers 400 without a ``data``
  entry; ``application/json`` for older clients, 200 as before.
- A database that is down for a moment answers 503 with ``Retry-After`` and the code ``UNAVAILABLE``,
  never the driver's text.
- Every refusal, at any stage, is JSON with a code from ``ErrorCode``.
- The request's read session commits before the answer is sent (its access-log entries with it).
- Automatic persisted queries (``extensions.persistedQuery``, ``legetime.schema.persisted_queries``): an
  unknown hash is ``PERSISTED_QUERY_NOT_FOUND`` (200, as clients expect, to send the document); a document
  whose SHA-256 is not the hash sent with it is a 400 ``BAD_REQUEST``; a document over its client's
  registration limit runs all the same, and is not kept.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import structlog
from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from legetime.core.identity.auth import authenticate
from legetime.core.platform.db.engine import is_unavailable
from legetime.core.platform.errors import ErrorCode
from legetime.core.platform.rate_limits import PERSISTED_QUERY_REGISTER
from legetime.core.platform.runtime import Platform
from legetime.schema.build import build_schema
from legetime.schema.context import Context
from legetime.schema.errors import CLIENT_ERRORS, UNAVAILABLE_MESSAGE
from legetime.schema.json_encoding import encode as encode_json_answer
from legetime.schema.live_sockets import LiveSocketHandler, LiveSockets
from legetime.schema.persisted_queries import (
    PersistedQueries,
    not_found,
    registration_cost,
    requested_hash,
    sha256,
)
from legetime.schema.playground import page_response

CONNECTION_INIT_WAIT = timedelta(seconds=10)
"""How long a socket may stay open without logging in (``connection_init``)."""
MAX_SUBSCRIPTIONS_PER_CONNECTION = 10

log = structlog.get_logger(__name__)

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
RETRY_AFTER_SECONDS = 5


def negotiate(accept: str) -> str:
    """The media type of the answer: graphql-response+json when the client accepts it at least as much as
    JSON (the spec's preference), else JSON (also for no Accept header, as legacy clients send)."""
    quality: dict[str, float] = {}
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[media.strip().lower()] = max(q, quality.get(media.strip().lower(), 0.0))
    graphql = quality.get(GRAPHQL_RESPONSE, 0.0)
    json_ = max(quality.get(JSON, 0.0), quality.get("*/*", 0.0), quality.get("application/*", 0.0))
    return GRAPHQL_RESPONSE if graphql > 0 and graphql >= json_ else JSON


def refusal(code: ErrorCode, message: str, status: int, media_type: str = JSON) -> Response:
    """A request refused before it ran: JSON with the code, no ``data`` entry."""
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if code is ErrorCode.UNAVAILABLE else None
    body = {"errors": [{"message": message, "extensions": {"code": code.value, "field": None}}]}
    return JSONResponse(body, status_code=status, media_type=media_type, headers=headers)


def _json_object(body: bytes | str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # ValueError covers bad JSON and bad UTF-8
        raise HTTPException(400, "The request body is not valid JSON (UTF-8).") from None
    if not isinstance(value, dict):
        raise HTTPException(400, "The request body must be one JSON object (batching is not enabled).")
    return value


class LegetimeGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = LiveSocketHandler  # who holds which socket, and closing them

    def __init__(self, platform: Platform) -> None:
        self.documents = (schema := build_schema(platform)).documents
        super().__init__(
            schema,
            graphql_ide="graphiql" if platform.settings.graphiql else None,
            allow_queries_via_get=True,
            multipart_uploads_enabled=True,  # attachImage; bearer tokens, not cookies: no CSRF exposure
            # Subscriptions: graphql-transport-ws only (the legacy graphql-ws protocol ran operations
            # without connection_init: CVE-2026-35523), a login within CONNECTION_INIT_WAIT, and at most
            # MAX_SUBSCRIPTIONS_PER_CONNECTION operations on a socket (CVE-2026-35526). Sessions, idle
            # sockets and connections per person: ``live_sockets``.
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=CONNECTION_INIT_WAIT,
            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
        )
        self.platform = platform
        self.sockets = LiveSockets(platform)
        settings = platform.settings
        self.persisted_queries = PersistedQueries(
            settings.redis_url, prefix=f"{settings.queue_namespace}:persisted-query"
        )

    async def render_graphql_ide(self, request: Any) -> Response:
        # Our own page (``playground``): self-hosted assets, a strict CSP, the login panel, the examples.
        return page_response(self.platform.settings, request.scope.get("root_path", ""))

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET naming a persisted query by its hash (no ``query``) asks for an answer, not for the IDE.
        return "extensions" not in request.query_params and super().should_render_graphql_ide(request)

    async def on_ws_connect(self, context: Context) -> None:
        """A socket is accepted only with a valid session token in ``connection_init``: the payload
        ``{"Authorization": "Bearer <token>"}``. Anything else closes it (4403)."""
        params = context.connection_params or {}
        raw = params.get("Authorization") or params.get("authorization") or ""
        token = raw.removeprefix("Bearer ").strip() if isinstance(raw, str) else ""
        async with self.platform.db.read_sessions() as session:
            actor = await authenticate(session, self.platform, token or None)
        if actor.person_id is None:
            raise ConnectionRejectionError()
        context.actor, context.token = actor, token

    async def get_context(self, request: Any, response: Any = None) -> Context:
        context = await Context.create(self.platform, request, response)
        request.scope.setdefault("state", {})["legetime_context"] = context
        return context

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except BaseException:
            await _close_context(scope, failed=True)
            raise
        await _close_context(scope, failed=False)

    async def run(self, request: Any, context: Any = None, root_value: Any = None) -> Any:
        if not isinstance(request, Request) or request.scope["type"] != "http":
            return await super().run(request)
        media_type = negotiate(request.headers.get("accept", ""))
        try:
            response = await super().run(request)
            # Commit the request's reads, and their access-log entries, before anything is sent: an
            # answer that could not be logged is never sent (a failed commit is a 503 or a 500).
            await _close_context(request.scope, failed=False)
            return response
        except HTTPException as exc:
            code = ErrorCode.PAYLOAD_TOO_LARGE if exc.status_code == 413 else ErrorCode.BAD_REQUEST
            return refusal(code, exc.reason, exc.status_code, media_type)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("graphql.database_unavailable", error=type(exc).__name__)
            return refusal(ErrorCode.UNAVAILABLE, UNAVAILABLE_MESSAGE, 503, media_type)

    def parse_json(self, data: str | bytes) -> Any:
        # GET parameters (``variables``, ``extensions``) come through here too.
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            raise HTTPException(400, "A parameter is not valid JSON.") from None

    async def parse_http_body(self, request: Any) -> GraphQLRequestData | list[GraphQLRequestData]:
        content_type, _ = parse_content_type(request.content_type or "")
        if request.method == "POST" and content_type in (JSON, GRAPHQL_RESPONSE):
            data = _json_object(await request.get_body())
            for name, kinds in (
                ("query", (str, type(None))),
                ("operationName", (str, type(None))),
                ("variables", (dict, type(None))),
                ("extensions", (dict, type(None))),
            ):
                if not isinstance(data.get(name), kinds):
                    expected = "a string" if str in kinds else "an object"
                    raise HTTPException(400, f"`{name}` must be {expected} or null.")
            return GraphQLRequestData(
                query=data.get("query"),
                variables=data.get("variables"),
                operation_name=data.get("operationName"),
                extensions=data.get("extensions"),
                protocol="http",
            )
        return await super().parse_http_body(request)

    async def execute_single(
        self,
        request: Any,
        request_adapter: Any,
        sub_response: Any,
        context: Any,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Runs the operation; one sent by its hash as if its text had been sent (see the module)."""
        digest = requested_hash(request_data.extensions)
        register = False
        if digest is not None:
            if request_data.query is None:
                request_data.query = await self.persisted_queries.get(digest)
                if request_data.query is None:
                    return ExecutionResult(data=None, errors=[not_found()])
            elif sha256(request_data.query) != digest:
                raise HTTPException(400, "The document's SHA-256 is not the `sha256Hash` sent with it.")
            else:
                register = not self.persisted_queries.knows(digest)
        result = await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )
        query = request_data.query
        if register and digest is not None and query is not None:
            await self._register(digest, query, context)
        return result

    async def _register(self, digest: str, query: str, context: Context) -> None:
        """Keep a document under its hash once it parsed and passed validation, and when its client is
        within its registration limit (over it, the answer it already has stands; it is not kept)."""
        persisted = self.persisted_queries
        if not persisted.would_keep(digest, query) or not self.documents.is_valid(query):
            return
        cost = registration_cost(query)
        if not await self.platform.rate_limits.allows(PERSISTED_QUERY_REGISTER, context.client, cost):
            limit = self.platform.settings.persisted_query_rate_limit
            log.info(
                "persisted_query.rate_limited",
                rule=PERSISTED_QUERY_REGISTER,
                limit=limit,
                cost=cost,
                hash=digest,
            )
            return
        await persisted.put(digest, query)

    async def get_sub_response(self, request: Any) -> Any:
        sub_response: Any = await super().get_sub_response(request)
        sub_response.legetime_media_type = negotiate(request.headers.get("accept", ""))
        return sub_response

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Any
    ) -> Response:
        media_type = getattr(sub_response, "legetime_media_type", JSON)
        status = 200
        if isinstance(response_data, dict):
            errors: list[Any] = list(response_data.get("errors") or ())
            codes = {(error.get("extensions") or {}).get("code") for error in errors}
            if ErrorCode.UNAVAILABLE.value in codes:
                status = 503
                sub_response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            elif ErrorCode.PERSISTED_QUERY_NOT_FOUND.value in codes:
                # Not run; a 200 all the same: clients send the document then (some give up on a 4xx).
                response_data.pop("data", None)
            elif response_data.get("data") is None and codes and codes <= {c.value for c in CLIENT_ERRORS}:
                # It never ran: the spec's answer has no ``data`` entry (and is a 400 in the new media type).
                response_data.pop("data", None)
                status = 400 if media_type == GRAPHQL_RESPONSE else 200
        # strawberry's own response, with the body written by orjson (the same bytes, ``json_encoding``)
        response = Response(
            encode_json_answer(response_data), status_code=sub_response.status_code or status, media_type=JSON
        )
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        response.media_type = media_type
        response.headers["content-type"] = f"{media_type}; charset=utf-8"
        return response


async def _close_context(scope: Any, *, failed: bool) -> None:
    context = scope.get("state", {}).pop("legetime_context", None)
    if context is not None:
        await context.close(failed=failed)
