"""Documents as real frontends send them: several root fields, aliases and nested loader-backed fields in one
request. GraphQL resolves sibling fields and DataLoader batches at the same time, on the request's one
read session; every one of them must answer, and the access log they write must stay one chain."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform.db.engine import Database
from legetime.core.platform.runtime import Platform
from legetime.core.protection.audit import chain_all, verify_chain
from tests.api import Api

MOTHER = DEMO_PEOPLE[2].national_id
CASE = (
    "id number status messages { body } journalNotes { createdAt } attachments { width } payment { status }"
)


@pytest.fixture
def api(served: tuple[Api, Platform]) -> tuple[Api, Platform]:
    return served


def _chain_holds(platform: Platform) -> None:
    async def verify() -> Any:
        database = Database(platform.settings.resolved_database_url)
        try:
            await chain_all(database)
            async with database.transaction() as session:
                return await verify_chain(session)
        finally:
            await database.dispose()

    report = asyncio.run(verify())
    assert report.ok and report.unchained == 0, report


def _start_case(api: Api, token: str) -> str:
    payload = api.ok("startCase", {}, f"case {{ {CASE} }}", token)
    # The payload selects several loader-backed fields: resolved at once after the mutation committed.
    assert payload["case"] is not None
    assert payload["case"]["messages"] == [] and payload["case"]["journalNotes"] == []
    return str(payload["case"]["id"])


def test_a_mutation_payload_with_several_loader_backed_fields_answers(api: tuple[Api, Platform]) -> None:
    client, platform = api
    token = client.login(MOTHER)
    _start_case(client, token)
    cases = client.gql("{ myCases(first: 5) { edges { node { id } } } }", token)["myCases"]["edges"]
    assert len(cases) == 1  # one draft: the answer came back, so nothing tempts the client to retry
    _chain_holds(platform)


def test_sibling_root_fields_aliases_and_nodes_read_at_once(api: tuple[Api, Platform]) -> None:
    client, platform = api
    token = client.login(MOTHER)
    case_id = _start_case(client, token)
    data = client.gql(
        f"""query($id: ID!) {{
          me {{ givenName }}
          myCases(first: 2) {{ edges {{ cursor node {{ {CASE} }} }} }}
          again: myCases(first: 2) {{ edges {{ node {{ number }} }} }}
          case(id: $id) {{ {CASE} }}
          one: node(id: $id) {{ id }}
          two: node(id: $id) {{ id }}
          myAccessLog(first: 3) {{ action }}
        }}""",
        token,
        id=case_id,
    )
    assert data["me"]["givenName"]
    assert [edge["node"]["id"] for edge in data["myCases"]["edges"]] == [case_id]
    assert len(data["again"]["edges"]) == 1
    assert data["case"]["id"] == case_id
    assert data["one"] == data["two"] == {"id": case_id}
    assert data["myAccessLog"]
    _chain_holds(platform)
