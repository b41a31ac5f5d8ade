"""Prometheus metrics, scraped at ``/metrics`` (docs/operations.md, "Metrics and traces").

Counted where they happen, in every process:

- ``legetime_http_requests_total{route, status}``: HTTP requests by route template and status;
- ``legetime_graphql_requests_total{operation, outcome}`` and ``legetime_graphql_request_duration_seconds
  {operation}``: GraphQL requests over HTTP by operation name (bounded: ``operation_label``) and outcome
  (an ``ErrorCode`` or ``ok``);
- ``legetime_jobs_total{job, state}`` and ``legetime_job_duration_seconds{job}``: outbox jobs run, by
  name and what became of the attempt (``done``, ``retry``, ``failed``);
- ``legetime_rate_limited_total{rule}``: requests over a per-client limit, by rule (``rate_limits``:
  ``login.start``, ``persisted_query.register``, ...).

Computed from the database when scraped, by the process that answers, at most once per
``CACHE_SECONDS`` (``ScrapeGauges``): the relay's lag, the outbox, SMS attempts, payments, open and
overdue cases. They are never written to the multiprocess files, so they are not counted once per process.

Labels hold only what the code defines (routes, job names, error codes, statuses, provider names) and the
operation name a client chooses, bounded; never an id, a name, a national ID or a phone number.

``prometheus_client`` is imported on first use. Its multiprocess mode is chosen when it is imported, from
``PROMETHEUS_MULTIPROC_DIR``: ``configure`` sets that from ``LEGETIME_METRICS_DIR`` before then.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.platform.db.models import Case, OutboxJob, OutboxStatus, PaymentReservation, SmsAttempt

if TYPE_CHECKING:
    from legetime.core.platform.config import Settings

log = structlog.get_logger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CACHE_SECONDS = 10.0
"""How long the database gauges of one scrape are reused by the next ones."""
MAX_OPERATIONS = 200
"""Distinct operation names one process labels; any later new name is counted as ``other``."""
ANONYMOUS = "anonymous"
OTHER = "other"
OK = "ok"
UNKNOWN_JOB = "unknown"
UNMATCHED_ROUTE = "unmatched"

_OPERATION_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")
"""A GraphQL name of at most 64 characters."""
_DIGITS = re.compile(r"[0-9]{5}")
"""A run of five digits could be part of a national ID or a phone number: such a name is ``other``."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)

_operations: set[str] = set()
_operations_lock = threading.Lock()


def operation_label(name: object) -> str:
    """The label of an operation name a client sent: the name itself if it is a GraphQL name of at most
    64 characters without a run of five digits, and one of the first ``MAX_OPERATIONS`` this process has
    seen; ``anonymous`` without a name; ``other`` for anything else."""
    if not isinstance(name, str) or not name:
        return ANONYMOUS
    if not _OPERATION_NAME.fullmatch(name) or _DIGITS.search(name):
        return OTHER
    if name in _operations:
        return name
    with _operations_lock:
        if len(_operations) >= MAX_OPERATIONS:
            return OTHER
        _operations.add(name)
    return name


# --- configuration and the supervisor ----------------------------------------------------------------


def configure(settings: Settings) -> None:
    """Multiprocess mode for this process when ``LEGETIME_METRICS_DIR`` is set (call before anything is
    counted; ``PROMETHEUS_MULTIPROC_DIR`` set by the operator is honoured as it is)."""
    if settings.metrics_dir is not None and not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = str(settings.metrics_dir.resolve())
    directory = multiprocess_dir()
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def remove_ended_processes(directory: Path) -> int:
    """Delete the files of processes no longer running (a previous run's), keeping those of live ones (a
    ``legetime worker`` sharing the directory). Prometheus asks for the directory to be emptied before a
    start; this is that, for a directory several commands share. Returns how many files it deleted."""
    removed = 0
    for path in directory.glob("*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and _alive(int(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_process_dead(pid: int) -> None:
    """What prometheus_client asks of a supervisor when a process ends (its live gauges go)."""
    directory = multiprocess_dir()
    if directory is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(directory))


# --- counted where it happens --------------------------------------------------------------------------


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram, disable_created_metrics

        disable_created_metrics()  # the ``_created`` series: one more per label set, of no use here
        self.http_requests = Counter(
            "legetime_http_requests", "HTTP requests by route template and status.", ["route", "status"]
        )
        self.graphql_requests = Counter(
            "legetime_graphql_requests",
            "GraphQL requests over HTTP by operation name and outcome (an ErrorCode, or ok).",
            ["operation", "outcome"],
        )
        self.graphql_seconds = Histogram(
            "legetime_graphql_request_duration_seconds",
            "Time to answer a GraphQL request over HTTP, by operation name.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
        )
        self.jobs = Counter(
            "legetime_jobs",
            "Outbox job attempts by job name and result (done, retry, failed).",
            ["job", "state"],
        )
        self.job_seconds = Histogram(
            "legetime_job_duration_seconds",
            "Time a job's handler ran, by job name.",
            ["job"],
            buckets=JOB_BUCKETS,
        )
        self.rate_limited = Counter(
            "legetime_rate_limited", "Requests over a per-client rate limit, by rule.", ["rule"]
        )


