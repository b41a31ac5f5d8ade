"""The whole consultation through HTTP GraphQL, on the embedded default (SQLite, in-process jobs) and on
PostgreSQL + Redis with a real `legetime worker` process: login → child case → questionnaire → image →
consent → submit → claim → follow-up → reply → answer → SMS → AI draft → approve → close → captured;
and cancel → released."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from starlette.testclient import TestClient

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform.config import Settings
from legetime.core.platform.providers import SMS
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.api import SUBMIT_FIELDS, Api, complete_answers
from tests.cli import ROOT
from tests.conftest import seed_demo
from tests.migrated import upgrade

MOTHER, CHILD = DEMO_PEOPLE[2].national_id, DEMO_PEOPLE[3].national_id
CLINICIAN, OPERATOR = DEMO_PEOPLE[0].national_id, DEMO_PEOPLE[1].national_id
COMPLAINT = "Utslett på armen i tre dager"


@pytest.fixture(params=["embedded", "postgres+redis"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Api, Platform]]:
    if request.param == "embedded":
        yield request.getfixturevalue("embedded")
        return
    data_dir = tmp_path / "data"
    env = {
        "LEGETIME_DATA_DIR": str(data_dir),
        "LEGETIME_DATABASE_URL": request.getfixturevalue("fresh_postgres_url"),
        "LEGETIME_REDIS_URL": request.getfixturevalue("redis_url"),
        "LEGETIME_QUEUE_NAMESPACE": f"legetime-test-{uuid.uuid4().hex[:8]}",
    }
    upgrade(env["LEGETIME_DATABASE_URL"])
    settings = Settings(
        data_dir=data_dir,
        database_url=env["LEGETIME_DATABASE_URL"],
        redis_url=env["LEGETIME_REDIS_URL"],
        queue_namespace=env["LEGETIME_QUEUE_NAMESPACE"],
    )
    seed_demo(settings)
    platform = Platform.create(settings, load_entry_points=False)
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("LEGETIME_")} | env
    process_env["PYTHONPATH"] = str(ROOT)
    worker = subprocess.Popen(
        [sys.executable, "-m", "legetime.cli", "worker", "--threads", "2"],
        env=process_env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with TestClient(create_app(platform)) as client:
            yield Api(client), platform
    finally:
        worker.terminate()
        print(worker.communicate(timeout=30)[0])  # shown when the test fails


def jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (64, 48), (200, 90, 80))
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (59.0, 54.0, 47.0), 3: "E", 4: (10.0, 45.0, 7.0)}  # GPSInfo: Oslo
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def case_state(api: Api, case_id: str, token: str) -> dict[str, Any]:
    query = """query($id: ID!) { case(id: $id) { id number status outcome allowedActions
      messages { kind authorRole body } attachments { contentType width url }
      payment { status authorized captured released }
      journalNotes { id status text drafter drafterVersion promptVersion approvedAt } } }"""
    return dict(api.gql(query, token, id=case_id)["case"])


def test_the_whole_consultation(stack: tuple[Api, Platform]) -> None:
    api, platform = stack
    mother = api.login(MOTHER)
    phone = api.ok("updateMyPhone", {"phone": "412 34 567"}, "me { phone }", mother)
    assert phone["me"]["phone"] == "+4741234567"

    started = api.ok(
        "startCase",
        {"child": {"nationalId": CHILD, "givenName": "Emma", "guardianDeclared": True}},
        "case { id number status forChild patient { givenName age } }",
        mother,
    )
    case = started["case"]
    case_id = case["id"]
    assert case["status"] == "DRAFT" and case["forChild"] is True and case["patient"]["age"] < 16

    answers = [
        a if a["questionId"] != "main_complaint" else {**a, "value": COMPLAINT}
        for a in complete_answers(api, for_child=True)
    ]
    api.ok("answerQuestionnaire", {"caseId": case_id, "answers": answers}, "case { answers }", mother)

    texts = {
        t["purpose"]: t["version"] for t in api.gql("{ consentTexts { purpose version } }")["consentTexts"]
    }
    for purpose in ("COMMUNICATION_STORAGE", "IMAGE_STORAGE", "AI_JOURNAL"):
        api.ok(
            "grantConsent",
            {"purpose": purpose, "textVersion": texts[purpose], "caseId": case_id},
            "consent { granted }",
            mother,
        )

    uploaded = api.upload(case_id, jpeg_with_gps(), mother)
    assert uploaded["errors"] == [] and uploaded["attachment"]["contentType"] == "image/jpeg"
    image = api.client.get(uploaded["attachment"]["url"])
    assert image.status_code == 200
    assert not Image.open(io.BytesIO(image.content)).getexif(), "the GPS position must be gone"

    submit = {"caseId": case_id, "idempotencyKey": "submit-1"}
    submitted = api.ok("submitCase", submit, SUBMIT_FIELDS, mother)["case"]
    assert submitted["status"] == "SUBMITTED" and submitted["slaDueAt"]
    assert submitted["payment"]["status"] == "authorized" and submitted["payment"]["authorized"] == 35000
    again = api.ok("submitCase", submit, SUBMIT_FIELDS, mother)["case"]  # a retry: nothing reserved twice
    assert again["payment"] == submitted["payment"]

    clinician = api.login(CLINICIAN)
    queue = api.gql("{ caseQueue(first: 10) { edges { node { id number overdue } } } }", clinician)
    assert case_id in [edge["node"]["id"] for edge in queue["caseQueue"]["edges"]]
    assert api.ok("claimCase", {"caseId": case_id}, "case { status assignedToMe }", clinician)["case"] == {
        "status": "IN_REVIEW",
        "assignedToMe": True,
    }
    follow_up = api.ok(
        "sendMessage",
        {"caseId": case_id, "body": "Klør det?", "idempotencyKey": "q1"},
        "case { status }",
        clinician,
    )
    assert follow_up["case"]["status"] == "AWAITING_PATIENT"
    # She replies once the question's SMS has reached her: a question already replied to is not texted.
    api.wait_for(lambda: _sent_sms(platform, 1), "the follow-up SMS")
    reply = api.ok(
        "sendMessage", {"caseId": case_id, "body": "Ja, mest om kvelden."}, "case { status }", mother
    )
    assert reply["case"]["status"] == "IN_REVIEW"
    answer = api.ok(
        "answerCase",
        {"caseId": case_id, "body": "Bruk fuktighetskrem to ganger daglig.", "outcome": "ADVICE"},
        "case { status outcome }",
        clinician,
    )
    assert answer["case"] == {"status": "ANSWERED", "outcome": "ADVICE"}

    sms = api.wait_for(lambda: _sent_sms(platform, 2), "two SMS notices")
    assert len(sms) == 2 and {m.to for m in sms} == {"+4741234567"}
    for message in sms:
        assert COMPLAINT.split()[0].lower() not in message.body.lower() and "krem" not in message.body.lower()

    api.ok("draftJournalNote", {"caseId": case_id}, "case { id }", clinician)
    drafted = api.wait_for(lambda: case_state(api, case_id, clinician)["journalNotes"], "a journal draft")
    note = drafted[0]
    assert note["status"] == "DRAFT" and note["drafter"] == "template" and note["drafterVersion"]
    approved = api.ok(
        "approveJournalNote",
        {"noteId": note["id"], "text": note["text"] + "\n\nGjennomgått av lege."},
        "note { status approvedAt text }",
        clinician,
    )["note"]
    assert approved["status"] == "APPROVED" and approved["approvedAt"] and approved["text"].endswith("lege.")

    closed = api.ok("closeCase", {"caseId": case_id}, "case { status }", mother)
    assert closed["case"]["status"] == "CLOSED"
    captured = api.wait_for(
        lambda: (p := case_state(api, case_id, mother)["payment"])["status"] == "captured" and p,
        "the capture",
    )
    assert captured["captured"] == 35000

    seen = case_state(api, case_id, mother)
    assert [m["kind"] for m in seen["messages"]] == ["FOLLOW_UP", "MESSAGE", "ANSWER"]
    assert [n["status"] for n in seen["journalNotes"]] == ["APPROVED"]

    operator = api.login(OPERATOR)
    overview = api.gql(
        "{ operatorOverview { openCases sms { event status to } jobs { name status } } }", operator
    )
    notices = overview["operatorOverview"]["sms"]
    assert sorted(n["event"] for n in notices) == ["answered", "follow_up"]
    assert all(n["status"] == "sent" and n["to"].endswith("67") and "*" in n["to"] for n in notices)


def test_cancel_releases_the_reservation(stack: tuple[Api, Platform]) -> None:
    api, _ = stack
    patient = api.login(MOTHER)
    case_id = api.ok("startCase", {}, "case { id }", patient)["case"]["id"]
    api.ok(
        "answerQuestionnaire",
        {"caseId": case_id, "answers": complete_answers(api, for_child=False)},
        "case { id }",
        patient,
    )
    version = api.gql("{ consentTexts { purpose version } }")["consentTexts"][0]["version"]
    api.ok(
        "grantConsent",
        {"purpose": "COMMUNICATION_STORAGE", "textVersion": version},
        "consent { granted }",
        patient,
    )
    api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "k"}, SUBMIT_FIELDS, patient)
    cancelled = api.ok("cancelCase", {"caseId": case_id}, "case { status }", patient)
    assert cancelled["case"]["status"] == "CANCELLED"
    released = api.wait_for(
        lambda: (p := case_state(api, case_id, patient)["payment"])["status"] == "released" and p,
        "the release",
    )
    assert released["released"] == 35000 and released["captured"] == 0


def _sent_sms(platform: Platform, count: int) -> list[Any]:
    outbox = platform.providers.get(SMS)
    messages = asyncio.run(outbox.messages())  # type: ignore[attr-defined]
    return messages if len(messages) >= count else []
