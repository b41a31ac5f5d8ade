"""Bad input at the boundary: control characters, strings longer than any field takes, cursors and ids
the database cannot hold. Each is a typed error through GraphQL, on SQLite and PostgreSQL, and nothing is
stored; never a database's own error text."""

from __future__ import annotations

import base64
import json
from datetime import date, timedelta
from typing import Any

import pytest

from legetime.core.demo import DEMO_PEOPLE
from tests.api import Api
from tests.rules.test_nationalid import build

MOTHER, CHILD = DEMO_PEOPLE[2].national_id, DEMO_PEOPLE[3].national_id
DATABASE_WORDS = (
    "sqlite",
    "psycopg",
    "asyncpg",
    "invalid byte sequence",
    "SELECT",
    "INSERT",
    "OverflowError",
)


@pytest.fixture
def api(served: tuple[Api, Any]) -> Api:
    return served[0]


def _refused(result: dict[str, Any], field: str) -> None:
    assert result.get("errors"), result
    error = result["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["field"] == field, error
    assert not any(word.lower() in json.dumps(result).lower() for word in DATABASE_WORDS), result


MUTATION = "mutation($input: {type}!) {{ {name}(input: $input) {{ errors {{ field code message }} }} }}"


def _mutate(api: Api, name: str, input: dict[str, Any], token: str) -> dict[str, Any]:
    query = MUTATION.format(type=f"{name[0].upper()}{name[1:]}Input", name=name)
    return api.raw(query, token, input=input)


@pytest.mark.parametrize("bad", ["a\x00b", "a\x1bb", "a\x7fb", "x" * 20_001])
def test_control_characters_and_endless_strings_are_refused_and_nothing_is_stored(api: Api, bad: str) -> None:
    mother = api.login(MOTHER)
    child = {"nationalId": CHILD, "givenName": bad, "guardianDeclared": True}
    _refused(_mutate(api, "startCase", {"child": child}, mother), "child.givenName")
    assert api.gql("{ myCases(first: 5) { edges { cursor } } }", mother)["myCases"]["edges"] == []

    case_id = api.ok("startCase", {}, "case { id }", mother)["case"]["id"]
    _refused(_mutate(api, "sendMessage", {"caseId": case_id, "body": bad}, mother), "body")
    _refused(_mutate(api, "submitCase", {"caseId": case_id, "idempotencyKey": bad}, mother), "idempotencyKey")
    _refused(_mutate(api, "updateMyPhone", {"phone": bad}, mother), "phone")
    query = "query($id: ID!) { case(id: $id) { status messages { body } payment { status } } }"
    case = api.gql(query, mother, id=case_id)["case"]
    assert case == {"status": "DRAFT", "messages": [], "payment": None}
    # An inline literal is held to the same rule as a variable.
    inline = api.raw('mutation { startLogin(input: {nationalId: "1788\\u00009200022"}) { handle } }')
    _refused(inline, "nationalId")


def test_text_with_line_breaks_tabs_and_any_script_is_fine(api: Api) -> None:
    mother = api.login(MOTHER)
    case_id = api.ok("startCase", {}, "case { id }", mother)["case"]["id"]
    payload = _mutate(
        api, "sendMessage", {"caseId": case_id, "body": "Linje én\n\tÆØÅ – 日本 😀\r\n"}, mother
    )
    # A draft takes no messages: a domain refusal, not a refusal of the text.
    assert payload["data"]["sendMessage"]["errors"][0]["code"] != "BAD_USER_INPUT"


@pytest.mark.parametrize(
    "cursor",
    [
        base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00+00:00", "not-a-uuid"]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00\u0000", "x"]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([2**70, 1]).encode()).decode(),
        "!!!not base64!!!",
    ],
)
def test_a_cursor_that_is_not_ours_is_a_typed_error(api: Api, cursor: str) -> None:
    mother = api.login(MOTHER)
    result = api.raw(
        "query($a: String) { myCases(first: 2, after: $a) { edges { cursor } } }", mother, a=cursor
    )
    assert result["errors"][0]["extensions"] == {"code": "INVALID", "field": "after"}
    assert not any(word.lower() in json.dumps(result).lower() for word in DATABASE_WORDS), result


@pytest.mark.parametrize("before", [str(2**64), "12abc", "-1", "9" * 40])
def test_an_access_log_position_the_column_cannot_hold_is_a_typed_error(api: Api, before: str) -> None:
    mother = api.login(MOTHER)
    result = api.raw("query($b: ID) { myAccessLog(first: 2, before: $b) { action } }", mother, b=before)
    assert result["errors"][0]["extensions"]["field"] == "before"
    assert result["errors"][0]["extensions"]["code"] == "INVALID"
    assert not any(word.lower() in json.dumps(result).lower() for word in DATABASE_WORDS), result


def test_a_national_id_born_in_the_future_is_a_typed_refusal(api: Api) -> None:
    not_yet_born = build(date.today() + timedelta(days=2), 500, synthetic=True)
    mother = api.login(MOTHER)
    child = {"nationalId": not_yet_born, "givenName": "Ny", "guardianDeclared": True}
    refused = api.mutate("startCase", {"child": child}, "case { id }", mother)
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [
        ("childNationalId", "INVALID_NATIONAL_ID")
    ]
    assert api.gql("{ myCases(first: 5) { edges { cursor } } }", mother)["myCases"]["edges"] == []
    # Nobody not yet born logs in (her every later age would be negative).
    started = api.mutate("startLogin", {"nationalId": not_yet_born}, "handle", None)
    if not started["errors"]:
        completed = api.mutate("completeLogin", {"handle": started["handle"]}, "token", None)
        assert completed["token"] is None
        assert [e["code"] for e in completed["errors"]] == ["INVALID_NATIONAL_ID"]
    else:
        assert [e["code"] for e in started["errors"]] == ["INVALID_NATIONAL_ID"]
