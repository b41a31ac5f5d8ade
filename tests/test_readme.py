"""The README's GraphiQL walkthrough works as written: every ```graphql block, pasted in order by the
person the step names, answers without errors."""

from __future__ import annotations

import re
from typing import Any

from legetime.core.platform.runtime import Platform
from tests.api import Api
from tests.cli import ROOT

BLOCK = re.compile(r"```graphql\n(.*?)```", re.S)
WHO = {"Sofie": "17889200022", "Nora": "14897800048", "Lars": "02818500125"}


def _blocks() -> list[tuple[str, str]]:
    """(person, operation) for each block: the person is the last one a step heading names."""
    readme = (ROOT / "README.md").read_text()
    walkthrough = readme[readme.index("## A consultation in GraphiQL") :]
    out, person = [], "Sofie"
    for part in re.split(r"(\*\*\d\..*?\*\*)", walkthrough):
        if part.startswith("**"):
            person = next((name for name in WHO if name in part), person)
            continue
        out.extend((person, block) for block in BLOCK.findall(part))
    return out


def test_the_readme_walkthrough_runs(embedded: tuple[Api, Platform]) -> None:
    api, _ = embedded
    blocks = _blocks()
    assert len(blocks) >= 15
    tokens: dict[str, str] = {}
    found: dict[str, str] = {}
    for person, operation in blocks:
        if "startLogin" in operation and person != "Sofie":
            operation = operation.replace(WHO["Sofie"], WHO[person])
        for placeholder, value in found.items():
            operation = operation.replace(placeholder, value)
        token = tokens.get(person)
        if "completeLogin" not in operation and "startLogin" not in operation and token is None:
            tokens[person] = token = api.login(WHO[person])
        result = api.raw(operation, token)
        assert "errors" not in result, (operation, result)
        payload: Any = next(iter(result["data"].values()))
        assert not (isinstance(payload, dict) and payload.get("errors")), (operation, payload)
        _remember(payload, found, tokens, person)
        if "journalNotes" in operation and not found.get("<note id>"):
            notes = api.wait_for(
                lambda op=operation, t=token: api.gql(op, t)["case"]["journalNotes"], "the journal draft"
            )
            found["<note id>"] = notes[0]["id"]


def _remember(payload: Any, found: dict[str, str], tokens: dict[str, str], person: str) -> None:
    if not isinstance(payload, dict):
        return
    if payload.get("handle"):
        found["<handle from above>"] = payload["handle"]
    if payload.get("token"):
        tokens[person] = payload["token"]
    case = payload.get("case")
    if isinstance(case, dict) and case.get("id"):
        found["<case id>"] = case["id"]