_defined: _Metrics | None = None
_defining = threading.Lock()


def _metrics() -> _Metrics:
    """The metrics, defined once per process on first use (by whichever thread counts first)."""
    global _defined
    if _defined is None:
        with _defining:
            if _defined is None:
                _defined = _Metrics()
    return _defined


def observe_http(route: str, status: int) -> None:
    _metrics().http_requests.labels(route, str(status)).inc()


def observe_graphql(operation: str, outcome: str, seconds: float) -> None:
    metrics = _metrics()
    metrics.graphql_requests.labels(operation, outcome).inc()
    metrics.graphql_seconds.labels(operation).observe(seconds)


def observe_job(job: str, state: str, seconds: float) -> None:
    metrics = _metrics()
    metrics.jobs.labels(job, state).inc()
    metrics.job_seconds.labels(job).observe(seconds)


def observe_rate_limited(rule: str) -> None:
    _metrics().rate_limited.labels(rule).inc()


# --- computed when scraped ------------------------------------------------------------------------------


async def database_gauges(session: AsyncSession, open_statuses: Collection[Any], now: datetime) -> list[Any]:
    """The gauges read from the database: one short query each, over indexed columns where it matters."""
    from prometheus_client.core import GaugeMetricFamily

    families: list[Any] = []

    outbox = GaugeMetricFamily(
        "legetime_outbox_jobs", "Outbox jobs waiting, handed out, or failed for good.", labels=["status"]
    )
    waiting = (OutboxStatus.PENDING, OutboxStatus.RELAYED, OutboxStatus.FAILED)
    counts = dict(
        (
            await session.execute(
                select(OutboxJob.status, func.count())
                .where(OutboxJob.status.in_(waiting))
                .group_by(OutboxJob.status)
            )
        ).all()
    )
    for status in waiting:
        outbox.add_metric([status.value], counts.get(status, 0))
    families.append(outbox)

    oldest = await session.scalar(
        select(func.min(OutboxJob.available_at)).where(
            OutboxJob.status == OutboxStatus.PENDING, OutboxJob.available_at <= now
        )
    )
    lag = GaugeMetricFamily(
        "legetime_outbox_relay_lag_seconds",
        "Age of the oldest due job the relay has not handed out yet (0: none waits).",
        value=max(0.0, (now - _aware(oldest)).total_seconds()) if oldest is not None else 0.0,
    )
    families.append(lag)

    families.append(
        _grouped(
            "legetime_sms_attempts",
            "SMS hand-overs to a provider, by provider and what its network reported.",
            ["provider", "status"],
            (await session.execute(_count_by(SmsAttempt.provider, SmsAttempt.status))).all(),
        )
    )
    families.append(
        _grouped(
            "legetime_payments",
            "Payment reservations by provider and status.",
            ["provider", "status"],
            (await session.execute(_count_by(PaymentReservation.provider, PaymentReservation.status))).all(),
        )
    )

    open_cases, overdue = (
        await session.execute(
            select(func.count(), func.count().filter(Case.sla_due_at < now)).where(
                Case.status.in_(open_statuses)
            )
        )
    ).one()
    families.append(
        GaugeMetricFamily("legetime_cases_open", "Cases waiting for their answer.", value=open_cases)
    )
    families.append(
        GaugeMetricFamily(
            "legetime_cases_overdue", "Cases waiting for their answer past their deadline.", value=overdue
        )
    )
    return families


def _count_by(*columns: Any) -> Any:
    return select(*columns, func.count()).group_by(*columns)


def _grouped(name: str, documentation: str, labels: list[str], rows: Iterable[Any]) -> Any:
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(name, documentation, labels=labels)
    for *values, count in rows:
        family.add_metric([str(value) for value in values], count)
    return family


def _aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ScrapeGauges:
    """The database gauges of the latest scrape, reused for ``CACHE_SECONDS``; concurrent scrapes share
    one reading. ``read`` opens a session and returns the families (``database_gauges``)."""

    def __init__(
        self, read: Callable[[], Awaitable[list[Any]]], cache_seconds: float = CACHE_SECONDS
    ) -> None:
        self.read = read
        self.cache_seconds = cache_seconds
        self._families: list[Any] = []
        self._taken = -float("inf")
        self._lock = asyncio.Lock()

    async def families(self) -> list[Any]:
        async with self._lock:
            if time.monotonic() - self._taken >= self.cache_seconds:
                try:
                    self._families = await self.read()
                    self._taken = time.monotonic()
                except Exception as exc:  # the database is away: the process's own metrics still answer
                    log.warning("metrics.database_gauges_failed", error=type(exc).__name__)
                    return []
            return self._families


class _Families:
    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> list[Any]:
        return self.families


def exposition(extra: list[Any]) -> tuple[bytes, str]:
    """The text exposition of this process's metrics (of every process, in multiprocess mode) and
    ``extra``, with its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    _metrics()  # defined (and so shown) from the first scrape on
    registry: Any = REGISTRY
    if multiprocess_dir() is not None:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry) + generate_latest(_Families(extra)), CONTENT_TYPE_LATEST
