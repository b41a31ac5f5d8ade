"""The privacy policy's promises as behaviour (docs/privacy.md maps each promise to these tests):
encryption at rest, retention with statistics and tombstones, withdrawal of consent, the patient's rights
(export, rectification, restriction, erasure), and what a guardian may see. On the embedded default and on
PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, inspect, select, text
from starlette.testclient import TestClient

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.identity import persons
from legetime.core.identity.actors import SYSTEM
from legetime.core.platform.config import Settings
from legetime.core.platform.crypto import KeyUnavailable
from legetime.core.platform.db import models
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.runtime import Platform
from legetime.core.protection import content
from legetime.core.protection.retention import retention_deadline, run_retention
from legetime.schema.app import create_app
from legetime.schema.mutation import global_uuid
from tests.api import SUBMIT_FIELDS, Api, complete_answers
from tests.conftest import seed_demo
from tests.migrated import upgrade

MOTHER, CHILD = DEMO_PEOPLE[2].national_id, DEMO_PEOPLE[3].national_id
CLINICIAN, OPERATOR = DEMO_PEOPLE[0].national_id, DEMO_PEOPLE[1].national_id
SECRET_ANSWER = "Hoven kjertel bak venstre øre 7f3a"
SECRET_MESSAGE = "Feber om natten siden tirsdag 91c2"
SECRET_ANSWER_TEXT = "Ta kontakt med fastlegen for blodprøver 5d0e"
SECRET_JOURNAL = "Journal: lymfeknute 1 cm, ikke øm b44d"
SECRETS = [SECRET_ANSWER, SECRET_MESSAGE, SECRET_ANSWER_TEXT, SECRET_JOURNAL, MOTHER, CHILD]
CASE_FIELDS = """case(id: $id) { id number status answers retentionUntil communicationDeletedAt
  messages { body } attachments { url } payment { status captured }
  journalNotes { status text } }"""


@dataclass
class Stack:
    api: Api
    platform: Platform
    data_dir: Path


@pytest.fixture(params=["embedded", "postgres+redis"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    data_dir = tmp_path / "data"
    if request.param == "embedded":
        settings = Settings(data_dir=data_dir)
    else:
        settings = Settings(
            data_dir=data_dir,
            database_url=request.getfixturevalue("fresh_postgres_url"),
            redis_url=request.getfixturevalue("redis_url"),
            queue_namespace=f"legetime-test-{uuid.uuid4().hex[:8]}",
        )
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    platform = Platform.create(settings, load_entry_points=False)
    with TestClient(create_app(platform, run_jobs_in_process=True)) as client:
        yield Stack(Api(client), platform, data_dir)


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (80, 60), (30, 140, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def consultation(api: Api, *, close: bool = True) -> dict[str, Any]:
    """The mother's case for her child, with secrets in every kind of content, answered and (closed)."""
    mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
    api.ok("updateMyPhone", {"phone": "41234567"}, "me { phone }", mother)
    child = {"child": {"nationalId": CHILD, "givenName": "Ingrid", "guardianDeclared": True}}
    case_id = api.ok("startCase", child, "case { id }", mother)["case"]["id"]
    answers = [
        a if a["questionId"] != "main_complaint" else {**a, "value": SECRET_ANSWER}
        for a in complete_answers(api, for_child=True)
    ]
    api.ok("answerQuestionnaire", {"caseId": case_id, "answers": answers}, "case { id }", mother)
    texts = {
        t["purpose"]: t["version"] for t in api.gql("{ consentTexts { purpose version } }")["consentTexts"]
    }
    for purpose in ("COMMUNICATION_STORAGE", "IMAGE_STORAGE", "AI_JOURNAL"):
        consent = {"purpose": purpose, "textVersion": texts[purpose], "caseId": case_id}
        api.ok("grantConsent", consent, "consent { granted }", mother)
    attachment = api.upload(case_id, jpeg(), mother)["attachment"]
    image = api.client.get(attachment["url"]).content
    api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "s1"}, SUBMIT_FIELDS, mother)
    api.ok("claimCase", {"caseId": case_id}, "case { id }", clinician)
    api.ok("sendMessage", {"caseId": case_id, "body": "Har hun feber?"}, "case { id }", clinician)
    api.ok("sendMessage", {"caseId": case_id, "body": SECRET_MESSAGE}, "case { id }", mother)
    answer = {"caseId": case_id, "body": SECRET_ANSWER_TEXT, "outcome": "ADVICE"}
    api.ok("answerCase", answer, "case { id }", clinician)
    api.ok("draftJournalNote", {"caseId": case_id}, "case { id }", clinician)
    notes = api.wait_for(lambda: state(api, case_id, clinician)["journalNotes"], "a journal draft")
    api.ok(
        "approveJournalNote",
        {"noteId": note_id(api, case_id, clinician), "text": SECRET_JOURNAL},
        "note { id }",
        clinician,
    )
    assert notes
    if close:
        api.ok("closeCase", {"caseId": case_id}, "case { status }", mother)
        api.wait_for(lambda: state(api, case_id, mother)["payment"]["status"] == "captured", "the capture")
    return {
        "case_id": case_id,
        "mother": mother,
        "clinician": clinician,
        "image": image,
        "url": attachment["url"],
    }


