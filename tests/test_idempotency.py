"""Idempotency keys of the mutations that create something: `startCase`, `sendMessage`, `attachImage`,
`grantConsent` and `draftJournalNote` (`submitCase` has its own, tests/test_case_rules.py). A retry after
a lost answer returns what the first call created and creates nothing twice; the same key with other input
is refused (IDEMPOTENCY_CONFLICT); a key is its caller's own; concurrent retries create one object. Over
HTTP, on the embedded default (SQLite) and on PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select
from starlette.testclient import TestClient

from legetime.core.consultation import attachments, cases
from legetime.core.consultation.journal import DRAFT_JOB
from legetime.core.consultation.notifications import SEND_SMS_JOB
from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform import idempotency
from legetime.core.platform.config import Settings
from legetime.core.platform.db import models
from legetime.core.platform.db.engine import Database
from legetime.core.platform.events import EventType
from legetime.core.platform.runtime import Platform
from legetime.core.protection.audit import chain_pending, verify_chain
from legetime.schema.app import create_app
from tests.api import ERRORS, SUBMIT_FIELDS, Api, complete_answers
from tests.conftest import seed_demo
from tests.migrated import upgrade

MOTHER, CHILD = DEMO_PEOPLE[2].national_id, DEMO_PEOPLE[3].national_id
CLINICIAN, OPERATOR = DEMO_PEOPLE[0].national_id, DEMO_PEOPLE[1].national_id
CASE = "case { id number status forChild }"
MESSAGE = "message { id kind body } case { id status }"
ATTACHMENT = "attachment { id contentType width height sizeBytes createdAt }"
CONSENT = "consent { purpose granted textVersion createdAt }"
CHILD_INPUT = {"nationalId": CHILD, "givenName": "Ingrid", "guardianDeclared": True}


@dataclass
class Backend:
    api: Api
    platform: Platform
    data_dir: Path

    def run(self, work: Callable[[Any], Any]) -> Any:
        """Look at the database directly (what the API would not show: rows, jobs)."""

        async def go() -> Any:
            database = Database(self.platform.settings.resolved_database_url)
            try:
                async with database.transaction() as session:
                    return await work(session)
            finally:
                await database.dispose()

        return asyncio.run(go())

    def count(self, model: Any, *where: Any) -> int:
        async def work(session: Any) -> int:
            return int(await session.scalar(select(func.count()).select_from(model).where(*where)))

        return int(self.run(work))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir)
    if request.param == "postgresql":
        settings = Settings(data_dir=data_dir, database_url=request.getfixturevalue("fresh_postgres_url"))
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    platform = Platform.create(settings, load_entry_points=False)
    with TestClient(create_app(platform, run_jobs_in_process=True)) as client:
        yield Backend(Api(client), platform, data_dir)


def jpeg(color: tuple[int, int, int] = (30, 140, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (80, 60), color).save(buffer, "JPEG")
    return buffer.getvalue()


def upload_raw(api: Api, case_id: str, data: bytes, token: str, key: str | None) -> dict[str, Any]:
    """attachImage as a multipart request (the GraphQL multipart request spec), with a key: the response."""
    query = (
        f"mutation($input: AttachImageInput!) {{ attachImage(input: $input) {{ {ATTACHMENT} {ERRORS} }} }}"
    )
    variables = {"input": {"caseId": case_id, "image": None, "idempotencyKey": key}}
    response = api.client.post(
        "/graphql",
        data={
            "operations": json.dumps({"query": query, "variables": variables}),
            "map": json.dumps({"0": ["variables.input.image"]}),
        },
        files={"0": ("bilde.jpg", data, "application/octet-stream")},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def upload(api: Api, case_id: str, data: bytes, token: str, key: str | None) -> dict[str, Any]:
    body = upload_raw(api, case_id, data, token, key)
    assert "errors" not in body, body
    return dict(body["data"]["attachImage"])


def my_case_ids(api: Api, token: str) -> list[str]:
    data = api.gql("{ myCases(first: 50) { edges { node { id } } } }", token)
    return [edge["node"]["id"] for edge in data["myCases"]["edges"]]


def case_contents(api: Api, case_id: str, token: str) -> dict[str, Any]:
    query = "query($id: ID!) { case(id: $id) { status messages { id kind body } attachments { id } } }"
    return dict(api.gql(query, token, id=case_id)["case"])


def grant(api: Api, purpose: str, case_id: str | None = None, key: str | None = None) -> dict[str, Any]:
    """grantConsent's input for the text the frontend shows now."""
    texts = api.gql("{ consentTexts { purpose version } }")["consentTexts"]
    version = next(t["version"] for t in texts if t["purpose"] == purpose)
    input: dict[str, Any] = {"purpose": purpose, "textVersion": version}
    if case_id is not None:
        input["caseId"] = case_id
    if key is not None:
        input["idempotencyKey"] = key
    return input


