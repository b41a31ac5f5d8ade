"""Staff: the first operator comes from the command line; operators invite clinicians by national ID, give
and take roles and deactivate staff (her sessions end at once; her approved notes keep her name and HPR
number); the last operator stays; every change is in the access log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform.config import Settings
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.api import Api
from tests.cli import run_cli
from tests.test_flow_per_provider import CLINICIAN, MOTHER, consultation
from tests.test_payment_handoff import OPERATOR

NEW_CLINICIAN = "17889230185"  # synthetic, not in the demo
MEMBER = "member { personId name roles { role hprNumber endedAt } }"
ROLES = "{ me { givenName roles } }"


def test_the_first_operator_comes_from_the_command_line(tmp_path: Path) -> None:
    env = {"LEGETIME_DATA_DIR": str(tmp_path)}
    assert run_cli("migrate", env=env).returncode == 0
    refused = run_cli("staff", "add", "12345678901", "--role", "operator", env=env)
    assert refused.returncode == 1 and "fødselsnummer" in refused.stderr.lower()
    added = run_cli("staff", "add", NEW_CLINICIAN, "--role", "operator", env=env)
    assert added.returncode == 0, added.stderr
    assert NEW_CLINICIAN not in added.stdout  # a national ID is not echoed
    platform = Platform.create(Settings(data_dir=tmp_path), load_entry_points=False)
    with TestClient(create_app(platform)) as client:
        api = Api(client)
        operator = api.login(NEW_CLINICIAN)
        assert api.gql(ROLES, operator)["me"]["roles"] == ["patient", "operator"]
        invited = api.ok(
            "inviteStaff",
            {"nationalId": MOTHER, "role": "CLINICIAN", "hprNumber": "1234567"},
            MEMBER,
            operator,
        )
        assert invited["member"]["roles"] == [{"role": "CLINICIAN", "hprNumber": "1234567", "endedAt": None}]
    listed = run_cli("staff", "list", env=env)
    assert listed.returncode == 0 and "operator" in listed.stdout and "HPR 1234567" in listed.stdout


def test_an_invited_clinician_works_until_deactivated(embedded: tuple[Api, Any]) -> None:
    api, _ = embedded
    operator, mother = api.login(OPERATOR), api.login(MOTHER)
    invite = {"nationalId": NEW_CLINICIAN, "role": "CLINICIAN", "hprNumber": "7654321"}
    member = api.ok("inviteStaff", invite, MEMBER, operator)["member"]
    assert member["name"] is None  # not logged in yet: her name comes from BankID
    clinician = api.login(NEW_CLINICIAN)
    assert api.gql(ROLES, clinician)["me"]["roles"] == ["patient", "clinician"]

    def approve_a_note(case_id: str) -> None:
        write = {"caseId": case_id, "text": "Eksem. Fuktighetskrem."}
        note = api.ok("writeJournalNote", write, "note { id }", clinician)["note"]
        api.ok("approveJournalNote", {"noteId": note["id"]}, "note { status }", clinician)

    consultation(api, mother, clinician, "fake", None, None, after_answer=approve_a_note)
    staff = api.gql("{ staffMembers { personId name } }", operator)["staffMembers"]
    person_id = next(m["personId"] for m in staff if m["personId"] == member["personId"])
    assert next(m["name"] for m in staff if m["personId"] == person_id)  # named at her first login

    deactivated = api.ok("deactivateStaff", {"personId": person_id}, MEMBER, operator)["member"]
    assert all(role["endedAt"] for role in deactivated["roles"])
    assert api.raw(ROLES, clinician)["data"]["me"] is None  # her token stands for nobody now
    again = api.login(NEW_CLINICIAN)  # she may still log in, as a patient
    assert api.gql(ROLES, again)["me"]["roles"] == ["patient"]
    case = "{ myCases(first: 1) { edges { node { journalNotes { approvedBy { name hprNumber } } } } } }"
    [edge] = api.gql(case, mother)["myCases"]["edges"]
    [note] = edge["node"]["journalNotes"]
    assert note["approvedBy"]["hprNumber"] == "7654321" and note["approvedBy"]["name"]
    log = api.gql("{ myAccessLog(first: 50) { actorRole action reason } }", again)["myAccessLog"]
    changes = {(e["actorRole"], e["action"]) for e in log}
    assert {("operator", "grant_role"), ("operator", "deactivate_staff")} <= changes


def test_roles_change_from_the_next_request_and_an_operator_stays(embedded: tuple[Api, Any]) -> None:
    api, _ = embedded
    operator, clinician = api.login(OPERATOR), api.login(CLINICIAN)
    staff = api.gql("{ staffMembers { personId roles { role } } }", operator)["staffMembers"]
    ids = {m["roles"][0]["role"]: m["personId"] for m in staff if len(m["roles"]) == 1}
    revoked = api.ok("revokeStaffRole", {"personId": ids["CLINICIAN"], "role": "CLINICIAN"}, MEMBER, operator)
    assert revoked["member"]["roles"][0]["endedAt"]
    assert api.gql(ROLES, clinician)["me"]["roles"] == ["patient"]  # the same session, the role gone
    assert api.raw("{ caseQueue(first: 1) { edges { node { id } } } }", clinician)["errors"]
    again = {"personId": ids["CLINICIAN"], "role": "CLINICIAN"}
    assert api.mutate("grantStaffRole", again, MEMBER, operator)["errors"][0]["field"] == "hprNumber"
    api.ok("grantStaffRole", {**again, "hprNumber": "9144889"}, MEMBER, operator)
    assert api.gql(ROLES, clinician)["me"]["roles"] == ["patient", "clinician"]

    last = api.mutate("deactivateStaff", {"personId": ids["OPERATOR"]}, MEMBER, operator)
    assert last["errors"][0]["code"] == "INVALID"
    assert api.gql(ROLES, operator)["me"]["roles"] == ["patient", "operator"]


def test_only_operators_manage_staff_and_input_is_checked(embedded: tuple[Api, Any]) -> None:
    api, _ = embedded
    operator, clinician = api.login(OPERATOR), api.login(CLINICIAN)
    invite = {"nationalId": NEW_CLINICIAN, "role": "OPERATOR"}
    assert api.mutate("inviteStaff", invite, MEMBER, clinician)["errors"][0]["code"] == "FORBIDDEN"
    assert api.raw("{ staffMembers { name } }", clinician)["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    for bad, field in (
        ({**invite, "nationalId": "12345678901"}, "nationalId"),
        ({**invite, "role": "CLINICIAN"}, "hprNumber"),
        ({**invite, "role": "CLINICIAN", "hprNumber": "12ab"}, "hprNumber"),
    ):
        payload = api.mutate("inviteStaff", bad, MEMBER, operator)
        assert payload["member"] is None and payload["errors"][0]["field"] == field
    assert DEMO_PEOPLE[0].hpr_number  # the demo clinician has an HPR number for her notes
