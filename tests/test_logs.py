"""The server's log of a whole consultation holds no health content and no national ID: not the bodies,
the answers or the IDs, whether they arrive in a valid request, a refused one, a malformed one or a GET
query string; and expected refusals are one line each, not tracebacks.

The server is the real one (`legetime serve`, the embedded default, logging as configured), its output
read as an operator's log collector would."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform.config import Settings
from legetime.core.platform.providers import SMS
from legetime.core.platform.runtime import Platform
from tests.api import SUBMIT_FIELDS, Api, complete_answers
from tests.cli import run_cli, serving

MOTHER, CHILD = DEMO_PEOPLE[2].national_id, DEMO_PEOPLE[3].national_id
CLINICIAN = DEMO_PEOPLE[0].national_id
STRANGER = "17889230266"  # a synthetic ID nobody in the demo has
COMPLAINT = "Sjeldent utslett bak venstre kne"
QUESTION = "Hovner kneet opp om morgenen?"
REPLY = "Bare etter fotballtrening"
ANSWER = "Kjøl ned med is og hvil benet"
SECRETS = (MOTHER, CHILD, CLINICIAN, STRANGER, COMPLAINT, QUESTION, REPLY, ANSWER, "41234567")


def _sent(data_dir: Path) -> list[Any]:
    async def read() -> list[Any]:
        platform = Platform.create(Settings(data_dir=data_dir), load_entry_points=False)
        try:
            return list(await platform.providers.get(SMS).messages())  # type: ignore[attr-defined]
        finally:
            await platform.close()

    return asyncio.run(read())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Api, Path, str]]:
    env = {"LEGETIME_DATA_DIR": str(tmp_path / "data")}
    for command in ("migrate", "demo"):
        assert run_cli(command, env=env).returncode == 0
    log = tmp_path / "server.log"
    with serving(log, env=env) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield Api(client), log, base  # type: ignore[arg-type]


def test_the_log_of_a_consultation_holds_no_health_content_or_national_id(
    server: tuple[Api, Path, str], tmp_path: Path
) -> None:
    api, log, base = server
    mother = api.login(MOTHER)
    api.ok("updateMyPhone", {"phone": "412 34 567"}, "me { phone }", mother)
    case_id = api.ok(
        "startCase",
        {"child": {"nationalId": CHILD, "givenName": "Emma", "guardianDeclared": True}},
        "case { id }",
        mother,
    )["case"]["id"]
    answers = [
        a if a["questionId"] != "main_complaint" else {**a, "value": COMPLAINT}
        for a in complete_answers(api, for_child=True)
    ]
    api.ok("answerQuestionnaire", {"caseId": case_id, "answers": answers}, "case { id }", mother)
    texts = {
        t["purpose"]: t["version"] for t in api.gql("{ consentTexts { purpose version } }")["consentTexts"]
    }
    api.ok(
        "grantConsent",
        {
            "purpose": "COMMUNICATION_STORAGE",
            "textVersion": texts["COMMUNICATION_STORAGE"],
            "caseId": case_id,
        },
        "consent { granted }",
        mother,
    )
    api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "k1"}, SUBMIT_FIELDS, mother)
    clinician = api.login(CLINICIAN)
    api.ok("claimCase", {"caseId": case_id}, "case { status }", clinician)
    api.ok("sendMessage", {"caseId": case_id, "body": QUESTION}, "case { status }", clinician)
    api.ok("sendMessage", {"caseId": case_id, "body": REPLY}, "case { status }", mother)
    api.ok(
        "answerCase", {"caseId": case_id, "body": ANSWER, "outcome": "ADVICE"}, "case { status }", clinician
    )

    # The same secrets in requests that are refused, malformed or sent the wrong way:
    refused = api.mutate(
        "answerCase", {"caseId": case_id, "body": ANSWER, "outcome": "ADVICE"}, "case { id }", mother
    )
    assert refused["errors"]
    wrong_type = api.client.post(
        "/graphql",
        json={
            "query": "mutation($input: StartLoginInput!) { startLogin(input: $input) { handle } }",
            "variables": {"input": {"nationalId": STRANGER, "unknownField": REPLY}},
        },
    )
    assert "errors" in wrong_type.json()
    invalid = api.client.post(
        "/graphql",
        json={"query": "query($b: String!) { nothingHere(text: $b) }", "variables": {"b": COMPLAINT}},
    )
    assert "errors" in invalid.json()
    coercion = api.client.post(
        "/graphql",
        json={
            "query": "query($n: Int!) { myCases(first: $n) { edges { cursor } } }",
            "variables": {"n": STRANGER + "x"},
        },
        headers={"Authorization": f"Bearer {mother}"},
    )
    assert "errors" in coercion.json()
    over_get = api.client.get(
        "/graphql",
        params={"query": f'mutation {{ startLogin(input: {{nationalId: "{STRANGER}"}}) {{ handle }} }}'},
    )
    assert over_get.status_code >= 400
    forbidden = api.raw("{ caseQueue(first: 5) { edges { cursor } } }", mother)
    assert forbidden.get("errors") or forbidden["data"]["caseQueue"] is None

    # The "answered" notice went out from the server's own jobs, linking to where it listens (``--port``).
    # (The question's notice may be skipped: she had already replied when its job ran.)
    def answered() -> list[Any]:
        sent = _sent(tmp_path / "data")
        return sent if any("har svart" in message.body for message in sent) else []

    sms = api.wait_for(answered, "the answered SMS")
    assert all(f"{base} " in f"{message.body} " or f"{base}." in message.body for message in sms), sms

    text = log.read_text()
    leaked = [secret for secret in SECRETS if secret in text or secret.lower() in text.lower()]
    assert not leaked, f"found in the server log: {leaked}"
    assert "Traceback" not in text, "an expected refusal was logged as a traceback"
    assert "graphql.refused" in text and "code=" in text  # refusals are logged, by code
