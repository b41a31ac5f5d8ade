"""The summary care record (Kjernejournal) through GraphQL: the clinician who holds the case, and only
while the patient consents; every look-up in her access log; the record never stored. Also the hook
``fetch_summary_care_record`` (a plugin's record replaces the simulated default)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from starlette.testclient import TestClient
from strawberry import relay

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.hookspecs import hookimpl
from legetime.core.platform.config import Settings
from legetime.core.platform.hooks import Hooks
from legetime.core.platform.plugins import create_plugin_manager
from legetime.core.platform.runtime import Platform
from legetime.core.platform.summary_care import Medication, SummaryCareRecord
from legetime.plugins.summary_care import simulated
from legetime.schema.app import create_app
from tests.api import SUBMIT_FIELDS, Api, complete_answers
from tests.conftest import seed_demo
from tests.migrated import upgrade
from tests.support import synthetic_national_id

CLINICIAN, OPERATOR, MOTHER = (DEMO_PEOPLE[i].national_id for i in range(3))
CLINICIAN_HPR = DEMO_PEOPLE[0].hpr_number
OTHER_CLINICIAN = synthetic_national_id(date(1975, 5, 5), female=False)

QUERY = """query($id: ID!) { summaryCareRecord(caseId: $id) {
  criticalInformation { kind description registeredOn } medications { name dosage dispensedOn }
  specialistVisits { place on } simulated } }"""


class Kjernejournal:
    """A summary care record plugin that records who was looked up; no record of its own (async, and
    None: the simulated default is asked next) until it is given one."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []
        self.record: SummaryCareRecord | None = None

    @hookimpl
    async def fetch_summary_care_record(
        self, national_id: str, clinician_hpr_number: str | None
    ) -> SummaryCareRecord | None:
        self.asked.append((national_id, clinician_hpr_number))
        return self.record


@dataclass
class World:
    api: Api
    kjernejournal: Kjernejournal
    tokens: dict[str, str]
    case_id: str
    data_dir: Path

    def look_up(self, who: str, case_id: str | None = None) -> dict[str, Any]:
        return self.api.raw(QUERY, self.tokens.get(who), id=case_id or self.case_id)

    def consent(self, granted: bool) -> None:
        purpose = {"purpose": "KJERNEJOURNAL_LOOKUP", "caseId": self.case_id}
        if granted:
            version = next(
                t["version"]
                for t in self.api.gql("{ consentTexts { purpose version } }")["consentTexts"]
                if t["purpose"] == "KJERNEJOURNAL_LOOKUP"
            )
            self.api.ok(
                "grantConsent", purpose | {"textVersion": version}, "consent { granted }", self.mother
            )
        else:
            self.api.ok("withdrawConsent", purpose, "consent { granted }", self.mother)

    @property
    def mother(self) -> str:
        return self.tokens["mother"]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """The mother's own case, submitted and claimed by the demo clinician; no look-up consent yet."""
    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    kjernejournal = Kjernejournal()
    platform = Platform.create(settings, extra_plugins=[kjernejournal], load_entry_points=False)
    with TestClient(create_app(platform, run_jobs_in_process=False)) as client:
        api = Api(client)
        invite = {"nationalId": OTHER_CLINICIAN, "role": "CLINICIAN", "hprNumber": "1234567"}
        api.ok("inviteStaff", invite, "member { personId }", api.login(OPERATOR))  # another clinician
        people = {"mother": MOTHER, "clinician": CLINICIAN, "operator": OPERATOR, "other": OTHER_CLINICIAN}
        tokens = {name: api.login(national_id) for name, national_id in people.items()}
        case_id = api.ok("startCase", {}, "case { id }", tokens["mother"])["case"]["id"]
        answers = complete_answers(api, for_child=False)
        api.ok(
            "answerQuestionnaire", {"caseId": case_id, "answers": answers}, "case { id }", tokens["mother"]
        )
        version = next(
            t["version"]
            for t in api.gql("{ consentTexts { purpose version } }")["consentTexts"]
            if t["purpose"] == "COMMUNICATION_STORAGE"
        )
        api.ok(
            "grantConsent",
            {"purpose": "COMMUNICATION_STORAGE", "textVersion": version, "caseId": case_id},
            "consent { granted }",
            tokens["mother"],
        )
        api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "k"}, SUBMIT_FIELDS, tokens["mother"])
        api.ok("claimCase", {"caseId": case_id}, "case { id }", tokens["clinician"])
        yield World(api, kjernejournal, tokens, case_id, tmp_path / "data")


def code(answer: dict[str, Any]) -> str:
    return str(answer["errors"][0]["extensions"]["code"])


