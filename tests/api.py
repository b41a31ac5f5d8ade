"""A GraphQL client for tests: operations over HTTP as a frontend sends them (JSON and multipart)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from starlette.testclient import TestClient

SUBMIT_FIELDS = "case { id number status slaDueAt payment { status provider authorized captured released } } "
ERRORS = "errors { field code message }"


class Api:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    def raw(self, query: str, token: str | None = None, **variables: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def gql(self, query: str, token: str | None = None, **variables: Any) -> dict[str, Any]:
        """Data of an operation that must not fail at the top level."""
        result = self.raw(query, token, **variables)
        assert "errors" not in result, result["errors"]
        return dict(result["data"])

    def mutate(
        self, name: str, input: dict[str, Any], fields: str, token: str | None = None
    ) -> dict[str, Any]:
        """A mutation's payload (``errors`` included, for the caller to check)."""
        input_type = f"{name[0].upper()}{name[1:]}Input"
        data = self.gql(
            f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {fields} {ERRORS} }} }}",
            token,
            input=input,
        )
        return dict(data[name])

    def ok(self, name: str, input: dict[str, Any], fields: str, token: str | None = None) -> dict[str, Any]:
        payload = self.mutate(name, input, fields, token)
        assert payload["errors"] == [], payload["errors"]
        return payload

    def login(self, national_id: str) -> str:
        started = self.ok("startLogin", {"nationalId": national_id}, "handle")
        completed = self.ok("completeLogin", {"handle": started["handle"]}, "token pending")
        assert completed["token"], completed
        return str(completed["token"])

    def upload(self, case_id: str, data: bytes, token: str, filename: str = "bilde.jpg") -> dict[str, Any]:
        """attachImage as the GraphQL multipart request spec has it."""
        query = (
            "mutation($input: AttachImageInput!) { attachImage(input: $input) { "
            f"attachment {{ id contentType width height url }} {ERRORS} }} }}"
        )
        operations = {"query": query, "variables": {"input": {"caseId": case_id, "image": None}}}
        response = self.client.post(
            "/graphql",
            data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.input.image"]})},
            files={"0": (filename, data, "application/octet-stream")},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        return dict(body["data"]["attachImage"])

    def wait_for(self, check: Callable[[], Any], what: str, within: float = 30) -> Any:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")


QUESTIONNAIRE = """
query { questionnaire { key version questions { id type required audience choices { value } min max
  shownIf { question } } } }
"""


def complete_answers(api: Api, *, for_child: bool) -> list[dict[str, Any]]:
    """Valid answers to every question shown by default (no to every yes/no, so no follow-ups)."""
    questions = api.gql(QUESTIONNAIRE)["questionnaire"]["questions"]
    audience = {"all", "child" if for_child else "self"}
    answers = []
    for q in questions:
        if q["audience"] not in audience or q["shownIf"] is not None:
            continue
        kind = q["type"]
        if kind == "text":
            value: Any = "Utslett på armen i tre dager"
        elif kind == "single_choice":
            value = q["choices"][0]["value"]
        elif kind == "multi_choice":
            value = [q["choices"][0]["value"]]
        elif kind == "yes_no":
            value = False
        elif kind == "number":
            low, high = q["min"], q["max"]
            value = (
                int(low if low is not None else 1)
                if high is None
                else int((low or 0) + (high - (low or 0)) / 2)
            )
        elif kind == "date":
            value = (date.today() - timedelta(days=3)).isoformat()
        else:
            raise AssertionError(f"unknown question type {kind}")
        answers.append({"questionId": q["id"], "value": value})
    return answers