def consent(api: Api, case_id: str, token: str, *purposes: str) -> None:
    for purpose in purposes:
        api.ok("grantConsent", grant(api, purpose, case_id), "consent { granted }", token)


def consent_trail(backend: Backend) -> tuple[int, int, int]:
    """Consent entries, their access-log entries and their events."""
    return (
        backend.count(models.Consent),
        backend.count(models.AuditEvent, models.AuditEvent.object_type == "consent"),
        backend.count(models.DomainEvent, models.DomainEvent.type == EventType.CONSENT_GRANTED.value),
    )


def submitted_case(api: Api, token: str) -> str:
    """Her own case, answered, consented to and submitted: open for messages."""
    case_id = str(api.ok("startCase", {}, "case { id }", token)["case"]["id"])
    answers = complete_answers(api, for_child=False)
    api.ok("answerQuestionnaire", {"caseId": case_id, "answers": answers}, "case { id }", token)
    consent(api, case_id, token, "COMMUNICATION_STORAGE", "AI_JOURNAL")
    api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "submit"}, SUBMIT_FIELDS, token)
    return case_id


def errors_of(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["errors"]]


def refused(payload: dict[str, Any], code: str) -> None:
    assert [(e["field"], e["code"]) for e in payload["errors"]] == [("idempotencyKey", code)], payload
    assert all(e["message"] for e in payload["errors"])


def stored_files(backend: Backend) -> list[Path]:
    return [p for p in (backend.data_dir / "objects").rglob("*") if p.is_file()]


def chain_holds(backend: Backend) -> None:
    backend.run(chain_pending)
    report = backend.run(verify_chain)
    assert report.ok and report.unchained == 0, report


# --- a retry returns what the first call created ----------------------------------------------------


def test_a_retried_start_returns_the_same_case_and_opens_no_second(backend: Backend) -> None:
    api = backend.api
    mother = api.login(MOTHER)
    first = api.ok("startCase", {"idempotencyKey": "start-1"}, CASE, mother)
    assert api.ok("startCase", {"idempotencyKey": "start-1"}, CASE, mother) == first

    for_child = {"child": CHILD_INPUT, "idempotencyKey": "start-child"}
    child = api.ok("startCase", for_child, CASE, mother)
    assert child["case"]["forChild"] is True
    assert api.ok("startCase", for_child, CASE, mother) == child

    assert sorted(my_case_ids(api, mother)) == sorted([first["case"]["id"], child["case"]["id"]])
    assert backend.count(models.Case) == 2
    # Without a key every call opens a case, as before.
    api.ok("startCase", {}, CASE, mother)
    api.ok("startCase", {}, CASE, mother)
    assert len(my_case_ids(api, mother)) == 4


def test_a_retried_message_is_sent_once_and_changes_the_case_once(backend: Backend) -> None:
    api = backend.api
    mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
    case_id = submitted_case(api, mother)
    api.ok("claimCase", {"caseId": case_id}, "case { status }", clinician)
    question = {"caseId": case_id, "body": "Hvor høy er feberen?", "idempotencyKey": "q-1"}
    asked = api.ok("sendMessage", question, MESSAGE, clinician)
    assert asked["case"]["status"] == "AWAITING_PATIENT" and asked["message"]["kind"] == "FOLLOW_UP"

    reply = {"caseId": case_id, "body": "Rundt 39 om kvelden.", "idempotencyKey": "r-1"}
    first = api.ok("sendMessage", reply, MESSAGE, mother)
    assert first["case"]["status"] == "IN_REVIEW"
    assert api.ok("sendMessage", reply, MESSAGE, mother) == first
    assert api.ok("sendMessage", question, MESSAGE, clinician)["message"] == asked["message"]

    seen = case_contents(api, case_id, mother)
    assert seen["status"] == "IN_REVIEW"  # the retried question did not send the case back to her
    assert [m["id"] for m in seen["messages"]] == [asked["message"]["id"], first["message"]["id"]]
    assert backend.count(models.OutboxJob, models.OutboxJob.name == SEND_SMS_JOB) == 1  # one SMS, once


