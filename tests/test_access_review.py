"""A privacy officer reviews the access log through GraphQL: unusual reads are found and flagged, normal ones
are not, filters narrow, her own reviews are logged, exports parse and carry the chain's status; nobody
else may review. The search runs on SQLite and PostgreSQL (row comparisons, time ranges, the flags)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from starlette.testclient import TestClient

from legetime.core.demo import DEMO_PEOPLE, create_demo_data
from legetime.core.identity import persons
from legetime.core.identity.nationalid import parse_national_id
from legetime.core.platform.config import Settings
from legetime.core.platform.db import models
from legetime.core.platform.db.engine import Database
from legetime.core.platform.runtime import Platform
from legetime.core.protection import audit
from legetime.core.protection.access_review import MANY_PATIENTS, MANY_PATIENTS_MINUTES, bursts
from legetime.schema.app import create_app
from tests.api import SUBMIT_FIELDS, Api, complete_answers
from tests.migrated import upgrade
from tests.support import person_row, synthetic_national_id

CLINICIAN, OPERATOR, MOTHER = (p.national_id for p in DEMO_PEOPLE[:3])
OTHER_CLINICIAN = synthetic_national_id(date(1975, 5, 5), female=False)
OFFICER = synthetic_national_id(date(1980, 2, 2))
OSLO = ZoneInfo("Europe/Oslo")

REVIEW = """
query($filter: AccessLogFilter!, $first: Int, $after: String, $flaggedOnly: Boolean! = false) {
  accessLogReview(filter: $filter, first: $first, after: $after, flaggedOnly: $flaggedOnly) {
    entries { id occurredAt actor { id name } actorRole patient { id name } objectType objectId action
              reason chained flags }
    pageInfo { hasNextPage endCursor }
  }
}"""
EXPORT = """
query($filter: AccessLogFilter!, $format: AccessLogExportFormat!) {
  exportAccessLog(filter: $filter, format: $format) {
    format content rows truncated limit
    verification { state checkedRows unchainedRows firstBrokenId reason }
  }
}"""


@dataclass
class World:
    api: Api
    platform: Platform
    tokens: dict[str, str]
    ids: dict[str, str]
    case_id: str
    case_number: str
    period: dict[str, str]
    names: dict[str, str]
    """Names as the identity provider gave them at login."""

    def run(self, work: Any) -> Any:
        """Work on the database directly, as the sequencer or someone with write access to it would."""

        async def go() -> Any:
            database = Database(self.platform.settings.resolved_database_url)
            try:
                return await work(database)
            finally:
                await database.dispose()

        return asyncio.run(go())

    def review(self, token: str = "", *, flagged_only: bool = False, first: int = 100, **filter: Any) -> Any:
        answer = self.api.gql(
            REVIEW,
            token or self.tokens["officer"],
            filter={**self.period, **filter},
            first=first,
            flaggedOnly=flagged_only,
        )
        return answer["accessLogReview"]

    def all_entries(self, **filter: Any) -> list[dict[str, Any]]:
        entries, after = [], None
        while True:
            page = self.api.gql(
                REVIEW, self.tokens["officer"], filter={**self.period, **filter}, first=100, after=after
            )["accessLogReview"]
            entries += page["entries"]
            if not page["pageInfo"]["hasNextPage"]:
                return entries
            after = page["pageInfo"]["endCursor"]

    def export(self, fmt: str, **filter: Any) -> dict[str, Any]:
        answer = self.api.gql(EXPORT, self.tokens["officer"], filter={**self.period, **filter}, format=fmt)
        return dict(answer["exportAccessLog"])


def _oslo(days_ago: int, hour: int, minute: int = 0) -> datetime:
    day = datetime.now(OSLO).date() - timedelta(days=days_ago)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=OSLO).astimezone(UTC)


def _at_night(occurred_at: str) -> bool:
    hour = datetime.fromisoformat(occurred_at).astimezone(OSLO).hour
    return hour >= 22 or hour < 6


async def _people_and_planted_reads(settings: Settings) -> dict[str, str]:
    """Demo staff and family, another clinician, a privacy officer (her role given in the database, as
    staff management would), and reads planted in the past: one at night, a burst of one patient more
    than the limit, and a run of exactly the limit (not a burst)."""
    platform = Platform.create(settings, load_entry_points=False)
    try:
        await create_demo_data(platform)
        ids: dict[str, str] = {}
        async with platform.db.transaction() as session:
            for name, national_id, role, given in (
                ("per", OTHER_CLINICIAN, models.StaffRole.CLINICIAN, "Per"),
                ("officer", OFFICER, models.StaffRole.PRIVACY_OFFICER, "Pia"),
            ):
                person = persons.new_person(
                    platform,
                    national_id,
                    given_name=given,
                    family_name="Ansatt",
                    birth_date=parse_national_id(national_id).birth_date,
                )
                session.add(person)
                await session.flush()
                session.add(models.StaffMembership(person_id=person.id, role=role))
                ids[name] = str(person.id)
            for name, national_id in (("nora", CLINICIAN), ("lars", OPERATOR), ("mother", MOTHER)):
                found = await persons.find_person(session, platform, national_id)
                assert found is not None
                ids[name] = str(found.id)
            patients = [
                person_row(synthetic_national_id(date(1960, 1, 1), skip=i), given_name=f"P{i}")
                for i in range(MANY_PATIENTS + 1)
            ]
            session.add_all(patients)
            await session.flush()
            nora, lars, per, mother = (uuid.UUID(ids[n]) for n in ("nora", "lars", "per", "mother"))

            async def read(actor: uuid.UUID, role: str, person: uuid.UUID, at: datetime) -> None:
                await audit.record(
                    session,
                    actor_id=actor,
                    actor_role=role,
                    person_id=person,
                    object_type="person",
                    object_id=str(person),
                    action="read",
                    at=at,
                )

            await read(nora, "clinician", mother, _oslo(1, 23, 30))
            for i, patient in enumerate(patients):  # 16 patients in 5 minutes
                await read(lars, "operator", patient.id, _oslo(2, 10) + timedelta(seconds=20 * i))
            for i, patient in enumerate(patients[:MANY_PATIENTS]):  # 15 in 5 minutes: the limit, not over
                await read(per, "clinician", patient.id, _oslo(2, 14) + timedelta(seconds=20 * i))
        return ids
    finally:
        await platform.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """The planted reads, and a real one: the other clinician opens the mother's case from the queue, then
    Nora claims it and reads it. Jobs do not run: the sequencer runs when a test says so."""
    database_url = request.getfixturevalue("fresh_postgres_url") if request.param == "postgresql" else None
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    upgrade(settings.resolved_database_url)
    ids = asyncio.run(_people_and_planted_reads(settings))
    platform = Platform.create(settings, load_entry_points=False)
    with TestClient(create_app(platform, run_jobs_in_process=False)) as client:
        api = Api(client)
        tokens = {
            name: api.login(nid)
            for name, nid in (
                ("mother", MOTHER),
                ("nora", CLINICIAN),
                ("lars", OPERATOR),
                ("per", OTHER_CLINICIAN),
                ("officer", OFFICER),
            )
        }
        mother = tokens["mother"]
        case_id = api.ok("startCase", {}, "case { id }", mother)["case"]["id"]
        answers = complete_answers(api, for_child=False)
        api.ok("answerQuestionnaire", {"caseId": case_id, "answers": answers}, "case { id }", mother)
        texts = {
            t["purpose"]: t["version"]
            for t in api.gql("{ consentTexts { purpose version } }")["consentTexts"]
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
        submitted = api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "s"}, SUBMIT_FIELDS, mother)
        case_query = "query($id: ID!) { case(id: $id) { id status } }"
        assert api.gql(case_query, tokens["per"], id=case_id)["case"]["id"] == case_id  # from the queue
        api.gql("{ caseQueue { edges { node { id } } } }", tokens["per"])  # a page of the queue: not flagged
        api.ok("claimCase", {"caseId": case_id}, "case { id }", tokens["nora"])
        api.gql(case_query, tokens["nora"], id=case_id)
        now = datetime.now(UTC)
        period = {"from": (now - timedelta(days=3)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
        names = {}
        for name, token in tokens.items():
            me = api.gql("{ me { givenName familyName } }", token)["me"]
            names[name] = f"{me['givenName']} {me['familyName']}"
        yield World(api, platform, tokens, ids, case_id, submitted["case"]["number"], period, names)


def _of(entries: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    def fits(entry: dict[str, Any]) -> bool:
        for key, value in match.items():
            got = entry[key]["id"] if key in ("actor", "patient") and entry[key] else entry[key]
            if got != value:
                return False
        return True

    return [e for e in entries if fits(e)]


def _case_uuid(world: World) -> str:
    from legetime.schema.mutation import global_uuid

    return str(global_uuid(world.case_id))


def test_a_privacy_officers_search_finds_planted_unusual_reads_and_is_itself_logged(world: World) -> None:
    ids, case = world.ids, _case_uuid(world)
    entries = world.all_entries()

    # the other clinician opened a case she was never assigned: flagged; Nora's read of her own claimed case
    # is not (only the time of day may flag it, if this test runs at night)
    (per_read,) = _of(entries, actor=ids["per"], objectType="case", objectId=case, action="read")
    assert "UNASSIGNED_CASE" in per_read["flags"]
    assert per_read["actor"]["name"] == world.names["per"] and per_read["actorRole"] == "clinician"
    assert per_read["patient"] == {"id": ids["mother"], "name": world.names["mother"]}
    assert per_read["reason"] == "treatment"
    (nora_read,) = _of(entries, actor=ids["nora"], objectType="case", action="read")
    assert nora_read["flags"] == (["NIGHT"] if _at_night(nora_read["occurredAt"]) else [])
    queue = _of(entries, actor=ids["per"], action="list")
    assert queue and all("UNASSIGNED_CASE" not in e["flags"] for e in queue)

    (night,) = _of(entries, actor=ids["nora"], objectType="person")
    assert night["flags"] == ["NIGHT"]
    burst = _of(entries, actor=ids["lars"], action="read")
    assert len(burst) == MANY_PATIENTS + 1 and all(e["flags"] == ["MANY_PATIENTS"] for e in burst)
    at_the_limit = _of(entries, actor=ids["per"], objectType="person")
    assert len(at_the_limit) == MANY_PATIENTS and all(e["flags"] == [] for e in at_the_limit)

    flagged = world.review(flagged_only=True)
    assert not flagged["pageInfo"]["hasNextPage"]
    assert all(e["flags"] for e in flagged["entries"])
    flagged_ids = {e["id"] for e in flagged["entries"]}
    assert {per_read["id"], night["id"]} | {e["id"] for e in burst} <= flagged_ids
    assert not flagged_ids & {e["id"] for e in at_the_limit}

    # her own searches are in the log: by her, with the filter's kind and never its values
    mine = _of(world.all_entries(staffId=ids["officer"]), action="review_access_log")
    assert len(mine) >= 3
    assert {e["actorRole"] for e in mine} == {"privacy_officer"}
    assert {e["objectType"] for e in mine} == {"access_log"}
    assert {e["objectId"] for e in mine} >= {"period", "period+flagged"}
    assert {world.names["mother"], "P0 Nordmann"} <= {e["patient"]["name"] for e in mine if e["patient"]}

    # a search by national ID: the patient sees it in her own access log; the ID is in no entry
    by_id = world.review(patientNationalId=MOTHER)["entries"]
    assert by_id and {e["patient"]["id"] for e in by_id} == {ids["mother"]}
    log = world.api.gql("{ myAccessLog(first: 100) { actorName actorRole action } }", world.tokens["mother"])
    assert {
        "actorName": world.names["officer"],
        "actorRole": "privacy_officer",
        "action": "review_access_log",
    } in log["myAccessLog"]

    async def stored(database: Database) -> list[str]:
        async with database.transaction() as session:
            return [str(tuple(row)) for row in await session.execute(select(models.AuditEvent.__table__))]

    assert not [row for row in world.run(stored) if MOTHER in row]


def test_filters_narrow_the_search_and_pages_follow_on(world: World) -> None:
    ids, case = world.ids, _case_uuid(world)
    not_reviews = lambda entries: [e for e in entries if e["action"] != "review_access_log"]  # noqa: E731

    by_patient = not_reviews(world.all_entries(patientId=ids["mother"]))
    assert by_patient and {e["patient"]["id"] for e in by_patient} == {ids["mother"]}
    by_national_id = not_reviews(world.all_entries(patientNationalId=f" {MOTHER} "))
    assert [e["id"] for e in by_national_id] == [e["id"] for e in by_patient]

    by_case = world.all_entries(caseNumber=world.case_number.lower())
    assert {e["objectType"] for e in by_case} == {"case", "consent"}
    assert {e["objectId"] for e in by_case if e["objectType"] == "case"} == {case}
    assert {"create", "grant", "submit", "read", "claim"} <= {e["action"] for e in by_case}
    assert not _of(by_case, objectType="person")

    claims = world.all_entries(caseNumber=world.case_number, action="claim")
    assert [(e["actor"]["id"], e["action"]) for e in claims] == [(ids["nora"], "claim")]

    # a staff member's entries, a page of 5 at a time, newest first, each once
    pages, after = [], None
    while True:
        page = world.api.gql(
            REVIEW,
            world.tokens["officer"],
            filter={**world.period, "staffId": ids["lars"], "action": "read"},
            first=5,
            after=after,
        )["accessLogReview"]
        pages.append(page["entries"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert [len(p) for p in pages] == [5, 5, 5, 1]
    times = [e["occurredAt"] for p in pages for e in p]
    assert times == sorted(times, reverse=True) and len({e["id"] for p in pages for e in p}) == 16

    # a period narrows too: the night before last holds the burst and the run at the limit only
    start = _oslo(2, 0)
    two_days_ago = world.all_entries(
        **{"from": start.isoformat(), "to": (start + timedelta(days=1)).isoformat()}
    )
    assert {e["actor"]["id"] for e in not_reviews(two_days_ago)} == {ids["lars"], ids["per"]}
    naive_local = {"from": start.astimezone(OSLO).replace(tzinfo=None).isoformat(), "to": world.period["to"]}
    assert _of(world.all_entries(**naive_local), actor=ids["lars"], action="read")


def test_an_export_parses_and_carries_the_chains_verification_status(world: World) -> None:
    ids, case = world.ids, _case_uuid(world)
    world.run(audit.chain_all)

    exported = world.export("JSON")
    assert exported["format"] == "JSON" and not exported["truncated"] and exported["limit"] == 50_000
    assert exported["verification"]["state"] == "VERIFIED"
    assert exported["verification"]["unchainedRows"] == 0
    document = json.loads(exported["content"])
    assert document["format"] == "legetime.access-log-export.v1"
    assert document["verification"]["state"] == "verified"
    assert document["rows"] == exported["rows"] == len(document["entries"]) > MANY_PATIENTS * 2
    times = [e["occurredAt"] for e in document["entries"]]
    assert times == sorted(times)  # oldest first
    (per_read,) = [
        e
        for e in document["entries"]
        if e["actorId"] == ids["per"] and e["objectId"] == case and e["action"] == "read"
    ]
    assert "UNASSIGNED_CASE" in per_read["flags"] and per_read["chained"] and per_read["seq"]
    assert per_read["patientName"] == world.names["mother"]
    assert MOTHER not in exported["content"]

    # the JSON export's own entries (one per patient it showed) are written after the sequencer ran: not
    # yet chained, and that is not a broken chain
    as_csv = world.export("CSV", staffId=None)
    rows = list(csv.DictReader(io.StringIO(as_csv["content"])))
    logged = [r for r in rows if r["action"] == "export_access_log"]
    assert len(logged) == len({e["patientId"] for e in document["entries"] if e["patientId"]})
    assert {(r["actorId"], r["actorRole"], r["chained"]) for r in logged} == {
        (ids["officer"], "privacy_officer", "false")
    }
    assert len(rows) == as_csv["rows"] == exported["rows"] + len(logged)
    assert as_csv["verification"]["state"] == "NOT_YET_CHAINED"
    assert as_csv["verification"]["unchainedRows"] == len(logged)
    burst = [r for r in rows if r["actorId"] == ids["lars"] and r["action"] == "read"]
    assert len(burst) == MANY_PATIENTS + 1 and {r["flags"] for r in burst} == {"MANY_PATIENTS"}

    # someone with write access changes a chained row: the export says where the chain breaks
    async def tamper(database: Database) -> None:
        async with database.transaction() as session:
            await session.execute(
                text("UPDATE audit_event SET action = 'nothing' WHERE id = :id"), {"id": per_read["id"]}
            )

    world.run(tamper)
    broken = world.export("JSON", patientId=ids["mother"])["verification"]
    assert broken["state"] == "BROKEN" and broken["firstBrokenId"] == str(per_read["id"])
    assert broken["reason"]


@pytest.mark.parametrize("world", ["sqlite"], indirect=True)
def test_only_privacy_officers_may_review(world: World) -> None:
    variables = {"filter": world.period}
    for name in ("nora", "lars", "mother", "per", ""):
        token = world.tokens.get(name)
        for query, extra in ((REVIEW, {}), (EXPORT, {"format": "CSV"})):
            answer = world.api.raw(query, token, **variables, **extra)
            assert answer["data"] is None
            (error,) = answer["errors"]
            assert error["extensions"]["code"] == ("FORBIDDEN" if token else "UNAUTHENTICATED"), (
                name,
                answer,
            )


@pytest.mark.parametrize("world", ["sqlite"], indirect=True)
def test_a_bad_filter_is_a_typed_error_naming_its_field(world: World) -> None:
    start = datetime.now(UTC) - timedelta(days=400)
    cases: list[tuple[dict[str, Any], dict[str, Any], str, str]] = [
        ({"from": start.isoformat(), "to": datetime.now(UTC).isoformat()}, {}, "to", "INVALID"),
        ({"from": world.period["to"], "to": world.period["from"]}, {}, "to", "INVALID"),
        (
            {**world.period, "patientNationalId": "12345678901"},
            {},
            "patientNationalId",
            "INVALID_NATIONAL_ID",
        ),
        (
            {**world.period, "patientNationalId": synthetic_national_id(date(1999, 9, 9))},
            {},
            "patientNationalId",
            "NOT_FOUND",
        ),
        ({**world.period, "caseNumber": "LT-NOSUCH"}, {}, "caseNumber", "NOT_FOUND"),
        ({**world.period, "staffId": "not-an-id"}, {}, "staffId", "INVALID"),
        (world.period, {"after": "bm90IGEgY3Vyc29y"}, "after", "INVALID"),
        (world.period, {"first": 1000}, "first", "PAGE_SIZE_TOO_LARGE"),
    ]
    for filter, extra, field, code in cases:
        answer = world.api.raw(REVIEW, world.tokens["officer"], filter=filter, **extra)
        (error,) = answer["errors"]
        assert (error["extensions"]["field"], error["extensions"]["code"]) == (field, code), (filter, answer)
        assert "12345678901" not in json.dumps(answer)


def test_a_burst_is_more_distinct_patients_than_the_limit_within_the_window() -> None:
    window, start = timedelta(minutes=MANY_PATIENTS_MINUTES), datetime(2026, 1, 1, tzinfo=UTC)
    spaced = [(i, start + timedelta(minutes=i), f"p{i}") for i in range(4)]
    assert bursts(spaced, timedelta(minutes=2), 2) == {0, 1, 2, 3}  # 3 patients within 2 minutes, each time
    assert bursts(spaced, timedelta(seconds=119), 2) == set()
    same_patient = [(i, start + timedelta(seconds=i), "p") for i in range(50)]
    assert bursts(same_patient, window, 2) == set()
    before_and_after = [(0, start, "a"), (1, start + window * 3, "b"), (2, start + window * 3, "c")]
    assert bursts(before_and_after, window, 1) == {1, 2}
