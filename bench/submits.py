"""The submit load: patients opening and submitting cases through GraphQL, as a frontend does.

One flow is what a patient's app sends to get a case to a doctor: ``startCase`` (a new idempotency
key), ``answerQuestionnaire`` (every question shown by default, ``bench.seed``'s answers),
``grantConsent`` (storing the communication) and ``submitCase`` (a payment reserved with the fake
provider). ``concurrency`` patients' apps run flows back to back for ``seconds`` (a closed loop, like
wrk's connections); a flow counts when all four answered without an error. The figures are flows per
second and each flow's latency (its four requests), as a ``Load`` (``requests`` = flows).

The demo mother sends them (her token from ``bench.seed``): each flow adds a submitted case to her list,
which is why the bench runs this after the case-list parts that compare answers with the baseline.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from bench.harness import Load
from bench.seed import ERRORS, Client

START = f"mutation($input: StartCaseInput!) {{ startCase(input: $input) {{ case {{ id }} {ERRORS} }} }}"
ANSWER = (
    "mutation($input: AnswerQuestionnaireInput!) { answerQuestionnaire(input: $input) "
    f"{{ case {{ id }} {ERRORS} }} }}"
)
CONSENT = (
    "mutation($input: GrantConsentInput!) { grantConsent(input: $input) "
    f"{{ consent {{ granted }} {ERRORS} }} }}"
)
SUBMIT = (
    f"mutation($input: SubmitCaseInput!) {{ submitCase(input: $input) {{ case {{ id status }} {ERRORS} }} }}"
)


class FlowFailed(Exception):
    pass


async def _mutate(http: httpx.AsyncClient, query: str, name: str, input: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": {"input": input}})
    if response.status_code != 200:
        raise FlowFailed(f"{name}: HTTP {response.status_code}")
    body = response.json()
    payload = (body.get("data") or {}).get(name)
    if body.get("errors") or payload is None or payload.get("errors"):
        raise FlowFailed(f"{name}: {body.get('errors') or (payload or {}).get('errors')}")
    return dict(payload)


async def _flow(http: httpx.AsyncClient, answers: list[dict[str, Any]], consent_version: str) -> None:
    key = f"bench-submit-{uuid.uuid4().hex}"
    case_id = (await _mutate(http, START, "startCase", {"idempotencyKey": key}))["case"]["id"]
    await _mutate(http, ANSWER, "answerQuestionnaire", {"caseId": case_id, "answers": answers})
    consent = {"purpose": "COMMUNICATION_STORAGE", "textVersion": consent_version, "caseId": case_id}
    await _mutate(http, CONSENT, "grantConsent", consent)
    await _mutate(http, SUBMIT, "submitCase", {"caseId": case_id, "idempotencyKey": key})


async def _run(url: str, token: str, seconds: float, concurrency: int, label: str) -> Load:
    setup = Client(url)
    try:
        answers = setup.answers(for_child=False)
        texts = setup.gql("{ consentTexts { purpose version } }")["consentTexts"]
    finally:
        setup.close()
    consent_version = next(t["version"] for t in texts if t["purpose"] == "COMMUNICATION_STORAGE")
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30.0, limits=limits) as http:
        started = time.perf_counter()
        deadline = started + seconds

        async def patient() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                begun = time.perf_counter()
                try:
                    await _flow(http, answers, consent_version)
                except (FlowFailed, httpx.HTTPError):
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - begun)

        await asyncio.gather(*(patient() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def percentile(share: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(share * len(latencies)))] * 1000

    return Load(label, len(latencies), elapsed, errors, percentile(0.50), percentile(0.99))


def run_submits(url: str, token: str, *, seconds: float, concurrency: int, label: str) -> Load:
    """``concurrency`` patients opening and submitting cases for ``seconds``: flows per second."""
    return asyncio.run(_run(url, token, seconds, concurrency, label))