def note_id(api: Api, case_id: str, token: str) -> str:
    query = "query($id: ID!) { case(id: $id) { journalNotes { id } } }"
    return str(api.gql(query, token, id=case_id)["case"]["journalNotes"][0]["id"])


def state(api: Api, case_id: str, token: str) -> dict[str, Any]:
    return dict(api.gql(f"query($id: ID!) {{ {CASE_FIELDS} }}", token, id=case_id)["case"])


def run(platform: Platform, coroutine: Any) -> Any:
    """Run core code against the platform's database from the test's thread (its own event loop)."""

    async def isolated() -> Any:
        fresh = Platform.create(platform.settings, load_entry_points=False)
        try:
            return await coroutine(fresh)
        finally:
            await fresh.close()

    return asyncio.run(isolated())


# --- what is stored --------------------------------------------------------------------------------


def database_values(platform: Platform) -> list[bytes]:
    """Every value of every row of every table, as bytes (text, JSON, binary alike)."""

    async def read(fresh: Platform) -> list[bytes]:
        values: list[bytes] = []
        async with fresh.db.engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            for table in tables:
                for row in (await connection.execute(text(f'SELECT * FROM "{table}"'))).all():
                    for value in row:
                        if isinstance(value, bytes | memoryview):
                            values.append(bytes(value))
                        elif value is not None:
                            values.append(json.dumps(value, default=str, ensure_ascii=False).encode())
                            values.append(str(value).encode())
        return values

    found: list[bytes] = run(platform, read)
    return found


def stored_files(data_dir: Path) -> list[bytes]:
    """Every file in the data directory: the SQLite database (all its pages, free ones too) and storage."""
    return [path.read_bytes() for path in data_dir.rglob("*") if path.is_file()]


def redis_values(platform: Platform) -> list[bytes]:
    if not platform.settings.redis_url:
        return []
    import redis

    client = redis.Redis.from_url(platform.settings.redis_url)
    return [client.dump(key) or b"" for key in client.scan_iter(f"{platform.settings.queue_namespace}*")]


def assert_no_plaintext(stack: Stack, secrets: list[str], image: bytes | None = None) -> None:
    haystacks = database_values(stack.platform) + stored_files(stack.data_dir) + redis_values(stack.platform)
    for secret in secrets:
        needle = secret.encode()
        assert not any(needle in hay for hay in haystacks), f"plaintext found: {secret!r}"
    if image is not None:
        chunk = image[200:264]  # past the JPEG header: pixel data
        assert not any(chunk in hay for hay in haystacks), "the plain image is stored"


# --- encryption at rest ----------------------------------------------------------------------------


def test_no_plaintext_health_content_or_national_id_is_stored(stack: Stack) -> None:
    world = consultation(stack.api)
    seen = state(stack.api, world["case_id"], world["mother"])
    assert seen["answers"]["main_complaint"] == SECRET_ANSWER  # readable through the API …
    assert SECRET_MESSAGE in [m["body"] for m in seen["messages"]]
    assert seen["journalNotes"][0]["text"] == SECRET_JOURNAL
    assert_no_plaintext(stack, SECRETS, world["image"])  # … and nowhere in the database or storage


def test_sealed_content_moved_to_another_case_does_not_open(stack: Stack) -> None:
    api = stack.api
    world = consultation(api, close=False)
    mother = world["mother"]
    other = api.ok("startCase", {}, "case { id }", mother)["case"]["id"]

    async def move(platform: Platform) -> None:
        async with platform.db.transaction() as session:
            source = await session.get(models.Case, global_uuid(world["case_id"]))
            target = await session.get(models.Case, global_uuid(other))
            assert source is not None and target is not None
            target.answers_sealed = source.answers_sealed

    run(stack.platform, move)
    result = api.raw("query($id: ID!) { case(id: $id) { answers } }", mother, id=other)
    assert result.get("errors"), "a ciphertext copied to another case must not decrypt"


# --- retention --------------------------------------------------------------------------------------


