"""The README's GraphiQL walkthrough works as written: every ```graphql block, pasted in order by the
person the step names, answers without errors; a subscription, left open in a tab of its own (a real
``graphql-transport-ws`` client), shows the updates of what the later steps change."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import gql

from legetime.core.platform.config import Settings
from tests.api import Api
from tests.cli import ROOT, run_cli
from tests.migrated import upgrade
from tests.test_subscriptions import Follower, serving

BLOCK = re.compile(r"```graphql\n(.*?)```", re.S)
WHO = {"Sofie": "17889200022", "Nora": "14897800048", "Lars": "02818500125"}


def _blocks() -> list[tuple[str, str]]:
    """(person, operation) for each block: the person is the last one a step heading names."""
    readme = (ROOT / "README.md").read_text()
    walkthrough = readme[readme.index("## A consultation in GraphiQL") :]
    out, person = [], "Sofie"
    for part in re.split(r"(\*\*\d+\..*?\*\*)", walkthrough, flags=re.S):
        if part.startswith("**"):
            person = next((name for name in WHO if name in part), person)
            continue
        out.extend((person, block) for block in BLOCK.findall(part))
    return out


COMMAND = re.compile(r"^\.venv/bin/legetime (.+)$", re.M)


@pytest.fixture
def address(tmp_path: Path) -> Iterator[str]:
    """An empty installation of the embedded default (SQLite, in-process jobs; no demo data) after the
    README's commands, under uvicorn: HTTP and websockets."""
    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings.resolved_database_url)
    walkthrough = (ROOT / "README.md").read_text().split("## A consultation in GraphiQL")[1]
    commands = COMMAND.findall(walkthrough)
    assert commands, "the walkthrough runs no command"
    for command in commands:
        done = run_cli(*shlex.split(command), env={"LEGETIME_DATA_DIR": str(settings.data_dir)})
        assert done.returncode == 0, done.stderr
    with serving(settings) as address:
        yield address


def test_the_readme_walkthrough_runs(address: str) -> None:
    with httpx.Client(base_url=f"http://{address}", timeout=30) as client:
        api = Api(client)  # type: ignore[arg-type]
        [hers] = _walk_through(api, address)
        api.wait_for(lambda: "case.closed" in _types(hers.received), "her case's updates")
        received = _types(hers.close())
        texts = api.gql("{ operatorOverview { sms { attempts { sender } } } }", api.login(WHO["Lars"]))
    steps = ["case.started", "case.submitted", "case.claimed", "case.answered", "case.closed"]
    assert [kind for kind in received if kind in steps] == steps
    senders = {a["sender"] for notice in texts["operatorOverview"]["sms"] for a in notice["attempts"]}
    assert senders == {"Klinikken"}  # the sender Lars set, without a restart


def _types(updates: list[dict[str, Any]]) -> list[str]:
    return [update["type"] for update in updates]


def _walk_through(api: Api, address: str) -> list[Follower]:
    blocks = _blocks()
    assert len(blocks) >= 15
    tokens: dict[str, str] = {}
    found: dict[str, str] = {}
    followers: list[Follower] = []
    for person, operation in blocks:
        if "startLogin" in operation and person != "Sofie":
            operation = operation.replace(WHO["Sofie"], WHO[person])
        for placeholder, value in found.items():
            operation = operation.replace(placeholder, value)
        token = tokens.get(person)
        if "completeLogin" not in operation and "startLogin" not in operation and token is None:
            tokens[person] = token = api.login(WHO[person])
        if operation.lstrip().startswith("subscription"):
            assert token is not None
            followers.append(Follower(address, token, gql(operation)))
            continue
        result = api.raw(operation, token)
        assert "errors" not in result, (operation, result)
        payload: Any = next(iter(result["data"].values()))
        assert not (isinstance(payload, dict) and payload.get("errors")), (operation, payload)
        if isinstance(payload, list) and "freeSlots" in operation:
            found["<slot id>"] = payload[0]["id"]
        _remember(payload, found, tokens, person)
        if "journalNotes" in operation and not found.get("<note id>"):
            notes = api.wait_for(
                lambda op=operation, t=token: api.gql(op, t)["case"]["journalNotes"], "the journal draft"
            )
            found["<note id>"] = notes[0]["id"]
    return followers


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
    for key, placeholder in (("clinic", "<clinic id>"), ("appointment", "<appointment id>")):
        if isinstance(payload.get(key), dict) and payload[key].get("id"):
            found[placeholder] = payload[key]["id"]
    member = payload.get("member")
    if isinstance(member, dict) and member.get("personId"):
        found["<clinician id>"] = member["personId"]
