"""Journal drafting through HTTP GraphQL with the ``openai`` drafter against a local model server: when the
model is unreachable the clinician sees the request FAILED (PROVIDER_UNAVAILABLE) at once, without a retry
behind her back; she asks again, or writes the note herself; nothing is approved without her. What reaches
the model has the patient's name and phone number masked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from legetime.core.consultation.journal import DRAFT_FAILED_MESSAGE, DRAFT_JOB
from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform.config import Settings
from legetime.core.platform.db import models
from legetime.core.platform.db.engine import Database
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.api import SUBMIT_FIELDS, Api, complete_answers
from tests.conftest import seed_demo
from tests.fakes import openai_chat as fake_api
from tests.fakes.openai_chat import OpenAIChatFake
from tests.fakes.server import serve_fake
from tests.migrated import upgrade

CLINICIAN, MOTHER = DEMO_PEOPLE[0].national_id, DEMO_PEOPLE[2].national_id
STATE = """query($id: ID!) { case(id: $id) {
  journalDraft { status requestedAt error { field code message } }
  journalNotes { id status drafter model promptVersion text }
} }"""
NOTE = "note { id status drafter model text }"


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Api, Platform, OpenAIChatFake]]:
    """The embedded platform (SQLite, in-process jobs) drafting with ``openai`` against the fake."""
    with serve_fake(OpenAIChatFake()) as fake:
        for name, value in fake.plugin_settings().items():
            monkeypatch.setenv(f"LEGETIME_JOURNAL_OPENAI_{name}", value)
        monkeypatch.setenv("LEGETIME_JOURNAL_OPENAI_MAX_RETRIES", "0")
        settings = Settings(data_dir=tmp_path / "data", journal_provider="openai")
        upgrade(settings.resolved_database_url)
        seed_demo(settings)
        platform = Platform.create(settings, load_entry_points=False)
        with TestClient(create_app(platform)) as client:
            yield Api(client), platform, fake


def draft_job(platform: Platform, dedupe_suffix: str) -> models.OutboxJob:
    async def look() -> models.OutboxJob:
        database = Database(platform.settings.resolved_database_url)
        try:
            async with database.transaction() as session:
                job = await session.scalar(
                    select(models.OutboxJob).where(
                        models.OutboxJob.name == DRAFT_JOB,
                        models.OutboxJob.dedupe_key.endswith(dedupe_suffix),
                    )
                )
                assert job is not None
                return job
        finally:
            await database.dispose()

    return asyncio.run(look())


def her_case(api: Api, token: str, complaint: str) -> str:
    case_id = str(api.ok("startCase", {}, "case { id }", token)["case"]["id"])
    answers = [
        a | {"value": complaint} if a["value"] == "Utslett på armen i tre dager" else a
        for a in complete_answers(api, for_child=False)
    ]
    api.ok("answerQuestionnaire", {"caseId": case_id, "answers": answers}, "case { id }", token)
    texts = {
        t["purpose"]: t["version"] for t in api.gql("{ consentTexts { purpose version } }")["consentTexts"]
    }
    for purpose in ("COMMUNICATION_STORAGE", "AI_JOURNAL"):
        api.ok(
            "grantConsent",
            {"purpose": purpose, "textVersion": texts[purpose], "caseId": case_id},
            "consent { granted }",
            token,
        )
    api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "submit"}, SUBMIT_FIELDS, token)
    return case_id


def test_a_failed_draft_shows_asks_again_or_is_written_by_hand(
    stack: tuple[Api, Platform, OpenAIChatFake],
) -> None:
    api, platform, fake = stack
    mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
    me = api.gql("{ me { givenName familyName } }", mother)["me"]
    fake.forbidden_names = [me["givenName"], me["familyName"]]
    case_id = her_case(api, mother, f"{me['givenName']} har utslett på armen, ring meg på 412 34 567")
    api.ok("claimCase", {"caseId": case_id}, "case { id }", clinician)

    def state(token: str = clinician) -> dict[str, Any]:
        return dict(api.gql(STATE, token, id=case_id)["case"])

    assert state()["journalDraft"] is None  # nothing asked yet

    # The model is down: the request fails at once, and says so.
    fake.plan = [fake_api.SERVER_ERROR]
    asked = api.ok("draftJournalNote", {"caseId": case_id, "idempotencyKey": "d1"}, "case { id }", clinician)
    assert asked["case"]["id"] == case_id
    failed = api.wait_for(lambda: (s := state())["journalDraft"]["status"] == "FAILED" and s, "the failure")
    assert failed["journalDraft"]["error"] == {
        "field": None,
        "code": "PROVIDER_UNAVAILABLE",
        "message": DRAFT_FAILED_MESSAGE,
    }
    assert failed["journalNotes"] == []
    job = draft_job(platform, ":d1")
    assert job.status is models.OutboxStatus.FAILED and job.attempts == 1  # not retried behind her back
    assert job.last_error == "PROVIDER_UNAVAILABLE" and len(fake.requests) == 1
    # A retry of the same request learns its outcome; the patient never sees the request.
    again = api.mutate(
        "draftJournalNote", {"caseId": case_id, "idempotencyKey": "d1"}, "case { id }", clinician
    )
    assert [(e["code"], e["message"]) for e in again["errors"]] == [
        ("PROVIDER_UNAVAILABLE", DRAFT_FAILED_MESSAGE)
    ]
    assert state(mother)["journalDraft"] is None

    # She asks again and the model answers: a draft, with the answering model and the prompt version.
    api.ok("draftJournalNote", {"caseId": case_id, "idempotencyKey": "d2"}, "case { id }", clinician)
    done = api.wait_for(lambda: (s := state())["journalNotes"] and s, "the draft")
    assert done["journalDraft"] == {
        "status": "DONE",
        "requestedAt": done["journalDraft"]["requestedAt"],
        "error": None,
    }
    [note] = done["journalNotes"]
    assert (note["status"], note["drafter"], note["model"], note["promptVersion"]) == (
        "DRAFT",
        "openai",
        fake.answered_by,
        "2026-11-v1",
    )
    assert note["text"].startswith("Kontaktårsak:")
    # What reached the model: her name and number masked (the fake refuses them otherwise).
    assert fake.violations == []
    assert "[navn] har utslett på armen, ring meg på [telefon]" in fake.sent("user")[-1]

    # Or she writes the note herself: a draft until she approves it; a retry returns the same note.
    written = api.ok(
        "writeJournalNote",
        {"caseId": case_id, "text": "Utslett på armen. Råd om fuktighetskrem.", "idempotencyKey": "w1"},
        NOTE,
        clinician,
    )["note"]
    assert (written["status"], written["drafter"], written["model"]) == ("DRAFT", None, None)
    retried = api.ok(
        "writeJournalNote",
        {"caseId": case_id, "text": "Utslett på armen. Råd om fuktighetskrem.", "idempotencyKey": "w1"},
        NOTE,
        clinician,
    )["note"]
    assert retried["id"] == written["id"]
    other = {"caseId": case_id, "text": "Noe annet.", "idempotencyKey": "w1"}
    mutation = (
        "mutation($input: WriteJournalNoteInput!) "
        f"{{ writeJournalNote(input: $input) {{ {NOTE} errors {{ code }} }} }}"
    )
    conflict = api.gql(mutation, clinician, input=other)["writeJournalNote"]
    assert conflict["errors"] == [{"code": "IDEMPOTENCY_CONFLICT"}] and conflict["note"] is None
    assert [n["status"] for n in state(mother)["journalNotes"]] == []  # drafts are not hers to see
    approved = api.ok("approveJournalNote", {"noteId": written["id"]}, NOTE, clinician)["note"]
    assert approved["status"] == "APPROVED" and approved["text"] == "Utslett på armen. Råd om fuktighetskrem."
    assert [n["id"] for n in state(mother)["journalNotes"]] == [written["id"]]


def test_only_the_cases_clinician_writes_a_note(stack: tuple[Api, Platform, OpenAIChatFake]) -> None:
    api, _, _ = stack
    mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
    case_id = her_case(api, mother, "Utslett")
    refused = api.mutate("writeJournalNote", {"caseId": case_id, "text": "Notat"}, NOTE, mother)
    assert refused["note"] is None and refused["errors"]
    api.ok("claimCase", {"caseId": case_id}, "case { id }", clinician)
    empty = api.mutate("writeJournalNote", {"caseId": case_id, "text": "  "}, NOTE, clinician)
    assert [(e["field"], e["code"]) for e in empty["errors"]] == [("text", "INVALID")]