def test_retention_deletes_the_communication_and_keeps_what_the_law_requires(stack: Stack) -> None:
    api, platform = stack.api, stack.platform
    world = consultation(api)
    case_id = global_uuid(world["case_id"])
    closed = state(api, world["case_id"], world["mother"])
    deadline = retention_deadline(utcnow(), platform.settings.retention_months)
    assert closed["retentionUntil"] is not None

    early = run(
        platform, lambda p: run_retention(p, actor=SYSTEM, trigger="test", now=deadline - timedelta(hours=1))
    )
    assert early.cases == 0
    assert SECRET_MESSAGE in [m["body"] for m in state(api, world["case_id"], world["mother"])["messages"]]

    summary = run(
        platform, lambda p: run_retention(p, actor=SYSTEM, trigger="test", now=deadline + timedelta(days=1))
    )
    assert (summary.cases, summary.messages, summary.images) == (1, 3, 1)

    after = state(api, world["case_id"], world["mother"])
    assert after["communicationDeletedAt"] and after["answers"] == {} and after["messages"] == []
    assert after["attachments"] == [] and api.client.get(world["url"]).status_code == 404
    assert after["journalNotes"] == [{"status": "APPROVED", "text": SECRET_JOURNAL}]  # health-record law
    assert after["payment"] == {"status": "captured", "captured": 35000}  # accounting law

    async def kept(platform: Platform) -> dict[str, Any]:
        async with platform.db.transaction() as session:
            case = await session.get(models.Case, case_id)
            erasures = (await session.scalars(select(models.CaseErasure))).all()
            stats = (await session.scalars(select(models.CaseStatistic))).all()
            log = await session.scalar(
                select(func.count()).where(
                    models.AuditEvent.object_id == str(case_id),
                    models.AuditEvent.action == "erase_communication",
                )
            )
            return {"case": case, "erasures": erasures, "stats": stats, "log": log}

    found = run(platform, kept)
    assert found["case"].communication_key is None  # crypto-shredded
    [tombstone] = found["erasures"]
    assert tombstone.rule == "retention" and tombstone.deleted == {"answers": 1, "messages": 3, "images": 1}
    [statistic] = found["stats"]
    assert statistic.age_band == "6-11" and statistic.for_child and statistic.outcome == "advice"
    assert statistic.final_status == "closed" and statistic.response_minutes is not None
    assert not {"case_id", "person_id", "subject_id"} & set(models.CaseStatistic.__table__.columns.keys())
    assert found["log"] == 1
    assert_no_plaintext(stack, [SECRET_ANSWER, SECRET_MESSAGE, SECRET_ANSWER_TEXT], world["image"])

    again = run(
        platform, lambda p: run_retention(p, actor=SYSTEM, trigger="test", now=deadline + timedelta(days=2))
    )
    assert again.cases == 0  # idempotent: nothing is counted twice


def test_a_backup_is_unreadable_once_the_master_key_that_wrapped_it_is_retired(tmp_path: Path) -> None:
    """Crypto-shredding reaches backups: rotate the master key, retire the old one, and a backup taken
    before the purge no longer opens — while the live database does."""
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir)
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    platform = Platform.create(settings, load_entry_points=False)
    with TestClient(create_app(platform)) as client:
        world = consultation(Api(client))
    backup = tmp_path / "backup.db"
    shutil.copy(data_dir / "legetime.db", backup)

    from legetime.core.platform.crypto import generate_master_key_entry
    from legetime.core.protection.keys import rotate

    new_key = generate_master_key_entry("2027-01")
    rotating = Settings(data_dir=data_dir, master_keys=f"{new_key},local")
    summary = run(Platform.create(rotating, load_entry_points=False), lambda p: rotate(p))
    assert summary.rewrapped > 0 and summary.remaining == 0

    retired = Settings(data_dir=data_dir, master_keys=new_key)  # the old key is gone
    with TestClient(create_app(Platform.create(retired, load_entry_points=False))) as client:
        api = Api(client)
        mother = api.login(MOTHER)
        assert state(api, world["case_id"], mother)["answers"]["main_complaint"] == SECRET_ANSWER

    async def open_backup(platform: Platform) -> None:
        async with platform.db.transaction() as session:
            case = await session.get(models.Case, global_uuid(world["case_id"]))
            assert case is not None
            with pytest.raises(KeyUnavailable):
                content.answers(platform.keyring, case)

    from_backup = Settings(
        data_dir=data_dir, master_keys=new_key, database_url=f"sqlite+aiosqlite:///{backup}"
    )
    run(Platform.create(from_backup, load_entry_points=False), open_backup)


