"""The GraphQL app over HTTP: the platform query, GraphiQL, health and readiness, and the request limits
(depth, aliases, tokens, batching, page size), error masking and introspection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import strawberry
from starlette.testclient import TestClient

from legetime.core.hookspecs import hookimpl
from legetime.core.platform.config import Environment, Settings
from legetime.core.platform.errors import LegetimeError
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.support import REAL_PROVIDERS, ProductionProviders


@strawberry.type
class Troublemaker:
    @strawberry.field
    def crash(self) -> str:
        raise RuntimeError("database password is hunter2")

    @strawberry.field
    def refuse(self) -> str:
        raise LegetimeError("Ugyldig verdi.", field="value")


class TroublePlugin:
    @hookimpl
    def register_graphql_queries(self) -> list[type]:
        return [Troublemaker]


def _client(settings: Settings, *plugins: object) -> TestClient:
    platform = Platform.create(settings, extra_plugins=plugins, load_entry_points=False)
    return TestClient(create_app(platform, run_jobs_in_process=False))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with _client(settings, TroublePlugin()) as client:
        yield client


def gql(client: TestClient, query: str, **variables: Any) -> dict[str, Any]:
    response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_platform_query(client: TestClient) -> None:
    result = gql(
        client,
        "{ platform { version environment price { amount currency formatted } "
        "providers { capability name isDefault } } }",
    )
    platform = result["data"]["platform"]
    assert platform["environment"] == "development"
    assert platform["price"] == {"amount": 35000, "currency": "NOK", "formatted": "kr 350,00"}
    assert {(p["capability"], p["name"], p["isDefault"]) for p in platform["providers"]} == {
        ("IDENTITY", "bankid-test", True),
        ("PAYMENT", "fake", True),
        ("SMS", "outbox", True),
        ("STORAGE", "local", True),
        ("JOURNAL", "template", True),
        ("SCHEDULING", "builtin", True),
        ("VIDEO", "video-test", True),
        ("INVOICING", "pdf", True),
    }


def test_plugins_connection_and_node(client: TestClient) -> None:
    result = gql(
        client, "{ platform { plugins(first: 2) { edges { node { id name } } pageInfo { hasNextPage } } } }"
    )
    connection = result["data"]["platform"]["plugins"]
    assert len(connection["edges"]) == 2 and connection["pageInfo"]["hasNextPage"] is True
    first = connection["edges"][0]["node"]
    node = gql(client, "query($id: ID!) { node(id: $id) { ... on Plugin { name version } } }", id=first["id"])
    assert node["data"]["node"]["name"] == first["name"]


def test_graphiql_in_development(client: TestClient) -> None:
    response = client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200 and "graphiql" in response.text.lower()


def test_no_graphiql_when_off(settings: Settings) -> None:
    with _client(settings.model_copy(update={"graphiql": False})) as client:
        response = client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 404


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok", "broker": "in-process"}


def test_readyz_reports_an_unreachable_database_and_broker(settings: Settings) -> None:
    broken = settings.model_copy(
        update={
            "database_url": "postgresql+asyncpg://nobody@127.0.0.1:1/none",
            "redis_url": "redis://127.0.0.1:1/0",
        }
    )
    with _client(broken) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable", "broker": "unreachable"}


@pytest.mark.redis
def test_readyz_with_redis(settings: Settings, redis_url: str) -> None:
    with _client(settings.model_copy(update={"redis_url": redis_url})) as client:
        assert client.get("/readyz").json()["broker"] == "ok"


# --- limits ----------------------------------------------------------------------------------------

DEEP = "{ platform { plugins { edges { node { name } } } } }"


def test_query_depth_limit(settings: Settings) -> None:
    # Depth counts from 0 at the root field: DEEP has depth 4.
    with _client(settings.model_copy(update={"max_query_depth": 3})) as client:
        result = gql(client, DEEP)
        assert "exceeds maximum operation depth of 3" in result["errors"][0]["message"]
        assert "data" not in result or result["data"] is None
    with _client(settings.model_copy(update={"max_query_depth": 4})) as client:
        assert "errors" not in gql(client, DEEP)


def test_alias_limit(client: TestClient) -> None:
    many = " ".join(f"a{i}: platform {{ version }}" for i in range(16))
    result = gql(client, f"{{ {many} }}")
    assert "aliases found" in result["errors"][0]["message"]
    few = " ".join(f"a{i}: platform {{ version }}" for i in range(15))
    assert "errors" not in gql(client, f"{{ {few} }}")


def test_token_limit(settings: Settings) -> None:
    with _client(settings.model_copy(update={"max_tokens": 60})) as client:
        query = "{ " + " ".join("platform { version environment }" for _ in range(20)) + " }"
        result = gql(client, query)
    assert "token" in result["errors"][0]["message"].lower()


def test_batched_requests_are_refused(client: TestClient) -> None:
    response = client.post("/graphql", json=[{"query": "{ platform { version } }"}] * 2)
    assert response.status_code == 400


def test_page_size_cap_is_a_typed_error(client: TestClient) -> None:
    result = gql(client, "{ platform { plugins(first: 101) { edges { node { name } } } } }")
    error = result["errors"][0]
    assert error["extensions"] == {"code": "PAGE_SIZE_TOO_LARGE", "field": "first"}
    assert "at most 100" in error["message"]


def test_mutations_are_not_allowed_over_get(client: TestClient) -> None:
    response = client.get("/graphql", params={"query": "mutation { __typename }"})
    assert response.status_code in (400, 405)


# --- errors ----------------------------------------------------------------------------------------


def test_unexpected_errors_are_shown_in_development(client: TestClient) -> None:
    assert "hunter2" in gql(client, "{ crash }")["errors"][0]["message"]


def _production(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "environment": Environment.PRODUCTION,
            "graphiql": False,
            "introspection": False,
            **REAL_PROVIDERS,
        }
    )


def test_unexpected_errors_are_masked_in_production(settings: Settings) -> None:
    with _client(_production(settings), TroublePlugin(), ProductionProviders()) as client:
        crash = gql(client, "{ crash }")
        refuse = gql(client, "{ refuse }")
    assert crash["errors"][0]["message"] == "Uventet feil."
    assert "hunter2" not in str(crash)
    assert refuse["errors"][0]["message"] == "Ugyldig verdi."
    assert refuse["errors"][0]["extensions"] == {"code": "INVALID", "field": "value"}


def test_introspection_can_be_turned_off(settings: Settings) -> None:
    with _client(settings) as client:
        assert "errors" not in gql(client, "{ __schema { queryType { name } } }")
    with _client(settings.model_copy(update={"introspection": False})) as client:
        assert (
            "introspection"
            in gql(client, "{ __schema { queryType { name } } }")["errors"][0]["message"].lower()
        )


def test_plugins_are_for_operators_in_production(settings: Settings) -> None:
    with _client(_production(settings), ProductionProviders()) as client:
        result = gql(client, "{ platform { version plugins { edges { node { name } } } } }")
    assert result["errors"][0]["message"] == "Ikke tilgang."


def test_sdl_file_is_up_to_date() -> None:
    """Frontends build against schema/schema.graphql: it must match the code (`make docs` writes it)."""
    from tools.docs import SDL_FILE, default_sdl

    assert SDL_FILE.exists(), "run `make docs` to write schema/schema.graphql"
    assert SDL_FILE.read_text() == default_sdl(), "schema/schema.graphql is out of date: run `make docs`"


def test_the_full_introspection_query_answers(client: TestClient) -> None:
    """What GraphiQL and code generators send first: every type, field, argument and default value
    (a default the JSON scalar cannot print broke it once)."""
    from graphql import get_introspection_query

    body = client.post("/graphql", json={"query": get_introspection_query(descriptions=True)}).json()
    assert "errors" not in body, body.get("errors")
    names = {t["name"] for t in body["data"]["__schema"]["types"]}
    assert {"ChangePlatformSettingsInput", "Case", "JSON"} <= names
