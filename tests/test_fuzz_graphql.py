"""Property-based fuzzing of every query and mutation (schemathesis, generated from the live schema), as a
patient and as a clinician: no answer is a server error, and every error, top-level or in a payload, has
a code from ``ErrorCode``. Bounded and derandomized, so it costs the same every run (a few seconds) and
fails the same way when it fails; raise ``LEGETIME_FUZZ_EXAMPLES`` for a longer hunt."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from graphql import NameNode, NullValueNode, ObjectFieldNode, ObjectValueNode, StringValueNode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform.config import Settings
from legetime.core.platform.errors import ErrorCode
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.api import Api
from tests.conftest import seed_demo
from tests.migrated import upgrade

EXAMPLES = int(os.environ.get("LEGETIME_FUZZ_EXAMPLES", "4"))
CODES = {code.value for code in ErrorCode}
PEOPLE = {"patient": DEMO_PEOPLE[2].national_id, "clinician": DEMO_PEOPLE[0].national_id}

# A JSON body cannot carry a file (uploads are multipart, tested in test_consultation_flow): null here.
schemathesis.graphql.scalar("Upload", st.just(NullValueNode()))


def _json_object(items: dict[str, str]) -> ObjectValueNode:
    fields = tuple(
        ObjectFieldNode(name=NameNode(value=key), value=StringValueNode(value=value))
        for key, value in items.items()
    )
    return ObjectValueNode(fields=fields)


# The JSON scalar (settings' values): an object literal of names and strings.
schemathesis.graphql.scalar(
    "JSON",
    st.dictionaries(st.from_regex(r"\A[a-z_]{1,20}\Z"), st.text(max_size=20), max_size=3).map(_json_object),
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str]]]:
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    # Logins come from one test client: lift the per-client limit, which tests/test_rate_limits.py covers.
    settings = Settings(
        data_dir=data_dir, login_rate_limit="10000/minute", login_poll_rate_limit="10000/minute"
    )
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    asgi = create_app(Platform.create(settings, load_entry_points=False), run_jobs_in_process=False)
    with TestClient(asgi) as client:
        api = Api(client)
        tokens = {role: api.login(national_id) for role, national_id in PEOPLE.items()}
        api.ok("startCase", {}, "case { id }", tokens["patient"])  # something to find
        yield asgi, tokens


def _codes_of(body: Any, *, in_errors: bool = False) -> Iterator[str]:
    """Every error code in an answer: top-level errors' extensions and payloads' ``errors { code }``
    (not other fields named ``code``, such as an appointment type's)."""
    if isinstance(body, dict):
        for key, value in body.items():
            if key == "code" and in_errors and isinstance(value, str):
                yield value
            else:
                yield from _codes_of(value, in_errors=in_errors or key in ("errors", "extensions"))
    elif isinstance(body, list):
        for item in body:
            yield from _codes_of(item, in_errors=in_errors)


@pytest.mark.parametrize("role", sorted(PEOPLE))
def test_no_operation_answers_a_server_error_or_an_untyped_error(
    app: tuple[Any, dict[str, str]], role: str
) -> None:
    asgi, tokens = app
    schema = schemathesis.graphql.from_asgi("/graphql", asgi)
    headers = {"Authorization": f"Bearer {tokens[role]}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30  # every root field, queries and mutations

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(headers=headers)
            body = response.json()
            problem = None
            if response.status_code >= 500:
                problem = f"HTTP {response.status_code}"
            else:
                untyped = [
                    e for e in body.get("errors") or () if (e.get("extensions") or {}).get("code") is None
                ]
                unknown = set(_codes_of(body)) - CODES
                if untyped or unknown:
                    problem = f"untyped {untyped[:1]} unknown {sorted(unknown)}"
            if problem:
                failures.append(f"{case.operation.label}: {problem}\n{case.body}\n{json.dumps(body)[:400]}")

        run()
    assert not failures, "\n\n".join(failures[:5])