def test_purge_from_the_cli_with_dry_run_and_summary(tmp_path: Path) -> None:
    from tests.cli import run_cli

    settings = Settings(data_dir=tmp_path / "data", retention_months=0)
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    with TestClient(create_app(Platform.create(settings, load_entry_points=False))) as client:
        consultation(Api(client))
    env = {"LEGETIME_DATA_DIR": str(tmp_path / "data"), "LEGETIME_RETENTION_MONTHS": "0"}
    dry = run_cli("purge", "--dry-run", env=env)
    assert dry.returncode == 0 and "Would delete the communication of 1 case" in dry.stdout, dry.stdout
    done = run_cli("purge", env=env)
    assert done.returncode == 0 and "Deleted the communication of 1 case" in done.stdout, done.stdout
    assert "messages" in done.stdout and "3" in done.stdout
    again = run_cli("purge", env=env)
    assert "of 0 case" in again.stdout


def test_operators_purge_through_graphql_and_see_the_runs(stack: Stack) -> None:
    api = stack.api
    mother = api.login(MOTHER)
    operator = api.login(OPERATOR)
    fields = "cases messages images appointments dryRun"
    denied = api.mutate("runPurge", {"dryRun": True}, fields, mother)
    assert denied["errors"][0]["code"] == "FORBIDDEN"
    assert api.ok("runPurge", {"dryRun": True}, fields, operator)["dryRun"] is True
    done = api.ok("runPurge", {"dryRun": False}, fields, operator)
    assert (done["cases"], done["appointments"]) == (0, 0)
    runs = api.gql("{ retentionRuns { rule trigger dryRun finishedAt } }", operator)["retentionRuns"]
    assert {r["rule"] for r in runs} == {"retention", "appointment_retention"}  # cases, appointments
    runs = [r for r in runs if r["rule"] == "retention"]
    assert [(r["trigger"], r["dryRun"]) for r in runs] == [("graphql", False), ("graphql", True)]
    assert all(r["finishedAt"] for r in runs)
    assert api.raw("{ retentionRuns { rule } }", mother)["errors"]


# --- consent ---------------------------------------------------------------------------------------


ERASURE = "erasure { rule cases answers messages images pending kept { what why } }"


def test_withdrawing_storage_consent_deletes_the_communication_at_once(stack: Stack) -> None:
    api = stack.api
    world = consultation(api)
    mother = world["mother"]
    open_case = api.ok("startCase", {}, "case { id number }", mother)["case"]
    withdrawn = api.ok(
        "withdrawConsent", {"purpose": "COMMUNICATION_STORAGE"}, f"consent {{ granted }} {ERASURE}", mother
    )
    account = withdrawn["erasure"]
    assert withdrawn["consent"]["granted"] is False
    assert (
        account["rule"] == "consent_withdrawn" and len(account["cases"]) == 2
    )  # the closed case and the draft
    assert (account["answers"], account["messages"], account["images"]) == (1, 3, 1)
    assert {k["what"] for k in account["kept"]} >= {
        "Journalnotater",
        "Betalingsopplysninger",
        "Tilgangsloggen",
    }
    assert all(k["why"] for k in account["kept"])
    operator = api.login(OPERATOR)
    runs = api.gql("{ retentionRuns { rule trigger cases messages } }", operator)["retentionRuns"]
    assert runs[0] == {"rule": "consent_withdrawn", "trigger": "patient", "cases": 2, "messages": 3}
    after = state(api, world["case_id"], mother)
    assert after["messages"] == [] and after["answers"] == {} and after["journalNotes"]
    assert state(api, open_case["id"], mother)["status"] == "CANCELLED"
    api.wait_for(lambda: api.client.get(world["url"]).status_code == 404, "the image gone")
    assert_no_plaintext(stack, [SECRET_ANSWER, SECRET_MESSAGE, SECRET_ANSWER_TEXT], world["image"])


def test_a_case_in_progress_is_erased_when_it_ends_after_withdrawal(stack: Stack) -> None:
    api = stack.api
    world = consultation(api, close=False)  # answered, not closed
    mother = world["mother"]
    withdrawn = api.ok(
        "withdrawConsent", {"purpose": "COMMUNICATION_STORAGE", "caseId": world["case_id"]}, ERASURE, mother
    )
    assert withdrawn["erasure"]["cases"] == [] and len(withdrawn["erasure"]["pending"]) == 1
    assert state(api, world["case_id"], mother)["messages"]  # still in progress: kept for now
    api.ok("closeCase", {"caseId": world["case_id"]}, "case { status }", mother)
    gone = api.wait_for(
        lambda: (s := state(api, world["case_id"], mother))["communicationDeletedAt"] and s, "the erasure"
    )
    assert gone["messages"] == [] and gone["payment"]["status"] in ("authorized", "captured")


