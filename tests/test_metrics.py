"""Metrics and traces (docs/operations.md, "Metrics and traces"), through what operators see: ``/metrics``
scraped over HTTP, and the spans an exporter receives.

- GraphQL requests are counted by operation and outcome code, jobs by name and state; the database gauges
  follow a submitted case;
- no label holds a national ID, a case id or an unbounded operation name, whatever a client sends;
- ``/metrics`` needs its token in production;
- in multiprocess mode one process's scrape adds up every process's counts;
- with tracing on, a job continues the trace of the request that enqueued it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from starlette.testclient import TestClient

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform import metrics, tracing
from legetime.core.platform.config import Environment, Settings
from legetime.core.platform.errors import ErrorCode
from legetime.core.platform.events import DISPATCH_JOB
from legetime.core.platform.jobs.outbox import enqueue
from legetime.core.platform.jobs.runner import run_job
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.api import SUBMIT_FIELDS, Api, complete_answers
from tests.cli import ROOT, run_cli, serving
from tests.support import REAL_PROVIDERS, ProductionProviders

MOTHER, CHILD = DEMO_PEOPLE[2].national_id, DEMO_PEOPLE[3].national_id
PHONE = "41234567"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: Any, token: str | None = None) -> tuple[Samples, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, response.text


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def counted(name: str, **labels: str) -> float:
    """This process's count so far (a baseline: every test of the session counts into one registry)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def post(client: Any, query: str, operation: str | None = None, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/graphql", json={"query": query, "operationName": operation}, headers=headers)


def submit_a_case(api: Api) -> tuple[str, str]:
    """The mother submits a case for her child: (her token, the case's id)."""
    mother = api.login(MOTHER)
    api.ok("updateMyPhone", {"phone": PHONE}, "me { phone }", mother)
    child = {"nationalId": CHILD, "givenName": "Emma", "guardianDeclared": True}
    case_id = api.ok("startCase", {"child": child}, "case { id }", mother)["case"]["id"]
    answers = complete_answers(api, for_child=True)
    api.ok("answerQuestionnaire", {"caseId": case_id, "answers": answers}, "case { id }", mother)
    texts = {
        t["purpose"]: t["version"] for t in api.gql("{ consentTexts { purpose version } }")["consentTexts"]
    }
    consent = {
        "purpose": "COMMUNICATION_STORAGE",
        "textVersion": texts["COMMUNICATION_STORAGE"],
        "caseId": case_id,
    }
    api.ok("grantConsent", consent, "consent { granted }", mother)
    api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "metrics-1"}, SUBMIT_FIELDS, mother)
    return mother, case_id


# --- GraphQL requests -------------------------------------------------------------------------------


