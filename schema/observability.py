"""What operators observe of the API: ``/metrics`` (Prometheus) and the operation and outcome of each
GraphQL request, which ``RequestLog`` counts and puts on the request's span.

The operation is the ``operationName`` the client sent, bounded (``metrics.operation_label``): a name
of the client's choosing, so at most 64 characters of a GraphQL name, at most ``MAX_OPERATIONS`` distinct
ones per process, anything else ``other``; ``anonymous`` without one. (The root fields would be bounded
by the schema, but a document names several and costs a parse to read; the name is what clients' own
dashboards and logs already use.) The outcome is the code of the first top-level error, else the code of
a mutation's first typed error (``errors { code }``, when the client asked for the code), else ``ok``.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from strawberry.http import GraphQLRequestData
from strawberry.types import ExecutionResult

from legetime.core.consultation.overdue import AWAITING_ANSWER
from legetime.core.platform import metrics
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.errors import ErrorCode
from legetime.core.platform.runtime import Platform
from legetime.schema.errors import code_of
from legetime.schema.http import LegetimeGraphQL
from legetime.schema.request_log import GRAPHQL_SCOPE_KEY, GraphQLOutcome

OK = metrics.OK
_CODES = frozenset(code.value for code in ErrorCode)
_BY_STATUS = {413: ErrorCode.PAYLOAD_TOO_LARGE.value, 503: ErrorCode.UNAVAILABLE.value}


class ObservedGraphQL(LegetimeGraphQL):
    """The GraphQL endpoint, leaving each HTTP request's operation and outcome in its scope."""

    async def execute_single(
        self,
        request: Any,
        request_adapter: Any,
        sub_response: Any,
        context: Any,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        observed = GraphQLOutcome(metrics.operation_label(request_data.operation_name))
        request.scope[GRAPHQL_SCOPE_KEY] = observed
        result = await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )
        observed.outcome = outcome_of(result)
        return result

    async def run(self, request: Any, context: Any = None, root_value: Any = None) -> Any:
        response = await super().run(request, context, root_value)
        if isinstance(request, Request) and request.scope["type"] == "http" and response.status_code >= 400:
            # Refused before or around running it (a body that is not JSON, too large, the database away).
            observed = request.scope.setdefault(GRAPHQL_SCOPE_KEY, GraphQLOutcome(metrics.ANONYMOUS))
            if observed.outcome is None:
                observed.outcome = _refusal_code(response)
        return response


def outcome_of(result: ExecutionResult) -> str:
    for error in result.errors or ():
        code = code_of(error)
        return code.value if code is not None else ErrorCode.INTERNAL.value
    if isinstance(result.data, dict):
        for payload in result.data.values():
            errors = payload.get("errors") if isinstance(payload, dict) else None
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                code = errors[0].get("code")
                if code in _CODES:
                    return str(code)
    return OK


def _refusal_code(response: Response) -> str:
    try:
        code = json.loads(bytes(response.body))["errors"][0]["extensions"]["code"]
    except (ValueError, LookupError, TypeError):
        code = None
    if code in _CODES:
        return str(code)
    return _BY_STATUS.get(response.status_code, ErrorCode.BAD_REQUEST.value)


def metrics_endpoint(platform: Platform) -> Any:
    """``GET /metrics``: the text exposition. With ``LEGETIME_METRICS_TOKEN`` it needs that bearer token
    (compared in constant time); without one it is open in development and absent (404) in production."""
    settings = platform.settings
    token = settings.metrics_token.get_secret_value().encode() if settings.metrics_token else None

    async def read() -> list[Any]:
        async with platform.db.read_sessions() as session:
            return await metrics.database_gauges(session, AWAITING_ANSWER, utcnow())

    gauges = metrics.ScrapeGauges(read)

    async def endpoint(request: Request) -> Response:
        if token is None and settings.is_production:
            return Response("Not Found", status_code=404, media_type="text/plain")
        if token is not None:
            sent = request.headers.get("authorization", "")
            scheme, _, given = sent.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token):
                return Response(
                    "Unauthorized",
                    status_code=401,
                    media_type="text/plain",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        body, content_type = metrics.exposition(await gauges.families())
        return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})

    return endpoint