def test_withdrawing_image_consent_deletes_the_images_and_keeps_the_rest(stack: Stack) -> None:
    api = stack.api
    world = consultation(api)
    mother = world["mother"]
    withdrawn = api.ok(
        "withdrawConsent", {"purpose": "IMAGE_STORAGE"}, f"consent {{ granted }} {ERASURE}", mother
    )
    account = withdrawn["erasure"]
    assert withdrawn["consent"]["granted"] is False
    assert account["rule"] == "image_consent_withdrawn" and len(account["cases"]) == 1
    assert (account["answers"], account["messages"], account["images"], account["pending"]) == (0, 0, 1, [])
    assert "Svar og meldinger" in {k["what"] for k in account["kept"]}
    after = state(api, world["case_id"], mother)
    assert after["attachments"] == [] and after["messages"] and after["answers"]
    assert after["communicationDeletedAt"] is None and after["journalNotes"]
    api.wait_for(lambda: api.client.get(world["url"]).status_code == 404, "the image gone")
    assert_no_plaintext(stack, [], world["image"])
    operator = api.login(OPERATOR)
    runs = api.gql("{ retentionRuns { rule trigger cases images } }", operator)["retentionRuns"]
    assert runs[0] == {"rule": "image_consent_withdrawn", "trigger": "patient", "cases": 1, "images": 1}


def test_images_of_a_case_in_progress_go_when_it_ends_after_image_consent_is_withdrawn(stack: Stack) -> None:
    api = stack.api
    world = consultation(api, close=False)
    mother, case_id = world["mother"], world["case_id"]
    withdrawn = api.ok("withdrawConsent", {"purpose": "IMAGE_STORAGE", "caseId": case_id}, ERASURE, mother)
    assert withdrawn["erasure"]["cases"] == [] and len(withdrawn["erasure"]["pending"]) == 1
    assert state(api, case_id, mother)["attachments"]  # the clinician may still be looking at it
    api.ok("closeCase", {"caseId": case_id}, "case { status }", mother)
    api.wait_for(lambda: state(api, case_id, mother)["attachments"] == [], "the images deleted")
    api.wait_for(lambda: api.client.get(world["url"]).status_code == 404, "the image gone from storage")
    after = state(api, case_id, mother)
    assert after["messages"] and after["communicationDeletedAt"] is None


def test_withdrawing_ai_consent_stops_a_pending_draft(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    platform = Platform.create(settings, load_entry_points=False)
    with TestClient(create_app(platform, run_jobs_in_process=False)) as client:  # jobs wait
        api = Api(client)
        mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
        case_id = api.ok("startCase", {}, "case { id }", mother)["case"]["id"]
        api.ok(
            "answerQuestionnaire",
            {"caseId": case_id, "answers": complete_answers(api, for_child=False)},
            "case { id }",
            mother,
        )
        texts = {
            t["purpose"]: t["version"]
            for t in api.gql("{ consentTexts { purpose version } }")["consentTexts"]
        }
        for purpose in ("COMMUNICATION_STORAGE", "AI_JOURNAL"):
            api.ok(
                "grantConsent",
                {"purpose": purpose, "textVersion": texts[purpose]},
                "consent { granted }",
                mother,
            )
        api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "k"}, SUBMIT_FIELDS, mother)
        api.ok("claimCase", {"caseId": case_id}, "case { id }", clinician)
        api.ok("draftJournalNote", {"caseId": case_id}, "case { id }", clinician)  # the job is queued
        api.ok("withdrawConsent", {"purpose": "AI_JOURNAL"}, "consent { granted }", mother)

    async def deliver(fresh: Platform) -> int:
        from legetime.core.consultation.journal import draft_job
        from legetime.core.platform.jobs.types import JobContext

        async with fresh.db.transaction() as session:
            job = await session.scalar(
                select(models.OutboxJob).where(models.OutboxJob.name == "journal.draft")
            )
            assert job is not None
            await draft_job(JobContext(fresh, session, str(job.id), 1), dict(job.payload))
        async with fresh.db.transaction() as session:
            return int(await session.scalar(select(func.count()).select_from(models.JournalNote)) or 0)

    assert run(platform, deliver) == 0


# --- rights ----------------------------------------------------------------------------------------


