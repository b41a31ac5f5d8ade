"""GraphQL over HTTP as clients send it, malformed or not: every refusal is JSON with a code from
``ErrorCode``, never a 500; the GraphQL-over-HTTP media type ``application/graphql-response+json`` with
its status codes; request bodies bounded before they are read; a database that is down answers 503."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from legetime.core.platform.config import Settings
from legetime.core.platform.errors import ErrorCode
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.migrated import upgrade
from tests.support import ProductionProviders
from tests.test_graphql import TroublePlugin, _production

GRAPHQL_RESPONSE = "application/graphql-response+json"
PREFERS_GRAPHQL_RESPONSE = {"Accept": f"{GRAPHQL_RESPONSE}, application/json;q=0.9"}
CODES = {code.value for code in ErrorCode}


def _app(settings: Settings, *plugins: object) -> TestClient:
    upgrade(settings.resolved_database_url)
    platform = Platform.create(settings, extra_plugins=plugins, load_entry_points=False)
    return TestClient(create_app(platform, run_jobs_in_process=False), raise_server_exceptions=False)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with _app(settings, TroublePlugin()) as client:
        yield client


def _codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body["errors"]]


@pytest.mark.parametrize(
    "body",
    [
        b"null",
        b"42",
        b'"a string"',
        b"[]",
        b'[{"query": "{ platform { version } }"}]',
        b"\xff\xfe\x00",
        b"[" * 5000 + b"]" * 5000,
        b'{"query": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"query": 5}',
        b'{"query": "{ platform { version } }", "variables": 3}',
        b'{"query": "{ platform { version } }", "operationName": 7}',
        b'{"query": "{ platform { version } }", "extensions": "x"}',
        b"{",
    ],
    ids=lambda body: repr(body[:24]),
)
def test_a_malformed_body_is_a_typed_400(client: TestClient, body: bytes) -> None:
    response = client.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "data" not in response.json()


def test_a_malformed_get_parameter_is_a_typed_400(client: TestClient) -> None:
    response = client.get("/graphql", params={"query": "{ platform { version } }", "variables": "[" * 5000})
    assert response.status_code == 400
    assert _codes(response.json()) == ["BAD_REQUEST"]


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("{ platform {", None, "GRAPHQL_PARSE_FAILED"),
        ("{ platform { versio } }", None, "GRAPHQL_VALIDATION_FAILED"),
        ("query($n: Int!) { myCases(first: $n) { edges { cursor } } }", {"n": "abc"}, "BAD_USER_INPUT"),
        ("query($n: Int!) { myCases(first: $n) { edges { cursor } } }", {}, "BAD_USER_INPUT"),
        (
            "query A { platform { version } } query B { platform { version } }",
            None,
            "GRAPHQL_VALIDATION_FAILED",
        ),
    ],
)
def test_a_request_that_cannot_run_answers_in_both_media_types(
    client: TestClient, query: str, variables: dict[str, Any] | None, code: str
) -> None:
    modern = client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=PREFERS_GRAPHQL_RESPONSE
    )
    assert modern.status_code == 400
    assert modern.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert "data" not in modern.json() and _codes(modern.json()) == [code]
    legacy = client.post("/graphql", json={"query": query, "variables": variables})
    assert legacy.status_code == 200
    assert legacy.headers["content-type"].startswith("application/json")
    assert "data" not in legacy.json() and _codes(legacy.json()) == [code]


def test_several_operations_need_an_operation_name(client: TestClient) -> None:
    document = "query A { platform { version } } mutation B { logout { ok } }"
    chosen = client.post("/graphql", json={"query": document, "operationName": "A"})
    assert chosen.json() == {"data": {"platform": {"version": chosen.json()["data"]["platform"]["version"]}}}
    refused = client.post("/graphql", json={"query": document})
    assert _codes(refused.json()) == ["GRAPHQL_VALIDATION_FAILED"] and "data" not in refused.json()


def test_a_successful_request_in_the_media_type_the_client_prefers(client: TestClient) -> None:
    modern = client.post(
        "/graphql", json={"query": "{ platform { version } }"}, headers=PREFERS_GRAPHQL_RESPONSE
    )
    assert modern.status_code == 200 and modern.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    for accept in ("application/json", "*/*", "", f"application/json, {GRAPHQL_RESPONSE};q=0.5"):
        legacy = client.post(
            "/graphql", json={"query": "{ platform { version } }"}, headers={"Accept": accept}
        )
        assert legacy.status_code == 200 and legacy.headers["content-type"].startswith("application/json")


def test_every_top_level_error_has_a_code(client: TestClient) -> None:
    def codes(query: str) -> dict[str, Any]:
        result = client.post("/graphql", json={"query": query}).json()
        assert all(code in CODES for code in _codes(result))
        return {error["path"][0]: error["extensions"] for error in result["errors"]}

    # ``crash`` and ``refuse`` are non-null: each fails its whole document, so each goes alone.
    assert codes("{ crash }")["crash"]["code"] == "INTERNAL"
    assert codes("{ refuse }")["refuse"] == {"code": "INVALID", "field": "value"}
    result = client.post(
        "/graphql", json={"query": '{ bad: node(id: "x") { id } platform { version } }'}
    ).json()
    assert _codes(result) == ["BAD_USER_INPUT"]  # a scalar that cannot hold the value
    assert result["data"]["platform"]["version"]  # the rest of the document still ran


def test_in_production_only_the_unexpected_is_masked(settings: Settings) -> None:
    with _app(_production(settings), TroublePlugin(), ProductionProviders()) as client:
        crash = client.post("/graphql", json={"query": "{ crash }"}).json()
        coercion = client.post(
            "/graphql",
            json={
                "query": "query($n: Int!) { myCases(first: $n) { edges { cursor } } }",
                "variables": {"n": "x"},
            },
        ).json()
        scalar = client.post("/graphql", json={"query": '{ node(id: "x") { id } }'}).json()
    assert crash["errors"][0]["message"] == "Uventet feil." and _codes(crash) == ["INTERNAL"]
    assert "hunter2" not in str(crash)
    assert "Int cannot represent" in coercion["errors"][0]["message"] and _codes(coercion) == [
        "BAD_USER_INPUT"
    ]
    assert "GlobalID" in scalar["errors"][0]["message"] and _codes(scalar) == ["BAD_USER_INPUT"]


# --- bodies are bounded before they are read ---------------------------------------------------------


def test_a_body_announced_too_large_is_refused_unread(settings: Settings) -> None:
    small = settings.model_copy(update={"max_body_bytes": 4096})
    with _app(small) as client:
        response = client.post(
            "/graphql",
            content=b'{"query": "{ platform { version } }", "pad": "' + b"x" * 8000 + b'"}',
            headers={"Content-Type": "application/json"},
        )
        webhook = client.post("/webhooks/payments/fake", content=b"x" * 8000)
        fits = client.post("/graphql", json={"query": "{ platform { version } }"})
    assert response.status_code == 413 and _codes(response.json()) == ["PAYLOAD_TOO_LARGE"]
    assert webhook.status_code == 413
    assert fits.status_code == 200


def test_a_body_streamed_beyond_the_limit_is_cut_off(settings: Settings) -> None:
    small = settings.model_copy(update={"max_body_bytes": 4096})

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        yield b'{"query": "{ platform { version } }", "pad": "'
        for _ in range(64):
            yield b"x" * 1024
        yield b'"}'

    with _app(small) as client:
        response = client.post("/graphql", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and _codes(response.json()) == ["PAYLOAD_TOO_LARGE"]


def test_an_upload_may_carry_an_image_beyond_the_json_limit(settings: Settings) -> None:
    small = settings.model_copy(update={"max_body_bytes": 4096})
    with _app(small) as client:
        response = client.post(
            "/graphql",
            data={"operations": '{"query": "{ platform { version } }"}', "map": "{}"},
            files={"0": ("big.bin", b"x" * 20_000, "application/octet-stream")},
        )
    assert response.status_code == 200, response.text


# --- the database away -------------------------------------------------------------------------------


def test_a_database_that_is_down_answers_503_with_a_code(tmp_path: Path) -> None:
    unreachable = "postgresql+asyncpg://postgres@127.0.0.1:9/legetime"  # the discard port: nobody listens
    platform = Platform.create(
        Settings(data_dir=tmp_path / "data", database_url=unreachable), load_entry_points=False
    )
    with TestClient(create_app(platform, run_jobs_in_process=False), raise_server_exceptions=False) as client:
        signed_in = client.post(
            "/graphql", json={"query": "{ me { givenName } }"}, headers={"Authorization": "Bearer abc"}
        )
        mutation = client.post(
            "/graphql",
            json={"query": 'mutation { startLogin(input: {nationalId: "17889200022"}) { handle } }'},
        )
    for response in (signed_in, mutation):
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"]
        assert _codes(response.json()) == ["UNAVAILABLE"]
        assert "asyncpg" not in response.text and "Errno" not in response.text


# --- browsers: CORS, and headers that keep pages and answers apart -------------------------------------


def test_only_the_configured_frontends_may_call_from_a_browser(settings: Settings) -> None:
    frontend = "https://app.legetime.example"
    with _app(
        _production(settings).model_copy(update={"cors_origins": [frontend]}), ProductionProviders()
    ) as client:
        preflight = client.options(
            "/graphql",
            headers={
                "Origin": frontend,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        call = client.post(
            "/graphql", json={"query": "{ platform { version } }"}, headers={"Origin": frontend}
        )
        stranger = client.options(
            "/graphql",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        local = client.options(
            "/graphql", headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == frontend
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert call.headers["access-control-allow-origin"] == frontend
    assert "access-control-allow-origin" not in stranger.headers
    assert "access-control-allow-origin" not in local.headers  # localhost is for development only


def test_a_frontend_on_localhost_may_call_in_development(client: TestClient) -> None:
    response = client.options(
        "/graphql", headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"}
    )
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"


def test_answers_are_data_and_graphiql_runs_only_its_own_scripts(client: TestClient) -> None:
    answer = client.post("/graphql", json={"query": "{ platform { version } }"})
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert answer.headers["x-frame-options"] == "DENY"
    page = client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy
    assert "script-src 'self';" in policy  # its own files only: no inline script, no CDN (test_playground)
    assert page.headers["x-frame-options"] == "DENY"
