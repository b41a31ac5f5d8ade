"""Integrator accounts: an operator makes one with scopes and gets its token once; the account reads what
its scopes name — a case's status, the journal notes of a closed case, the operation's figures — each
read in the patient's access log, and nothing a person's access rules serve; revoked, it reads nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from legetime.core.platform.db.engine import Database
from legetime.core.platform.db.models import IntegratorAccount
from legetime.core.platform.runtime import Platform
from tests.api import Api
from tests.test_flow_per_provider import CLINICIAN, MOTHER, consultation
from tests.test_payment_handoff import OPERATOR

STATUS = "query($id: ID!) { caseStatus(id: $id) { id number status closedAt overdue paymentStatus } }"
NOTES = "query($id: ID!) { closedCaseJournalNotes(caseId: $id) { id approvedAt text } }"
CREATE = "account { id name scopes revokedAt } token"


def code(result: dict[str, Any]) -> str:
    return str(result["errors"][0]["extensions"]["code"])


def test_an_account_reads_what_its_scopes_name_and_nothing_else(embedded: tuple[Api, Platform]) -> None:
    api, platform = embedded
    mother, clinician, operator = api.login(MOTHER), api.login(CLINICIAN), api.login(OPERATOR)
    scopes = ["READ_CASE_STATUS", "READ_CLOSED_JOURNAL_NOTES"]
    made = api.ok("createIntegratorAccount", {"name": "Journalsystemet", "scopes": scopes}, CREATE, operator)
    token = made["token"]
    assert token.startswith("lgi_") and made["account"]["scopes"] == scopes
    seen: dict[str, Any] = {}

    def note_approved(case_id: str) -> None:
        api.ok("draftJournalNote", {"caseId": case_id, "idempotencyKey": "d1"}, "case { id }", clinician)
        notes = "query($id: ID!) { case(id: $id) { journalNotes { id } } }"
        [note] = api.wait_for(
            lambda: api.gql(notes, clinician, id=case_id)["case"]["journalNotes"], "the journal draft"
        )
        api.ok("approveJournalNote", {"noteId": note["id"]}, "note { status }", clinician)
        seen["before close"] = api.raw(NOTES, token, id=case_id)

    consultation(api, mother, clinician, "fake", None, None, after_answer=note_approved)
    case_id = api.gql("{ myCases(first: 1) { edges { node { id } } } }", mother)["myCases"]["edges"][0][
        "node"
    ]["id"]

    status = api.gql(STATUS, token, id=case_id)["caseStatus"]
    assert status["id"] == case_id and status["status"] == "CLOSED" and status["paymentStatus"] == "captured"
    assert code(seen["before close"]) == "NOT_FOUND"  # not until the case is closed
    [note] = api.gql(NOTES, token, id=case_id)["closedCaseJournalNotes"]
    assert note["text"] and note["approvedAt"]

    # Nothing a person's access rules serve, and no scope it was not given.
    assert api.raw("query($id: ID!) { case(id: $id) { number } }", token, id=case_id)["data"]["case"] is None
    assert code(api.raw("{ myCases(first: 1) { edges { node { id } } } }", token)) == "UNAUTHENTICATED"
    assert code(api.raw("{ operatorOverview { openCases } }", token)) == "UNAUTHENTICATED"
    assert code(api.raw("{ operationFigures { openCases } }", token)) == "FORBIDDEN"
    assert code(api.raw(STATUS, mother, id=case_id)) == "UNAUTHENTICATED"  # a person is not an account

    # The patient sees the account's reads in her access log.
    log = api.gql("{ myAccessLog(first: 50) { actorRole action reason } }", mother)["myAccessLog"]
    reads = [entry for entry in log if entry["actorRole"] == "integrator"]
    assert {entry["reason"] for entry in reads} == {f"integrator {made['account']['id']}"}
    assert len(reads) == 2  # the status, the note (the refused read before the close logged nothing)

    # Only a keyed hash of the token is stored.
    rows = asyncio.run(_accounts(platform.settings.resolved_database_url))
    assert [row.name for row in rows] == ["Journalsystemet"]
    assert token not in repr(vars(rows[0])) and rows[0].token_hash != token

    revoked = api.ok(
        "revokeIntegratorAccount", {"id": made["account"]["id"]}, "account { revokedAt }", operator
    )
    assert revoked["account"]["revokedAt"]
    assert code(api.raw(STATUS, token, id=case_id)) == "UNAUTHENTICATED"


def test_only_operators_manage_accounts(embedded: tuple[Api, Platform]) -> None:
    api, _ = embedded
    clinician, operator = api.login(CLINICIAN), api.login(OPERATOR)
    made = {"name": "Statistikk", "scopes": ["READ_OPERATIONS"]}
    refused = api.mutate("createIntegratorAccount", made, CREATE, clinician)
    assert refused["errors"][0]["code"] == "FORBIDDEN" and refused["token"] is None
    assert (
        api.mutate("createIntegratorAccount", {**made, "scopes": []}, CREATE, operator)["errors"][0]["field"]
        == "scopes"
    )
    assert (
        api.mutate("createIntegratorAccount", {**made, "name": " "}, CREATE, operator)["errors"][0]["field"]
        == "name"
    )
    token = api.ok("createIntegratorAccount", made, CREATE, operator)["token"]
    figures = api.gql("{ operationFigures { openCases byStatus { status count } } }", token)
    assert figures["operationFigures"]["openCases"] == 0
    listed = api.gql("{ integratorAccounts { name scopes revokedAt } }", operator)["integratorAccounts"]
    assert listed == [{"name": "Statistikk", "scopes": ["READ_OPERATIONS"], "revokedAt": None}]
    assert code(api.raw("{ integratorAccounts { name } }", token)) == "UNAUTHENTICATED"
    assert code(api.raw("{ integratorAccounts { name } }", clinician)) == "FORBIDDEN"


async def _accounts(url: str) -> list[IntegratorAccount]:
    database = Database(url)
    try:
        async with database.transaction() as session:
            return list(await session.scalars(select(IntegratorAccount)))
    finally:
        await database.dispose()