def test_export_contains_everything_held_about_her(stack: Stack) -> None:
    api = stack.api
    world = consultation(api)
    exported = api.gql("{ exportMyData }", world["mother"])["exportMyData"]
    assert exported["format"] == "legetime.export.v1"
    assert exported["person"]["nationalId"] == MOTHER and exported["person"]["phone"] == "+4741234567"
    [case] = exported["cases"]
    assert case["openedBy"] == "guardian"
    # a guardian is shown of the child only what her own input gave (see rights.patient_seen_by)
    assert case["patient"] == {"givenName": "Ingrid", "familyName": "", "birthDate": "2015-12-05"}
    assert case["answers"]["main_complaint"] == SECRET_ANSWER
    assert [m["body"] for m in case["messages"]][1:] == [SECRET_MESSAGE, SECRET_ANSWER_TEXT]
    assert case["journalNotes"][0]["text"] == SECRET_JOURNAL
    assert case["images"][0]["contentType"] == "image/jpeg"
    assert api.client.get(case["images"][0]["url"]).content == world["image"]  # the image itself
    assert case["payments"][0]["captured"] == 35000
    assert {c["purpose"] for c in exported["consents"]} == {
        "communication_storage",
        "image_storage",
        "ai_journal",
    }
    roles = {e["actorRole"] for e in exported["accessLog"]}
    assert {"patient", "clinician"} <= roles
    again = api.gql("{ exportMyData }", world["mother"])["exportMyData"]
    assert any(e["action"] == "export" for e in again["accessLog"])  # the export itself is logged
    assert api.raw("{ exportMyData }")["errors"]  # anonymous: nothing


def test_rectification_of_name_survives_the_next_login(stack: Stack) -> None:
    api = stack.api
    mother = api.login(MOTHER)
    fixed = api.ok(
        "rectifyMyName", {"givenName": "Sofie Marie", "familyName": "Johansen"}, "me { givenName }", mother
    )
    assert fixed["me"]["givenName"] == "Sofie Marie"
    again = api.login(MOTHER)
    assert api.gql("{ me { givenName } }", again)["me"]["givenName"] == "Sofie Marie"
    empty = api.mutate("rectifyMyName", {"givenName": " ", "familyName": "X"}, "me { givenName }", mother)
    assert empty["errors"][0]["field"] == "givenName"


def test_restriction_blocks_new_processing_until_lifted(stack: Stack) -> None:
    api = stack.api
    mother = api.login(MOTHER)
    restricted = api.ok("restrictProcessing", {"restricted": True}, "me { restrictedSince }", mother)
    assert restricted["me"]["restrictedSince"]
    refused = api.mutate("startCase", {}, "case { id }", mother)
    assert refused["errors"][0]["code"] == "PROCESSING_RESTRICTED" and refused["case"] is None
    assert api.gql("{ exportMyData }", mother)["exportMyData"]["person"][
        "restrictedSince"
    ]  # access still works
    api.ok("restrictProcessing", {"restricted": False}, "me { restrictedSince }", mother)
    assert api.ok("startCase", {}, "case { id }", mother)["case"]["id"]


def test_erasure_request_erases_what_no_duty_keeps_and_reports_the_rest(stack: Stack) -> None:
    api = stack.api
    world = consultation(api)
    mother = world["mother"]
    account = api.gql(f"mutation {{ requestErasure {{ {ERASURE} errors {{ code }} }} }}", mother)[
        "requestErasure"
    ]["erasure"]
    assert account["rule"] == "erasure_request" and len(account["cases"]) == 1 and account["messages"] == 3
    assert "Navn og fødselsnummer" in {k["what"] for k in account["kept"]}
    again = api.login(MOTHER)  # her sessions ended with the erasure
    assert api.gql("{ me { phone } }", again)["me"]["phone"] is None
    after = state(api, world["case_id"], again)
    assert after["messages"] == [] and after["journalNotes"][0]["text"] == SECRET_JOURNAL


