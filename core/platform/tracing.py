"""OpenTelemetry traces, opt-in (docs/operations.md, "Metrics and traces").

On with ``LEGETIME_OTEL_ENABLED=true``, or by default when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; the standard ``OTEL_*`` variables configure the export
(``OTEL_TRACES_EXPORTER=console`` prints the spans instead, ``OTEL_SERVICE_NAME`` names the service).
Off, nothing of OpenTelemetry is imported: every function here is then a cheap no-op.

A trace runs from an HTTP request (``RequestLog``: a span with the route, the status, the GraphQL
operation's name and outcome code) through the jobs it enqueued (``outbox.enqueue`` stores the W3C
``traceparent`` in the job's payload under ``TRACEPARENT_KEY``; the runner's span for the job continues
it) to the provider calls they make (a span per ``httpx`` request: method, host and status). Spans carry
ids and codes only: never a document, variables, a body, a URL's path or query, a name, a national ID or
a phone number; an exception is recorded by its type, not its message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from legetime.core.platform.config import Settings

TRACEPARENT_KEY = "_traceparent"
"""Where a job's payload carries the trace context of the transaction that enqueued it."""
SERVICE_NAME = "legetime"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


class _Tracing:
    def __init__(self, provider: Any) -> None:
        from opentelemetry.trace import SpanKind, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer = provider.get_tracer("legetime")
        self.propagator = TraceContextTextMapPropagator()
        self.kinds = {
            "internal": SpanKind.INTERNAL,
            "server": SpanKind.SERVER,
            "client": SpanKind.CLIENT,
            "consumer": SpanKind.CONSUMER,
        }
        self.error = StatusCode.ERROR


_tracing: _Tracing | None = None


def enabled(settings: Settings) -> bool:
    if settings.otel_enabled is not None:
        return settings.otel_enabled
    return any(os.environ.get(name) for name in ENDPOINT_VARIABLES)


def active() -> bool:
    return _tracing is not None


def configure(settings: Settings, exporter: Any = None) -> bool:
    """Trace this process if the settings say so, or into ``exporter`` (a SpanExporter, for tests: its
    spans are exported as each ends). Returns whether tracing is on. Called again, it keeps what runs."""
    global _tracing
    if exporter is None and (_tracing is not None or not enabled(settings)):
        return _tracing is not None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME})
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        chosen = _exporter()
        if chosen is not None:
            provider.add_span_processor(BatchSpanProcessor(chosen))
    if _tracing is not None:
        _tracing.provider.shutdown()
    _tracing = _Tracing(provider)
    _trace_httpx()
    return True


def _exporter() -> Any:
    kind = (os.environ.get("OTEL_TRACES_EXPORTER") or "otlp").split(",")[0].strip().lower()
    if kind == "none":
        return None
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # OTEL_EXPORTER_OTLP_* (endpoint, headers, timeout) as the standard has them


def disable() -> None:
    """Stop tracing in this process, exporting what is left (shutdown; tests)."""
    global _tracing
    if _tracing is not None:
        tracing, _tracing = _tracing, None
        tracing.provider.shutdown()


@contextmanager
def span(
    name: str,
    *,
    kind: str = "internal",
    traceparent: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """A span around the block, current within it (None when tracing is off); a child of the span
    ``traceparent`` names, else of the current one. An exception marks it failed, by its type only."""
    tracing = _tracing
    if tracing is None:
        yield None
        return
    parent = tracing.propagator.extract({"traceparent": traceparent}) if traceparent else None
    with tracing.tracer.start_as_current_span(
        name,
        context=parent,
        kind=tracing.kinds[kind],
        attributes=attributes,
        record_exception=False,  # its message may quote what a person sent
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_attribute("error.type", type(exc).__name__)
            current.set_status(tracing.error)
            raise


def failed(current: Any, code: str) -> None:
    """Mark a span failed with an error code (a request that answered 5xx, a job that will retry)."""
    if current is not None and _tracing is not None:
        current.set_attribute("error.type", code)
        current.set_status(_tracing.error)


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, if tracing is on and a span is current."""
    tracing = _tracing
    if tracing is None:
        return None
    carrier: dict[str, str] = {}
    tracing.propagator.inject(carrier)
    return carrier.get("traceparent")


def _trace_httpx() -> None:
    """A client span around every request an ``httpx.AsyncClient`` sends (the providers' calls): the
    method, the host and the status; not the path or the query, which may name a payment or a person."""
    import httpx

    send = httpx.AsyncClient.send
    if getattr(send, "legetime_traced", False):
        return

    async def traced_send(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if _tracing is None:
            return await send(self, request, **kwargs)
        attributes = {"http.request.method": request.method, "server.address": request.url.host}
        with span(f"HTTP {request.method}", kind="client", attributes=attributes) as current:
            response = await send(self, request, **kwargs)
            current.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                failed(current, str(response.status_code))
            return response

    traced_send.legetime_traced = True  # type: ignore[attr-defined]
    httpx.AsyncClient.send = traced_send  # type: ignore[method-assign]
