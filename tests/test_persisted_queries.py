"""Automatic persisted queries over HTTP, as Apollo Client and urql speak them: a hash the server does not
know is ``PERSISTED_QUERY_NOT_FOUND``; the document sent with its hash is kept (once it is valid) and runs;
then the hash alone runs it, over POST or GET; a hash that is not the document's is refused; a mutation
sent by its hash over GET is refused like any mutation over GET; with Redis, every process knows a hash
that one of them was given. How many documents one client has kept is limited (big ones count more); over
the limit a document runs all the same and is not kept, also not in Redis, and the processes share the
count."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from legetime.core.platform.config import Settings
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from legetime.schema.persisted_queries import PersistedQueries
from tests.migrated import upgrade

QUERY = "query Version { platform { version environment } }"
MUTATION = "mutation Out { logout { ok } }"
GRAPHQL_RESPONSE = "application/graphql-response+json"


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _extensions(digest: str, version: Any = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


def _app(settings: Settings) -> TestClient:
    upgrade(settings.resolved_database_url)
    platform = Platform.create(settings, load_entry_points=False)
    return TestClient(create_app(platform, run_jobs_in_process=False), raise_server_exceptions=False)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with _app(settings) as client:
        yield client


def _post(client: TestClient, body: dict[str, Any], **headers: str) -> tuple[int, dict[str, Any]]:
    response = client.post("/graphql", json=body, headers=headers)
    return response.status_code, response.json()


def _code(body: dict[str, Any]) -> str:
    return str(body["errors"][0]["extensions"]["code"])


def test_an_unknown_hash_is_not_found_then_the_document_is_kept(client: TestClient) -> None:
    digest = _hash(QUERY)
    status, body = _post(client, {"extensions": _extensions(digest)})
    assert status == 200  # clients send the document on this answer; some give up on a 4xx
    assert _code(body) == "PERSISTED_QUERY_NOT_FOUND"
    assert body["errors"][0]["message"] == "PersistedQueryNotFound"  # older clients look at the message
    assert "data" not in body

    status, body = _post(client, {"query": QUERY, "extensions": _extensions(digest)})
    assert status == 200 and "errors" not in body
    version = body["data"]["platform"]["version"]

    status, body = _post(client, {"extensions": _extensions(digest)})
    assert status == 200 and "errors" not in body, body
    assert body["data"]["platform"]["version"] == version

    # The new media type too: found, it is an answer like any other.
    status, body = _post(client, {"extensions": _extensions(digest)}, accept=GRAPHQL_RESPONSE)
    assert status == 200 and body["data"]["platform"]["version"] == version


def test_the_hash_alone_over_get(client: TestClient) -> None:
    digest = _hash(QUERY)
    params = {"extensions": json.dumps(_extensions(digest))}
    assert _code(client.get("/graphql", params=params).json()) == "PERSISTED_QUERY_NOT_FOUND"
    # Apollo Client with useGETForHashedQueries registers over GET as well.
    registered = client.get("/graphql", params={**params, "query": QUERY})
    assert registered.status_code == 200 and "errors" not in registered.json()
    response = client.get("/graphql", params=params)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["platform"]["environment"] == "development"


def test_a_hash_that_is_not_the_documents_is_refused(client: TestClient) -> None:
    wrong = _hash(QUERY + " ")
    status, body = _post(client, {"query": QUERY, "extensions": _extensions(wrong)})
    assert status == 400 and _code(body) == "BAD_REQUEST" and "data" not in body
    # ... and nothing was kept under it.
    assert _code(_post(client, {"extensions": _extensions(wrong)})[1]) == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    "persisted",
    [
        {"version": 2, "sha256Hash": "0" * 64},
        {"version": 1, "sha256Hash": "not-a-hash"},
        {"version": 1},
        "a string",
    ],
)
def test_a_malformed_persisted_query_is_a_bad_request(client: TestClient, persisted: Any) -> None:
    status, body = _post(client, {"extensions": {"persistedQuery": persisted}})
    assert status == 400 and _code(body) == "BAD_REQUEST"


def test_an_invalid_document_is_not_kept(client: TestClient) -> None:
    document = "{ platform { noSuchField } }"
    digest = _hash(document)
    body = _post(client, {"query": document, "extensions": _extensions(digest)})[1]
    assert _code(body) == "GRAPHQL_VALIDATION_FAILED"
    assert _code(_post(client, {"extensions": _extensions(digest)})[1]) == "PERSISTED_QUERY_NOT_FOUND"


def test_limits_apply_to_a_document_sent_by_its_hash(settings: Settings) -> None:
    deep = "query Deep { myCases { edges { node { id } } } }"
    with _app(settings.model_copy(update={"max_query_depth": 2})) as client:
        assert _code(_post(client, {"query": deep})[1]) == "GRAPHQL_VALIDATION_FAILED"
        digest = _hash(deep)
        for _ in range(2):  # refused as the text, then still refused: never kept
            body = _post(client, {"query": deep, "extensions": _extensions(digest)})[1]
            assert _code(body) == "GRAPHQL_VALIDATION_FAILED"
        assert _code(_post(client, {"extensions": _extensions(digest)})[1]) == "PERSISTED_QUERY_NOT_FOUND"


def test_the_input_guard_sees_the_variables_of_a_persisted_query(client: TestClient) -> None:
    document = "mutation Start($id: String!) { startLogin(input: {nationalId: $id}) { handle } }"
    digest = _hash(document)
    first = _post(client, {"query": document, "variables": {"id": "1"}, "extensions": _extensions(digest)})
    assert first[0] == 200, first
    variables = {"id": "17889200022\x00"}
    body = _post(client, {"variables": variables, "extensions": _extensions(digest)})[1]
    assert _code(body) == "BAD_USER_INPUT"


def test_a_mutation_by_its_hash_over_get_is_refused(client: TestClient) -> None:
    digest = _hash(MUTATION)
    status, body = _post(client, {"query": MUTATION, "extensions": _extensions(digest)})
    assert status == 200 and "errors" not in body, body  # kept, over POST
    response = client.get("/graphql", params={"extensions": json.dumps(_extensions(digest))})
    assert response.status_code in (400, 405), response.text
    assert _code(response.json()) == "BAD_REQUEST"
    assert "data" not in response.json()


@pytest.mark.redis
def test_every_process_knows_a_hash_through_redis(settings: Settings, redis_url: str) -> None:
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    shared = settings.model_copy(update={"redis_url": redis_url, "queue_namespace": namespace})
    digest = _hash(QUERY)
    try:
        with _app(shared) as first, _app(shared) as second:
            assert _code(_post(second, {"extensions": _extensions(digest)})[1]) == "PERSISTED_QUERY_NOT_FOUND"
            status, body = _post(first, {"query": QUERY, "extensions": _extensions(digest)})
            assert status == 200 and "errors" not in body
            status, body = _post(second, {"extensions": _extensions(digest)})
            assert status == 200 and "errors" not in body, body
            assert body["data"]["platform"]["environment"] == "development"
    finally:
        import redis

        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(f"{namespace}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_a_frontends_document_with_several_root_fields_aliases_and_a_fragment(client: TestClient) -> None:
    """What a real page sends: several root fields, aliases, a fragment; the answer by hash alone (as
    after a lost answer, retried) is the answer to the full text."""
    document = (
        "query Start { about: platform { ...Version } texts: consentTexts { version } "
        "again: platform { environment } } fragment Version on PlatformInfo { version }"
    )
    digest = hashlib.sha256(document.encode()).hexdigest()
    assert _code(_post(client, {"extensions": _extensions(digest)})[1]) == "PERSISTED_QUERY_NOT_FOUND"
    status, full = _post(client, {"query": document, "extensions": _extensions(digest)})
    assert status == 200 and "errors" not in full and set(full["data"]) == {"about", "texts", "again"}
    for _ in range(2):
        assert _post(client, {"extensions": _extensions(digest)}) == (200, full)


# --- how many one client may have kept ------------------------------------------------------------------


def _document(name: str) -> str:
    return f"query {name} {{ platform {{ version }} }}"


def _register(client: TestClient, document: str) -> dict[str, Any]:
    """Send a document with its hash, as a client does after PERSISTED_QUERY_NOT_FOUND: it must run."""
    status, body = _post(client, {"query": document, "extensions": _extensions(_hash(document))})
    assert status == 200 and "errors" not in body and body["data"], body
    return body


def _kept(client: TestClient, document: str) -> bool:
    status, body = _post(client, {"extensions": _extensions(_hash(document))})
    assert status == 200
    if "errors" in body:
        assert _code(body) == "PERSISTED_QUERY_NOT_FOUND"
        return False
    return True


def _rate_limited_count(client: TestClient) -> float:
    response = client.get("/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "legetime_rate_limited_total" and sample.labels == {
                "rule": "persisted_query.register"
            }:
                return sample.value
    return 0.0


def test_a_document_over_the_clients_limit_runs_but_is_not_kept(settings: Settings) -> None:
    first, second, third = _document("First"), _document("Second"), _document("Third")
    with _app(settings.model_copy(update={"persisted_query_rate_limit": "2/minute"})) as client:
        before = _rate_limited_count(client)
        for _ in range(3):  # asking by a hash costs nothing
            assert not _kept(client, second) and not _kept(client, third)
        _register(client, first)
        for _ in range(3):  # nor does a hash this process knows, sent again with its document
            _register(client, first)
        _register(client, second)
        assert _kept(client, first) and _kept(client, second)

        full = _register(client, third)  # the third: over the limit; it runs as sent
        assert not _kept(client, third)
        assert _register(client, third) == full  # and again, still not kept
        assert not _kept(client, third)
        assert _rate_limited_count(client) == before + 2
        assert _kept(client, first) and _kept(client, second)  # what was kept stays


def _big_document() -> str:
    """A valid query of over 20,000 characters within the default limits (15 aliases, 2,000 tokens)."""
    fields = " ".join(f"a{i}_{'x' * 1500}: platform {{ version }}" for i in range(15))
    document = f"query Big {{ {fields} }}"
    assert 20_000 < len(document) <= 30_000
    return document


def test_a_big_document_counts_more(settings: Settings) -> None:
    big, small = _big_document(), _document("Small")
    with _app(settings.model_copy(update={"persisted_query_rate_limit": "3/minute"})) as client:
        _register(client, big)
        assert _kept(client, big)
        _register(client, small)  # the big one counted three
        assert not _kept(client, small)


@pytest.mark.redis
def test_the_limit_is_shared_through_redis_and_nothing_over_it_is_stored(
    settings: Settings, redis_url: str
) -> None:
    import redis

    namespace = f"test-{uuid.uuid4().hex[:8]}"
    shared = settings.model_copy(
        update={
            "redis_url": redis_url,
            "queue_namespace": namespace,
            "persisted_query_rate_limit": "1/minute",
        }
    )
    kept, refused = _document("KeptOne"), _document("RefusedOne")
    store = redis.Redis.from_url(redis_url)
    try:
        with _app(shared) as first, _app(shared) as second:
            _register(first, kept)
            assert store.exists(f"{namespace}:persisted-query:{_hash(kept)}")
            _register(second, refused)  # the same client, in another process: over the limit
            assert not store.exists(f"{namespace}:persisted-query:{_hash(refused)}")
            assert not _kept(first, refused) and not _kept(second, refused)
            assert _kept(second, kept)  # from Redis
    finally:
        keys = list(store.scan_iter(f"{namespace}:*"))
        if keys:
            store.delete(*keys)
        store.close()


@pytest.mark.redis
def test_one_redis_client_follows_the_event_loop(redis_url: str) -> None:
    """The client is made on first use; a call on another event loop (its connections belong to the
    first) gets a client of its own, and closing closes it."""
    import redis

    prefix = f"test-{uuid.uuid4().hex[:8]}:persisted-query"
    persisted = PersistedQueries(redis_url, prefix=prefix)
    digest = _hash(QUERY)
    store = redis.Redis.from_url(redis_url)
    try:
        assert asyncio.run(persisted.get(digest)) is None
        store.set(f"{prefix}:{digest}", QUERY)

        async def read_then_close() -> str | None:
            text = await persisted.get(digest)
            await persisted.close()
            return text

        assert asyncio.run(read_then_close()) == QUERY
    finally:
        store.delete(f"{prefix}:{digest}")
        store.close()