def test_erasure_ends_every_session_of_hers(stack: Stack) -> None:
    """After requestErasure the token she used and the one of her other login are worth nothing; nobody
    else is logged out, and she may log in again (her journal notes are still hers to read)."""
    api = stack.api
    mother, other_device, clinician = api.login(MOTHER), api.login(MOTHER), api.login(CLINICIAN)
    erased = api.gql(f"mutation {{ requestErasure {{ {ERASURE} errors {{ code }} }} }}", mother)
    assert erased["requestErasure"]["errors"] == [] and erased["requestErasure"]["erasure"]
    for token in (mother, other_device):
        assert api.gql("{ me { givenName } }", token)["me"] is None
        refused = api.mutate("startCase", {}, "case { id }", token)
        assert refused["case"] is None and refused["errors"][0]["code"] == "UNAUTHENTICATED"
        assert api.raw("{ exportMyData }", token)["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert api.gql("{ me { roles } }", clinician)["me"]["roles"] == ["patient", "clinician"]
    again = api.login(MOTHER)
    assert api.gql("{ exportMyData }", again)["exportMyData"]["person"]["nationalId"] == MOTHER


# --- guardians ---------------------------------------------------------------------------------------


def test_a_self_declared_guardian_sees_only_what_concerns_her_own_cases(stack: Stack) -> None:
    """An unrelated adult declares guardianship of a child the mother registered. She learns nothing
    about the child that someone else entered (the name), nothing of the mother's case (its access-log
    entries: from before she came, by others, or new ones), and nothing that tells her the child was
    registered before: she sees the same as for a child nobody registered."""
    from legetime.core.identity.nationalid import parse_national_id
    from tests.support import synthetic_national_id

    api = stack.api
    world = consultation(api, close=False)  # the mother's case for Ingrid: submitted, answered, a note
    mother, clinician = world["mother"], world["clinician"]
    stranger = api.login(synthetic_national_id(date(1983, 4, 4)))

    def start(national_id: str) -> dict[str, Any]:
        child = {"nationalId": national_id, "givenName": "Kari", "guardianDeclared": True}
        fields = "case { id number patient { givenName familyName birthDate age } }"
        return dict(api.ok("startCase", {"child": child}, fields, stranger)["case"])

    theirs, fresh = start(CHILD), start(synthetic_national_id(date(2016, 5, 5)))  # nobody knows the 2nd
    # the birth date follows from the national ID she typed, the name is the one she gave: the same
    # whether or not someone registered the child first
    assert theirs["patient"]["birthDate"] == parse_national_id(CHILD).birth_date.isoformat()
    named = {"givenName": "Kari", "familyName": ""}
    assert {k: theirs["patient"][k] for k in named} == {k: fresh["patient"][k] for k in named} == named
    patient = "query($id: ID!) { case(id: $id) { patient { givenName familyName } } }"
    assert api.gql(patient, stranger, id=theirs["id"])["case"]["patient"] == named
    # each guardian's case names the child as she gave it, to her and to the clinician treating it
    for token in (mother, clinician):
        assert api.gql(patient, token, id=world["case_id"])["case"]["patient"]["givenName"] == "Ingrid"

    def her_export() -> dict[str, Any]:
        return dict(api.gql("{ exportMyData }", stranger)["exportMyData"])

    exported, mine = her_export(), {theirs["number"], fresh["number"]}
    assert {case["number"] for case in exported["cases"]} == mine
    about_others = json.dumps({k: v for k, v in exported.items() if k != "person"})  # "person" is her own
    assert DEMO_PEOPLE[3].given_name not in about_others and DEMO_PEOPLE[3].family_name not in about_others
    assert {e["actorRole"] for e in exported["accessLog"]} == {"patient"}  # nobody else touched her cases
    assert {e["case"] for e in exported["accessLog"] if e["about"] != "me"} <= mine
    assert not {"submit", "claim", "answer", "approve"} & {e["action"] for e in exported["accessLog"]}
    # what happens on the mother's case later does not reach her either
    api.gql("query($id: ID!) { case(id: $id) { number } }", clinician, id=world["case_id"])
    api.ok("closeCase", {"caseId": world["case_id"]}, "case { status }", mother)
    later = her_export()["accessLog"]
    assert {e["actorRole"] for e in later} == {"patient"} and "close" not in {e["action"] for e in later}
    assert {e["case"] for e in later if e["about"] != "me"} <= mine
    log = api.gql("{ myAccessLog(first: 100) { actorRole action } }", stranger)["myAccessLog"]
    assert log and {e["actorRole"] for e in log} == {"patient"}
    # and the mother's export holds nothing of the stranger's case
    hers = api.gql("{ exportMyData }", mother)["exportMyData"]
    numbers = {case["number"] for case in hers["cases"]}
    assert {e["case"] for e in hers["accessLog"] if e["about"] != "me"} <= numbers
    assert {"claim", "answer", "approve"} <= {e["action"] for e in hers["accessLog"]}


def test_a_guardian_loses_access_on_the_childs_16th_birthday(tmp_path: Path) -> None:
    from legetime.core.consultation.access import as_patient, load_case
    from legetime.core.identity.ctx import Ctx
    from legetime.core.platform.errors import NotFound
    from tests.support import synthetic_national_id

    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    today = utcnow().astimezone(settings.zone).date()  # the service's day (Oslo), as ages are counted
    teenager = synthetic_national_id(date(today.year - 16, today.month, today.day) + timedelta(days=1))
    platform = Platform.create(settings, load_entry_points=False)
    with TestClient(create_app(platform)) as client:
        api = Api(client)
        mother = api.login(MOTHER)
        child = {"child": {"nationalId": teenager, "guardianDeclared": True}}
        case_id = global_uuid(api.ok("startCase", child, "case { id }", mother)["case"]["id"])
        assert state(api, str(case_id), mother)["status"] == "DRAFT"  # 15 today: the guardian reads it

    async def read_on(fresh: Platform, day: date) -> bool:
        async with fresh.db.transaction() as session:
            person = await persons.find_person(session, fresh, MOTHER)
            assert person is not None
            from legetime.core.identity.actors import Actor

            now = utcnow().replace(year=day.year, month=day.month, day=day.day, hour=12)
            ctx = Ctx(session=session, platform=fresh, actor=Actor(person_id=person.id), now=now)
            try:
                await load_case(ctx, case_id, as_patient(ctx.actor, ctx.today))
                return True
            except NotFound:
                return False

    birthday = date(today.year, today.month, today.day) + timedelta(days=1)
    assert run(platform, lambda p: read_on(p, birthday - timedelta(days=1))) is True
    assert run(platform, lambda p: read_on(p, birthday)) is False


def test_a_clinician_withholds_a_message_from_the_guardian_of_a_12_to_16_year_old(stack: Stack) -> None:
    from tests.support import synthetic_national_id

    api = stack.api
    mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
    today = utcnow().date()
    teenager = synthetic_national_id(date(today.year - 14, 3, 1))
    child = {"child": {"nationalId": teenager, "guardianDeclared": True}}
    case_id = api.ok("startCase", child, "case { id }", mother)["case"]["id"]
    api.ok(
        "answerQuestionnaire",
        {"caseId": case_id, "answers": complete_answers(api, for_child=True)},
        "case { id }",
        mother,
    )
    version = api.gql("{ consentTexts { purpose version } }")["consentTexts"][0]["version"]
    api.ok(
        "grantConsent",
        {"purpose": "COMMUNICATION_STORAGE", "textVersion": version, "caseId": case_id},
        "consent { granted }",
        mother,
    )
    api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "k"}, SUBMIT_FIELDS, mother)
    api.ok("claimCase", {"caseId": case_id}, "case { id }", clinician)
    sent = api.ok(
        "sendMessage", {"caseId": case_id, "body": "Til deg alene: ring oss."}, "message { id }", clinician
    )
    message_id = sent["message"]["id"]
    api.ok("setWithheldFromGuardian", {"messageId": message_id, "withheld": True}, "case { id }", clinician)
    query = "query($id: ID!) { case(id: $id) { messages { body withheldFromGuardian } } }"
    assert api.gql(query, mother, id=case_id)["case"]["messages"] == []
    assert api.gql(query, clinician, id=case_id)["case"]["messages"] == [
        {"body": "Til deg alene: ring oss.", "withheldFromGuardian": True}
    ]
    assert api.gql("{ exportMyData }", mother)["exportMyData"]["cases"][0]["messages"] == []
    refused = api.mutate("setWithheldFromGuardian", {"messageId": message_id}, "case { id }", mother)
    assert refused["errors"][0]["code"] == "NOT_FOUND"