def test_a_retried_upload_returns_the_same_attachment_and_stores_the_image_once(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = backend.api
    mother = api.login(MOTHER)
    case_id = api.ok("startCase", {"child": CHILD_INPUT}, "case { id }", mother)["case"]["id"]
    consent(api, case_id, mother, "IMAGE_STORAGE")
    decoded: list[int] = []
    sanitize = attachments.sanitize_image

    def counting(data: bytes) -> Any:
        decoded.append(len(data))
        return sanitize(data)

    monkeypatch.setattr(attachments, "sanitize_image", counting)

    image = jpeg()
    first = upload(api, case_id, image, mother, "img-1")
    assert first["errors"] == [] and first["attachment"]["contentType"] == "image/jpeg"
    again = upload(api, case_id, image, mother, "img-1")
    assert again == first
    assert len(decoded) == 1, "the retry must not decode the image again"

    seen = case_contents(api, case_id, mother)
    assert [a["id"] for a in seen["attachments"]] == [first["attachment"]["id"]]
    assert len(stored_files(backend)) == 1


def test_a_retried_consent_is_recorded_once(backend: Backend) -> None:
    api = backend.api
    mother = api.login(MOTHER)
    case_id = api.ok("startCase", {"child": CHILD_INPUT}, "case { id }", mother)["case"]["id"]
    entries, logged, events = consent_trail(backend)

    for_child = grant(api, "IMAGE_STORAGE", case_id, key="consent-1")
    first = api.ok("grantConsent", for_child, CONSENT, mother)
    assert first["consent"]["granted"] is True
    assert api.ok("grantConsent", for_child, CONSENT, mother) == first  # the same entry, its time included
    own = grant(api, "PATIENT_SURVEY", key="consent-2")  # her own, for no case
    mine = api.ok("grantConsent", own, CONSENT, mother)
    assert api.ok("grantConsent", own, CONSENT, mother) == mine
    assert consent_trail(backend) == (entries + 2, logged + 2, events + 2)

    # Without a key every grant is an entry of the history, as before.
    api.ok("grantConsent", grant(api, "IMAGE_STORAGE", case_id), CONSENT, mother)
    api.ok("grantConsent", grant(api, "IMAGE_STORAGE", case_id), CONSENT, mother)
    assert consent_trail(backend) == (entries + 4, logged + 4, events + 4)
    chain_holds(backend)


# --- the same key with other input -------------------------------------------------------------------


def test_a_consent_key_with_other_input_is_refused_and_records_nothing(backend: Backend) -> None:
    api = backend.api
    mother = api.login(MOTHER)
    child_case = api.ok("startCase", {"child": CHILD_INPUT}, "case { id }", mother)["case"]["id"]
    own_case = api.ok("startCase", {}, "case { id }", mother)["case"]["id"]
    api.ok("grantConsent", grant(api, "IMAGE_STORAGE", child_case, key="k"), CONSENT, mother)
    entries, logged, events = consent_trail(backend)

    # The key names one request, whatever the case: another purpose, another case or none is refused.
    for other in (
        grant(api, "AI_JOURNAL", child_case, key="k"),
        grant(api, "IMAGE_STORAGE", own_case, key="k"),
        grant(api, "IMAGE_STORAGE", key="k"),
    ):
        payload = api.mutate("grantConsent", other, CONSENT, mother)
        refused(payload, "IDEMPOTENCY_CONFLICT")
        assert payload["consent"] is None
    assert consent_trail(backend) == (entries, logged, events)
    assert backend.count(models.Consent, models.Consent.purpose == models.ConsentPurpose.AI_JOURNAL) == 0

    # A refused request stores nothing, its key included: the corrected request goes through with it.
    outdated = {**grant(api, "AI_JOURNAL", child_case, key="t"), "textVersion": "2000-01"}
    payload = api.mutate("grantConsent", outdated, CONSENT, mother)
    assert [(e["field"], e["code"]) for e in payload["errors"]] == [("textVersion", "INVALID")]
    api.ok("grantConsent", grant(api, "AI_JOURNAL", child_case, key="t"), CONSENT, mother)
    assert consent_trail(backend) == (entries + 1, logged + 1, events + 1)
    chain_holds(backend)


def test_the_same_key_with_other_input_is_refused_and_stores_nothing(backend: Backend) -> None:
    api = backend.api
    mother = api.login(MOTHER)

    mine = api.ok("startCase", {"idempotencyKey": "k"}, CASE, mother)
    refused(
        api.mutate("startCase", {"idempotencyKey": "k", "child": CHILD_INPUT}, CASE, mother),
        "IDEMPOTENCY_CONFLICT",
    )
    api.ok("startCase", {"idempotencyKey": "c", "child": CHILD_INPUT}, CASE, mother)
    other_name = {**CHILD_INPUT, "givenName": "Emma"}
    refused(
        api.mutate("startCase", {"idempotencyKey": "c", "child": other_name}, CASE, mother),
        "IDEMPOTENCY_CONFLICT",
    )
    refused(api.mutate("startCase", {"idempotencyKey": "c"}, CASE, mother), "IDEMPOTENCY_CONFLICT")
    assert len(my_case_ids(api, mother)) == 2
    # A refused request stores nothing, its key included: the corrected request goes through with it.
    undeclared = {"idempotencyKey": "g", "child": {**CHILD_INPUT, "guardianDeclared": False}}
    assert errors_of(api.mutate("startCase", undeclared, CASE, mother)) == ["GUARDIANSHIP_NOT_CONFIRMED"]
    api.ok("startCase", {"idempotencyKey": "g", "child": CHILD_INPUT}, CASE, mother)
    assert len(my_case_ids(api, mother)) == 3

    case_id = submitted_case(api, mother)
    sent = {"caseId": case_id, "body": "Feber i natt.", "idempotencyKey": "m"}
    api.ok("sendMessage", sent, MESSAGE, mother)
    changed = api.mutate("sendMessage", {**sent, "body": "Feber i går."}, MESSAGE, mother)
    refused(changed, "IDEMPOTENCY_CONFLICT")
    assert changed["message"] is None
    assert [m["body"] for m in case_contents(api, case_id, mother)["messages"]] == ["Feber i natt."]

    draft = mine["case"]["id"]
    consent(api, draft, mother, "IMAGE_STORAGE")
    upload(api, draft, jpeg(), mother, "i")
    other = upload(api, draft, jpeg((200, 40, 40)), mother, "i")
    refused(other, "IDEMPOTENCY_CONFLICT")
    assert other["attachment"] is None
    assert len(case_contents(api, draft, mother)["attachments"]) == 1
    assert len(stored_files(backend)) == 1

    assert backend.count(models.Case) == 4
    chain_holds(backend)


# --- keys are their caller's own -----------------------------------------------------------------------


def test_the_same_key_from_another_person_is_another_operation(backend: Backend) -> None:
    api = backend.api
    mother, operator, clinician = api.login(MOTHER), api.login(OPERATOR), api.login(CLINICIAN)
    hers = api.ok("startCase", {"idempotencyKey": "same"}, CASE, mother)
    his = api.ok("startCase", {"idempotencyKey": "same"}, CASE, operator)
    assert his["case"]["id"] != hers["case"]["id"]
    assert api.ok("startCase", {"idempotencyKey": "same"}, CASE, mother) == hers
    assert my_case_ids(api, operator) == [his["case"]["id"]]

    case_id = submitted_case(api, mother)
    api.ok("claimCase", {"caseId": case_id}, "case { status }", clinician)
    # The clinician and the patient happen to use the same key on the same case: two messages.
    question = api.ok(
        "sendMessage",
        {"caseId": case_id, "body": "Har du hoste?", "idempotencyKey": "m-1"},
        MESSAGE,
        clinician,
    )
    reply = api.ok(
        "sendMessage", {"caseId": case_id, "body": "Nei.", "idempotencyKey": "m-1"}, MESSAGE, mother
    )
    assert reply["message"]["id"] != question["message"]["id"]
    assert reply["case"]["status"] == "IN_REVIEW"
    assert len(case_contents(api, case_id, mother)["messages"]) == 2

    # Both give their own consent with the same key: two entries.
    entries = backend.count(models.Consent)
    api.ok("grantConsent", grant(api, "PATIENT_SURVEY", key="same"), CONSENT, mother)
    api.ok("grantConsent", grant(api, "PATIENT_SURVEY", key="same"), CONSENT, operator)
    assert backend.count(models.Consent) == entries + 2


# --- keys are checked ----------------------------------------------------------------------------------

UNFIT_KEYS = [
    "",
    "x" * 101,
    "line\nbreak",
    "tab\tinside",
    "return\rinside",
    "next line\u0085",
    "zero\u200bwidth",
    "turned\u202earound",
    "line\u2028separator",
]
"""Refused by the key's own rule, in the payload (INVALID)."""
CONTROL_KEYS = ["nul\x00", "bell\x07", "escape\x1b", "del\x7f"]
"""Refused as any input with these is: at the boundary (a top-level error) or by the key's rule."""


def key_refusals(response: dict[str, Any], name: str) -> list[tuple[str, str]]:
    """How a request was refused for its key, at the top level or in the payload."""
    top = [(e["extensions"]["field"], e["extensions"]["code"]) for e in response.get("errors") or ()]
    payload = (response.get("data") or {}).get(name) or {}
    return top + [(e["field"], e["code"]) for e in payload.get("errors") or ()]


def test_keys_are_printable_and_at_most_100_characters(backend: Backend) -> None:
    api = backend.api
    mother = api.login(MOTHER)
    case_id = submitted_case(api, mother)
    draft = api.ok("startCase", {}, "case { id }", mother)["case"]["id"]
    consent(api, draft, mother, "IMAGE_STORAGE")
    before = len(my_case_ids(api, mother))
    consents_before = backend.count(models.Consent)

    def attempts(key: str) -> dict[str, dict[str, Any]]:
        def run(name: str, input: dict[str, Any], fields: str) -> dict[str, Any]:
            operation = f"{name}(input: $input) {{ {fields} {ERRORS} }}"
            query = f"mutation($input: {name[0].upper()}{name[1:]}Input!) {{ {operation} }}"
            return api.raw(query, mother, input=input)

        return {
            "startCase": run("startCase", {"idempotencyKey": key}, CASE),
            "sendMessage": run(
                "sendMessage", {"caseId": case_id, "body": "Hei", "idempotencyKey": key}, MESSAGE
            ),
            "attachImage": upload_raw(api, draft, jpeg(), mother, key),
            "submitCase": run("submitCase", {"caseId": draft, "idempotencyKey": key}, "case { id }"),
            "grantConsent": run("grantConsent", grant(api, "AI_JOURNAL", draft, key), CONSENT),
        }

    for key in UNFIT_KEYS:
        for name, response in attempts(key).items():
            assert key_refusals(response, name) == [("idempotencyKey", "INVALID")], (name, key, response)
            assert response["data"][name]["errors"][0]["message"].startswith("Idempotensnøkkelen må ha")
    for key in CONTROL_KEYS:
        for name, response in attempts(key).items():
            refusals = key_refusals(response, name)
            assert len(refusals) == 1 and refusals[0][0] == "idempotencyKey", (name, key, response)

    assert len(my_case_ids(api, mother)) == before
    assert case_contents(api, case_id, mother)["messages"] == []
    assert case_contents(api, draft, mother)["attachments"] == []
    assert stored_files(backend) == []
    assert backend.count(models.Consent) == consents_before

    longest = "ø" * 99 + " "  # any printable characters, spaces and letters beyond ASCII included
    started = api.ok("startCase", {"idempotencyKey": longest}, CASE, mother)
    assert api.ok("startCase", {"idempotencyKey": longest}, CASE, mother) == started


# --- concurrent retries ----------------------------------------------------------------------------------


def test_concurrent_retries_of_a_start_open_one_case(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both requests look for the key, find nothing, and go on to create: the unique constraint lets one
    win; the other gets the winner's case. (On SQLite transactions take turns, so the second finds it.)"""
    api = backend.api
    mother = api.login(MOTHER)
    together = asyncio.Barrier(2)
    met: list[bool] = []
    new_number = cases._new_number

    # SQLite: the other request waits for the write lock (busy_timeout 5 s), so do not hold it long.
    patience = 1 if backend.platform.db.is_sqlite else 10

    async def in_step(ctx: Any) -> str:
        try:
            async with asyncio.timeout(patience):
                await together.wait()
            met.append(True)
        except (TimeoutError, asyncio.BrokenBarrierError):
            pass  # SQLite: the other request waits for the write lock, and arrives only after this one
        return await new_number(ctx)

    monkeypatch.setattr(cases, "_new_number", in_step)

    def start(_: int) -> dict[str, Any]:
        return api.ok("startCase", {"idempotencyKey": "race", "child": CHILD_INPUT}, CASE, mother)

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(start, range(2))
    assert first == second
    assert my_case_ids(api, mother) == [first["case"]["id"]]
    assert backend.count(models.Case) == 1
    assert backend.count(models.Participant) == 2  # the child and her guardian, once
    if backend.platform.db.is_sqlite:
        assert met == []
    else:
        assert met == [True, True], "both requests must have passed the lookup before either created"
    chain_holds(backend)


def test_concurrent_retries_of_a_message_and_an_upload_create_one_each(backend: Backend) -> None:
    api = backend.api
    mother = api.login(MOTHER)
    case_id = submitted_case(api, mother)
    consent(api, case_id, mother, "IMAGE_STORAGE")
    message = {"caseId": case_id, "body": "Det klør mest om natten.", "idempotencyKey": "m"}
    image = jpeg()

    with ThreadPoolExecutor(3) as pool:
        sent = list(pool.map(lambda _: api.ok("sendMessage", message, MESSAGE, mother), range(3)))
        uploaded = list(pool.map(lambda _: upload(api, case_id, image, mother, "i"), range(3)))
    assert sent[0] == sent[1] == sent[2]
    assert uploaded[0] == uploaded[1] == uploaded[2] and uploaded[0]["errors"] == []
    seen = case_contents(api, case_id, mother)
    assert [m["id"] for m in seen["messages"]] == [sent[0]["message"]["id"]]
    assert [a["id"] for a in seen["attachments"]] == [uploaded[0]["attachment"]["id"]]
    assert len(stored_files(backend)) == 1
    chain_holds(backend)


def test_concurrent_retries_of_a_consent_record_one_entry(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As with a start: both requests pass the lookup before either records (PostgreSQL); the constraint
    over the giver and the key lets one win, and the other answers with the winner's entry."""
    api = backend.api
    mother = api.login(MOTHER)
    case_id = api.ok("startCase", {"child": CHILD_INPUT}, "case { id }", mother)["case"]["id"]
    entries, logged, events = consent_trail(backend)
    together = asyncio.Barrier(2)
    met: list[bool] = []
    patience = 1 if backend.platform.db.is_sqlite else 10
    once = idempotency.once

    async def in_step(session: Any, operation: str, key: Any, find: Any, create: Any) -> Any:
        async def create_together() -> Any:
            try:
                async with asyncio.timeout(patience):
                    await together.wait()
                met.append(True)
            except (TimeoutError, asyncio.BrokenBarrierError):
                pass  # SQLite: the other request waits for the write lock, and arrives only after this one
            return await create()

        return await once(session, operation, key, find, create_together)

    monkeypatch.setattr(idempotency, "once", in_step)
    input = grant(api, "IMAGE_STORAGE", case_id, key="race")

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: api.ok("grantConsent", input, CONSENT, mother), range(2))
    assert first == second
    assert consent_trail(backend) == (entries + 1, logged + 1, events + 1)
    if backend.platform.db.is_sqlite:
        assert met == []
    else:
        assert met == [True, True], "both requests must have passed the lookup before either recorded"
    chain_holds(backend)


# --- the journal draft ----------------------------------------------------------------------------------


def test_a_retried_draft_request_drafts_once(backend: Backend) -> None:
    api = backend.api
    mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
    case_id = submitted_case(api, mother)
    api.ok("claimCase", {"caseId": case_id}, "case { status }", clinician)
    ask = {"caseId": case_id, "idempotencyKey": "draft-1"}
    first = api.ok("draftJournalNote", ask, "case { id status }", clinician)
    assert api.ok("draftJournalNote", ask, "case { id status }", clinician) == first

    query = "query($id: ID!) { case(id: $id) { journalNotes { id } } }"
    api.wait_for(lambda: api.gql(query, clinician, id=case_id)["case"]["journalNotes"], "the draft")
    assert backend.count(models.OutboxJob, models.OutboxJob.name == DRAFT_JOB) == 1
    assert len(api.gql(query, clinician, id=case_id)["case"]["journalNotes"]) == 1
    # Another key asks for another draft, as before.
    api.ok("draftJournalNote", {"caseId": case_id, "idempotencyKey": "draft-2"}, "case { id }", clinician)
    assert backend.count(models.OutboxJob, models.OutboxJob.name == DRAFT_JOB) == 2