def test_the_clinician_of_the_case_sees_the_record_once_the_patient_consents(world: World) -> None:
    refused = world.look_up("clinician")
    assert code(refused) == "CONSENT_REQUIRED" and refused["data"] == {"summaryCareRecord": None}
    assert refused["errors"][0]["message"] == "Pasienten har ikke samtykket til oppslag i kjernejournal."
    assert world.kjernejournal.asked == []  # without consent her national ID goes nowhere

    world.consent(True)
    record = world.look_up("clinician")["data"]["summaryCareRecord"]
    assert record["simulated"] is True
    assert record["criticalInformation"] == [
        {
            "kind": "HYPERSENSITIVITY",
            "description": "Penicillin: anafylaktisk reaksjon",
            "registeredOn": "2019-03-14",
        }
    ]
    assert record["medications"][0]["name"] == "Levaxin 50 mikrog tablett"
    assert record["specialistVisits"] == [{"place": "Oslo universitetssykehus, Ullevål", "on": "2024-10-02"}]
    # The plugin is asked with her national ID and the clinician's HPR number; it had none, so the
    # simulated default (asked last) answered.
    assert world.kjernejournal.asked == [(MOTHER, CLINICIAN_HPR)]

    world.consent(False)
    assert code(world.look_up("clinician")) == "CONSENT_REQUIRED"
    assert len(world.kjernejournal.asked) == 1


def test_nobody_else_gets_it_nor_learns_whether_the_case_exists(world: World) -> None:
    world.consent(True)
    made_up = str(relay.GlobalID("Case", str(uuid.uuid4())))
    for who in ("other", "mother", "operator"):
        real = world.look_up(who)
        assert code(real) == "NOT_FOUND", (who, real)
        assert real == world.look_up(who, made_up), who
    assert code(world.look_up("anonymous")) == "UNAUTHENTICATED"
    assert world.kjernejournal.asked == []


def test_not_after_the_case_is_closed(world: World) -> None:
    world.consent(True)
    world.api.ok(
        "answerCase",
        {"caseId": world.case_id, "body": "Svar", "outcome": "ADVICE"},
        "case { id }",
        world.tokens["clinician"],
    )
    assert world.look_up("clinician")["data"]["summaryCareRecord"] is not None  # answered: still open
    world.api.ok("closeCase", {"caseId": world.case_id}, "case { id }", world.mother)
    assert code(world.look_up("clinician")) == "NOT_FOUND"
    assert len(world.kjernejournal.asked) == 1


def test_every_look_up_is_in_her_access_log_and_the_record_is_not_stored(world: World) -> None:
    world.consent(True)
    world.look_up("clinician")
    world.look_up("clinician")  # asked again, logged again: nothing is cached across requests
    log = world.api.gql(
        "{ myAccessLog(first: 100) { actorName actorRole objectType action reason } }", world.mother
    )["myAccessLog"]
    look_ups = [entry for entry in log if entry["objectType"] == "summary_care_record"]
    assert look_ups == 2 * [
        {
            "actorName": "Nora Haugen",
            "actorRole": "clinician",
            "objectType": "summary_care_record",
            "action": "read",
            "reason": "treatment",
        }
    ]
    # Passed through, never kept: no file of the platform holds a word of it.
    for path in world.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"anafylaktisk" not in data and b"Levaxin" not in data, path


def test_hook_fetch_summary_care_record(world: World) -> None:
    """A plugin's record replaces the simulated default (the first record wins)."""
    world.consent(True)
    world.kjernejournal.record = SummaryCareRecord(medications=(Medication("Paracet 500 mg tablett"),))
    record = world.look_up("clinician")["data"]["summaryCareRecord"]
    assert record == {
        "criticalInformation": [],
        "medications": [{"name": "Paracet 500 mg tablett", "dosage": None, "dispensedOn": None}],
        "specialistVisits": [],
        "simulated": False,
    }


def test_the_simulation_answers_for_the_demo_patients_only_and_never_in_production() -> None:
    demo = {person.national_id for person in DEMO_PEOPLE if person.staff_role is None}
    assert set(simulated.RECORDS) == demo
    hooks = Hooks(create_plugin_manager(load_entry_points=False))

    def fetch(national_id: str, *, production: bool) -> SummaryCareRecord | None:
        platform = cast(Platform, SimpleNamespace(settings=SimpleNamespace(is_production=production)))
        return asyncio.run(hooks.fetch_summary_care_record(national_id, None, platform))

    assert fetch(MOTHER, production=False) == simulated.RECORDS[MOTHER]
    assert fetch(synthetic_national_id(date(1990, 1, 12)), production=False) is None
    assert fetch(MOTHER, production=True) is None