def test_nothing_is_withheld_for_a_child_under_12(stack: Stack) -> None:
    api = stack.api
    world = consultation(api, close=False)  # Ingrid is 10
    query = "query($id: ID!) { case(id: $id) { journalNotes { id } } }"
    note = api.gql(query, world["clinician"], id=world["case_id"])["case"]["journalNotes"][0]["id"]
    refused = api.mutate("setWithheldFromGuardian", {"noteId": note}, "case { id }", world["clinician"])
    assert refused["errors"][0]["code"] == "INVALID" and refused["errors"][0]["field"] == "noteId"


def test_every_staff_read_is_logged(stack: Stack) -> None:
    api = stack.api
    world = consultation(api, close=False)
    clinician = world["clinician"]
    case_id = global_uuid(world["case_id"])

    async def staff_entries(platform: Platform) -> list[tuple[str, str, str | None]]:
        async with platform.db.transaction() as session:
            rows = await session.execute(
                select(models.AuditEvent.action, models.AuditEvent.actor_role, models.AuditEvent.reason)
                .where(
                    models.AuditEvent.object_id == str(case_id), models.AuditEvent.actor_role == "clinician"
                )
                .order_by(models.AuditEvent.id)
            )
            return [tuple(row) for row in rows.all()]  # type: ignore[misc]

    before = run(stack.platform, staff_entries)
    api.gql("query($id: ID!) { case(id: $id) { number } }", clinician, id=world["case_id"])
    api.gql("{ caseQueue(first: 5) { edges { node { id } } } }", clinician)
    note = note_id(api, world["case_id"], clinician)
    api.gql("query($id: ID!) { node(id: $id) { id } }", clinician, id=note)
    after = run(stack.platform, staff_entries)
    new = after[len(before) :]
    assert ("read", "clinician", "treatment") in new  # the case, and the note's case
    assert len([entry for entry in new if entry[0] == "read"]) >= 3
    assert all(reason == "treatment" for _, _, reason in new)