def test_graphql_requests_show_with_their_operation_and_outcome(embedded: tuple[Api, Platform]) -> None:
    api, _ = embedded
    client = api.client
    duration = "legetime_graphql_request_duration_seconds_count"
    before = {
        name: counted("legetime_graphql_requests_total", operation=name, outcome=outcome)
        for name, outcome in (
            ("MetricsHello", "ok"),
            ("MetricsBroken", "GRAPHQL_VALIDATION_FAILED"),
            ("MetricsLogin", "INVALID_NATIONAL_ID"),
        )
    }
    hello = counted(duration, operation="MetricsHello")

    assert post(client, "query MetricsHello { __typename }", "MetricsHello").status_code == 200
    assert "errors" in post(client, "query MetricsBroken { nothingHere }", "MetricsBroken").json()
    refused = post(
        client,
        'mutation MetricsLogin { startLogin(input: {nationalId: "12345"}) { handle errors { code } } }',
        "MetricsLogin",
    ).json()
    assert refused["data"]["startLogin"]["errors"][0]["code"] == "INVALID_NATIONAL_ID"
    not_json = client.post("/graphql", content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 400

    samples, _ = scrape(client)
    requests = "legetime_graphql_requests_total"
    assert value(samples, requests, operation="MetricsHello", outcome="ok") == before["MetricsHello"] + 1
    assert value(samples, duration, operation="MetricsHello") == hello + 1
    assert value(samples, requests, operation="MetricsBroken", outcome="GRAPHQL_VALIDATION_FAILED") == (
        before["MetricsBroken"] + 1
    )
    assert value(samples, requests, operation="MetricsLogin", outcome="INVALID_NATIONAL_ID") == (
        before["MetricsLogin"] + 1
    )
    assert value(samples, requests, operation="anonymous", outcome="BAD_REQUEST") >= 1
    assert value(samples, "legetime_http_requests_total", route="/graphql", status="400") >= 1
    for (name, labels), _count in samples.items():
        if name == requests:
            assert dict(labels)["outcome"] in {code.value for code in ErrorCode} | {"ok"}, labels


HOSTILE = (
    MOTHER,  # not a GraphQL name
    f"Case{MOTHER}",  # a valid name holding a national ID
    f"_{PHONE}",
    "A" * 65,
    "Ærlig",
    "query { me { name } }",
    "x" * 10_000,
    "Evil\nName",
)


def test_operation_labels_are_bounded_whatever_a_client_sends(
    embedded: tuple[Api, Platform], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, _ = embedded
    monkeypatch.setattr(
        metrics, "_operations", set()
    )  # the names this process labels: from none, for this test
    for name in HOSTILE:
        post(api.client, "query { __typename }", name)
    # More distinct names than a process labels: the later ones are "other".
    for index in range(metrics.MAX_OPERATIONS + 10):
        post(api.client, f"query Bounded{index} {{ __typename }}", f"Bounded{index}")
    samples, text = scrape(api.client)
    operations = {
        dict(labels)["operation"] for name, labels in samples if name == "legetime_graphql_requests_total"
    }
    assert len({name for name in operations if name.startswith("Bounded")}) == metrics.MAX_OPERATIONS
    assert value(samples, "legetime_graphql_requests_total", operation="other", outcome="ok") >= 10
    for operation in operations:
        assert re.fullmatch(r"[_A-Za-z][_0-9A-Za-z]{0,63}", operation), operation
        assert not re.search(r"[0-9]{5}", operation), operation
    assert MOTHER not in text and PHONE not in text and "Ærlig" not in text and "A" * 65 not in text


# --- jobs and the database gauges --------------------------------------------------------------------


def test_a_submitted_case_shows_in_jobs_and_gauges_and_no_label_names_anyone(
    embedded: tuple[Api, Platform],
) -> None:
    api, _ = embedded
    done_before = counted("legetime_jobs_total", job=DISPATCH_JOB, state="done")
    _, case_id = submit_a_case(api)

    def dispatched() -> Samples | None:
        samples, _ = scrape(api.client)
        return (
            samples
            if value(samples, "legetime_jobs_total", job=DISPATCH_JOB, state="done") > done_before
            else None
        )

    samples = api.wait_for(dispatched, "a dispatch job counted as done")
    assert value(samples, "legetime_job_duration_seconds_count", job=DISPATCH_JOB) > 0
    assert value(samples, "legetime_cases_open") == 1
    assert value(samples, "legetime_cases_overdue") == 0
    payments = {dict(labels)["status"] for name, labels in samples if name == "legetime_payments"}
    assert payments and all(
        dict(labels)["provider"] == "fake" for name, labels in samples if name == "legetime_payments"
    )
    assert value(samples, "legetime_outbox_relay_lag_seconds") >= 0
    assert ("legetime_outbox_jobs", (("status", "pending"),)) in samples

    _, text = scrape(api.client)
    for secret in (MOTHER, CHILD, PHONE, case_id, "Emma"):
        assert secret not in text, secret


async def test_a_job_without_a_handler_counts_as_failed(tmp_path: Path, database_url: str) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    platform = Platform.create(settings, load_entry_points=False)
    try:
        before = counted("legetime_jobs_total", job=metrics.UNKNOWN_JOB, state="failed")
        async with platform.db.transaction() as session:
            job = await enqueue(session, "test.nobody_handles_this")
        await run_job(platform, platform.db, str(job.id))
        assert counted("legetime_jobs_total", job=metrics.UNKNOWN_JOB, state="failed") == before + 1
        assert counted("legetime_jobs_total", job="test.nobody_handles_this", state="failed") == 0
    finally:
        await platform.close()


# --- access ------------------------------------------------------------------------------------------


def test_metrics_need_the_token_in_production(tmp_path: Path) -> None:
    token = "a-long-random-metrics-token"
    production = Settings.defaults(data_dir=tmp_path / "data").model_copy(
        update={"environment": Environment.PRODUCTION, "graphiql": False, **REAL_PROVIDERS}
    )

    def app(settings: Settings) -> Any:
        platform = Platform.create(settings, extra_plugins=[ProductionProviders()], load_entry_points=False)
        return create_app(platform, run_jobs_in_process=False)

    with TestClient(app(production)) as client:
        assert client.get("/metrics").status_code == 404  # no token configured: not served at all
    with_token = production.model_copy(update={"metrics_token": SecretStr(token)})
    with TestClient(app(with_token)) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
        assert client.get("/metrics", headers={"Authorization": token}).status_code == 401
        scrape(client, token)


def test_a_short_metrics_token_is_refused() -> None:
    result = run_cli("check", env={"LEGETIME_METRICS_TOKEN": "short"})
    assert result.returncode == 2 and "LEGETIME_METRICS_TOKEN" in result.stderr + result.stdout


# --- several processes -------------------------------------------------------------------------------


def test_one_scrape_adds_up_every_process_in_multiprocess_mode(tmp_path: Path) -> None:
    """Two API processes sharing LEGETIME_METRICS_DIR: each one's /metrics counts the requests of both."""
    env = {"LEGETIME_DATA_DIR": str(tmp_path / "data"), "LEGETIME_METRICS_DIR": str(tmp_path / "metrics")}
    assert run_cli("migrate", env=env).returncode == 0
    with serving(tmp_path / "a.log", env=env) as first, serving(tmp_path / "b.log", env=env) as second:
        for base, times in ((first, 3), (second, 2)):
            for _ in range(times):
                assert (
                    httpx.post(f"{base}/graphql", json={"query": "query Both { __typename }"}).status_code
                    == 200
                )
        with httpx.Client(base_url=first) as client:
            samples_first, _ = scrape(client)
        with httpx.Client(base_url=second) as client:
            samples_second, _ = scrape(client)
    for samples in (samples_first, samples_second):
        assert value(samples, "legetime_graphql_requests_total", operation="anonymous", outcome="ok") == 5
        assert value(samples, "legetime_cases_open") == 0  # once, from the answering process: not twice
    assert len({path.stem.rpartition("_")[2] for path in (tmp_path / "metrics").glob("counter_*.db")}) >= 2


def test_the_files_of_ended_processes_are_removed(tmp_path: Path) -> None:
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    mine, theirs = tmp_path / f"counter_{os.getpid()}.db", tmp_path / f"counter_{ended.stdout.strip()}.db"
    mine.write_bytes(b"")
    theirs.write_bytes(b"")
    assert metrics.remove_ended_processes(tmp_path) == 1
    assert mine.exists() and not theirs.exists()


# --- traces ------------------------------------------------------------------------------------------


@pytest.fixture
def spans() -> Iterator[Any]:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracing.configure(Settings.defaults(), exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.disable()


def test_a_job_continues_the_trace_of_the_request_that_enqueued_it(
    embedded: tuple[Api, Platform], spans: Any
) -> None:
    api, _ = embedded
    mother = api.login(MOTHER)
    child = {"nationalId": CHILD, "givenName": "Emma", "guardianDeclared": True}
    response = api.client.post(
        "/graphql",
        json={
            "query": "mutation TraceStart($input: StartCaseInput!) "
            "{ startCase(input: $input) { case { id } } }",
            "operationName": "TraceStart",
            "variables": {"input": {"child": child}},
        },
        headers={"Authorization": f"Bearer {mother}"},
    )
    assert response.json()["data"]["startCase"]["case"]["id"]

    def continued() -> tuple[Any, Any] | None:
        finished = {span.context.span_id: span for span in spans.get_finished_spans()}
        for job in finished.values():
            if job.name.startswith("job ") and job.parent is not None:
                request = finished.get(job.parent.span_id)
                if request is not None and request.name == "GraphQL TraceStart":
                    return request, job
        return None

    request, job = api.wait_for(continued, "a job span whose parent is the request's span")
    assert job.context.trace_id == request.context.trace_id
    assert request.attributes["graphql.operation.name"] == "TraceStart"
    assert request.attributes["legetime.outcome"] == "ok"
    assert job.attributes["legetime.job.id"]
    for span in spans.get_finished_spans():
        attributes = str(dict(span.attributes or {}))
        for secret in (MOTHER, CHILD, "Emma", mother):
            assert secret not in attributes and secret not in span.name, (span.name, attributes)


def test_without_tracing_nothing_of_opentelemetry_is_loaded(tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "from legetime.core.platform.config import load_settings\n"
        "from legetime.core.platform.runtime import Platform\n"
        "from legetime.schema.app import create_app\n"
        "create_app(Platform.create(load_settings()))\n"
        "print(json.dumps([m for m in sys.modules if m.startswith('opentelemetry')]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEGETIME_", "OTEL_"))}
    env |= {"PYTHONPATH": str(ROOT), "LEGETIME_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
