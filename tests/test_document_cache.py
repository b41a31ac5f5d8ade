"""A document sent again is neither parsed nor validated again, and still meets every limit: a refused
document is refused each time; no extension wraps the resolvers; a page's patient and payment are loaded
with the page, not one awaitable per case."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from legetime.core.platform.config import Settings
from legetime.core.platform.runtime import Platform
from legetime.schema import documents
from legetime.schema.app import create_app
from legetime.schema.build import build_schema
from tests.api import Api
from tests.conftest import seed_demo
from tests.migrated import upgrade
from tests.test_query_counts import MOTHER, add_cases

QUERY = "query Version { platform { version } }"


def _client(settings: Settings) -> TestClient:
    upgrade(settings.resolved_database_url)
    platform = Platform.create(settings, load_entry_points=False)
    return TestClient(create_app(platform, run_jobs_in_process=False), raise_server_exceptions=False)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with _client(settings.model_copy(update={"max_query_depth": 2, "max_tokens": 60})) as client:
        yield client


def _codes(client: TestClient, query: str, **variables: Any) -> list[str]:
    body = client.post("/graphql", json={"query": query, "variables": variables}).json()
    return [error["extensions"]["code"] for error in body.get("errors", ())]


def test_a_document_is_parsed_and_validated_once(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"parse": 0, "validate": 0}
    parse, validate = documents.parse, documents.validate_document

    def counted_parse(*args: Any, **kwargs: Any) -> Any:
        calls["parse"] += 1
        return parse(*args, **kwargs)

    def counted_validate(*args: Any, **kwargs: Any) -> Any:
        calls["validate"] += 1
        return validate(*args, **kwargs)

    monkeypatch.setattr(documents, "parse", counted_parse)
    monkeypatch.setattr(documents, "validate_document", counted_validate)
    for _ in range(3):
        assert _codes(client, QUERY) == []
    assert calls == {"parse": 1, "validate": 1}


def test_a_refused_document_is_refused_every_time(client: TestClient) -> None:
    deep = "{ myCases { edges { node { id } } } }"
    long = "{ " + " ".join(f"a{i}: platform {{ version }}" for i in range(20)) + " }"
    control = 'mutation { startLogin(input: {nationalId: "1\\u0001"}) { handle } }'
    for _ in range(3):
        assert _codes(client, deep) == ["GRAPHQL_VALIDATION_FAILED"]
        assert _codes(client, long) == ["GRAPHQL_PARSE_FAILED"]
        assert _codes(client, control) == ["BAD_USER_INPUT"]
        assert _codes(client, "query A { platform { version } } query B { platform { version } }") == [
            "GRAPHQL_VALIDATION_FAILED"
        ]


def test_no_extension_wraps_the_resolvers(platform: Platform) -> None:
    schema = build_schema(platform)
    assert [type(e).__name__ for e in schema.get_extensions() if e._implements_resolve()] == []


def test_introspection_off_is_a_rule_of_the_cached_validation(settings: Settings) -> None:
    introspect = "{ __schema { queryType { name } } }"
    with _client(settings.model_copy(update={"introspection": False})) as client:
        for _ in range(2):
            assert set(_codes(client, introspect)) == {"GRAPHQL_VALIDATION_FAILED"}
    with _client(settings) as client:
        assert _codes(client, introspect) == []


CASE_FIELDS = "id number status overdue retentionUntil communicationDeletedAt patient { givenName age } " + (
    "payment { status }"
)


def test_a_pages_patient_and_payment_are_the_single_cases(settings: Settings) -> None:
    """Loaded with the page (one query each) or case by case: the same answer."""
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    platform = Platform.create(settings, load_entry_points=False)
    add_cases(platform, 5)
    with TestClient(create_app(platform, run_jobs_in_process=False)) as client:
        _same_answers(Api(client))


def _same_answers(api: Api) -> None:
    token = api.login(MOTHER)
    page = api.gql(f"{{ myCases(first: 10) {{ edges {{ node {{ {CASE_FIELDS} }} }} }} }}", token)
    nodes = [edge["node"] for edge in page["myCases"]["edges"]]
    assert len(nodes) == 5 and all(node["payment"] == {"status": "authorized"} for node in nodes)
    for node in nodes:
        single = api.gql(f"query($id: ID!) {{ case(id: $id) {{ {CASE_FIELDS} }} }}", token, id=node["id"])
        assert single["case"] == node
    fragment = "fragment C on Case { patient { age } } "
    spread = api.gql(fragment + "{ myCases(first: 10) { edges { node { ...C } } } }", token)
    assert [edge["node"] for edge in spread["myCases"]["edges"]] == [
        {"patient": node["patient"] and {"age": node["patient"]["age"]}} for node in nodes
    ]


def test_where_the_playground_is_on_only_staff_introspect(settings: Settings) -> None:
    """Introspection off for everyone (as production has it), the playground on: the operator's IDE gets
    the schema for its docs and completion; a patient, or nobody logged in, does not — the same text,
    validated once per kind of caller."""
    from legetime.core.demo import DEMO_PEOPLE

    closed = settings.model_copy(update={"introspection": False, "graphiql": True})
    upgrade(closed.resolved_database_url)
    seed_demo(closed)
    schema_query = "{ __schema { queryType { name } } }"
    with _client(closed) as client:
        api = Api(client)
        operator, patient = api.login(DEMO_PEOPLE[1].national_id), api.login(MOTHER)
        for _ in range(2):  # and again, from the cache
            assert api.gql(schema_query, operator)["__schema"]["queryType"]["name"] == "Query"
            refused = api.raw(schema_query, patient)["errors"][0]["message"]
            assert "introspection" in refused.lower()
            assert "introspection" in api.raw(schema_query)["errors"][0]["message"].lower()
