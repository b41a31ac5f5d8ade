"""Access rules as a matrix: every query and mutation × another patient, another guardian, an unassigned
clinician, an operator and an anonymous caller. Each gets an error that does not reveal whether the
object exists (the same error as for an ID that does not exist), and nothing changes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient
from strawberry import relay

from legetime.core.demo import DEMO_PEOPLE, create_demo_data
from legetime.core.identity import persons
from legetime.core.platform.config import Environment, Settings
from legetime.core.platform.db import models
from legetime.core.platform.db.engine import Database
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.api import SUBMIT_FIELDS, Api, complete_answers
from tests.migrated import upgrade
from tests.support import REAL_PROVIDERS, ProductionProviders, synthetic_national_id

MOTHER, CHILD = DEMO_PEOPLE[2].national_id, DEMO_PEOPLE[3].national_id
CLINICIAN, OPERATOR = DEMO_PEOPLE[0].national_id, DEMO_PEOPLE[1].national_id
OTHER_PATIENT = synthetic_national_id(date(1990, 1, 12))
OTHER_GUARDIAN = synthetic_national_id(date(1985, 3, 3))
OTHER_CHILD = synthetic_national_id(date(2014, 6, 1))
OTHER_CLINICIAN = synthetic_national_id(date(1975, 5, 5), female=False)


async def _add_clinician(settings: Settings, national_id: str) -> None:
    from legetime.core.identity.nationalid import parse_national_id

    platform = Platform.create(settings, load_entry_points=False)
    try:
        async with platform.db.transaction() as session:
            person = persons.new_person(
                platform,
                national_id,
                given_name="Per",
                family_name="Lege",
                birth_date=parse_national_id(national_id).birth_date,
            )
            session.add(person)
            await session.flush()
            session.add(models.StaffMembership(person_id=person.id, role=models.StaffRole.CLINICIAN))
        await create_demo_data(platform)
    finally:
        await platform.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A draft case and a claimed case (with a journal draft) of the mother's child, and the outsiders."""
    data_dir: Path = tmp_path_factory.mktemp("matrix")
    settings = Settings.defaults(data_dir=data_dir)
    upgrade(settings.resolved_database_url)
    asyncio.run(_add_clinician(settings, OTHER_CLINICIAN))
    platform = Platform.create(settings, load_entry_points=False)
    with TestClient(create_app(platform)) as client:
        api = Api(client)
        tokens = {
            name: api.login(nid)
            for name, nid in [
                ("mother", MOTHER),
                ("clinician", CLINICIAN),
                ("operator", OPERATOR),
                ("other_patient", OTHER_PATIENT),
                ("other_guardian", OTHER_GUARDIAN),
                ("other_clinician", OTHER_CLINICIAN),
            ]
        }
        mother = tokens["mother"]
        child = {"child": {"nationalId": CHILD, "guardianDeclared": True}}
        draft = api.ok("startCase", child, "case { id }", mother)["case"]["id"]
        claimed = api.ok("startCase", child, "case { id }", mother)["case"]["id"]
        api.ok(
            "answerQuestionnaire",
            {"caseId": claimed, "answers": complete_answers(api, for_child=True)},
            "case { id }",
            mother,
        )
        versions = {
            t["purpose"]: t["version"]
            for t in api.gql("{ consentTexts { purpose version } }")["consentTexts"]
        }
        for purpose in ("COMMUNICATION_STORAGE", "AI_JOURNAL"):
            api.ok(
                "grantConsent",
                {"purpose": purpose, "textVersion": versions[purpose], "caseId": claimed},
                "consent { granted }",
                mother,
            )
        api.ok("submitCase", {"caseId": claimed, "idempotencyKey": "m"}, SUBMIT_FIELDS, mother)
        api.ok("claimCase", {"caseId": claimed}, "case { id }", tokens["clinician"])
        api.ok("draftJournalNote", {"caseId": claimed}, "case { id }", tokens["clinician"])
        note = api.wait_for(
            lambda: api.gql(
                "query($id: ID!) { case(id: $id) { journalNotes { id } } }", tokens["clinician"], id=claimed
            )["case"]["journalNotes"],
            "a journal draft",
        )[0]["id"]
        message = api.ok("sendMessage", {"caseId": claimed, "body": "Hei"}, "message { id }", mother)
        # the other guardian has a child case of her own
        api.ok(
            "startCase",
            {"child": {"nationalId": OTHER_CHILD, "guardianDeclared": True}},
            "case { id }",
            tokens["other_guardian"],
        )
        yield {
            "api": api,
            "tokens": tokens,
            "draft": draft,
            "claimed": claimed,
            "note": note,
            "message": message["message"]["id"],
            "versions": versions,
            "platform": platform,
        }


OUTSIDERS = ["other_patient", "other_guardian", "other_clinician", "operator", "anonymous"]
MISSING_CASE = str(relay.GlobalID("Case", str(uuid.uuid4())))


def _mutations(
    world: dict[str, Any], case: dict[str, str], note: str
) -> list[tuple[str, dict[str, Any], str]]:
    v = world["versions"]
    return [
        (
            "answerQuestionnaire",
            {"caseId": case["draft"], "answers": [{"questionId": "main_complaint", "value": "x"}]},
            "case { id }",
        ),
        (
            "grantConsent",
            {
                "purpose": "COMMUNICATION_STORAGE",
                "textVersion": v["COMMUNICATION_STORAGE"],
                "caseId": case["draft"],
            },
            "consent { granted }",
        ),
        ("withdrawConsent", {"purpose": "AI_JOURNAL", "caseId": case["claimed"]}, "consent { granted }"),
        ("submitCase", {"caseId": case["draft"], "idempotencyKey": "x"}, "case { id }"),
        ("cancelCase", {"caseId": case["claimed"]}, "case { id }"),
        ("closeCase", {"caseId": case["claimed"]}, "case { id }"),
        ("claimCase", {"caseId": case["claimed"]}, "case { id }"),
        ("sendMessage", {"caseId": case["claimed"], "body": "Hei"}, "message { id }"),
        ("answerCase", {"caseId": case["claimed"], "body": "Svar", "outcome": "ADVICE"}, "case { id }"),
        ("draftJournalNote", {"caseId": case["claimed"]}, "case { id }"),
        ("approveJournalNote", {"noteId": note}, "note { id }"),
    ]


def _snapshot(world: dict[str, Any]) -> dict[str, Any]:
    async def take() -> dict[str, Any]:
        database = Database(world["platform"].settings.resolved_database_url)
        try:
            async with database.transaction() as session:
                counts = {}
                for model in (
                    models.Message,
                    models.Consent,
                    models.JournalNote,
                    models.Attachment,
                    models.PaymentReservation,
                    models.OutboxJob,
                    models.Participant,
                ):
                    counts[model.__tablename__] = await session.scalar(
                        select(func.count()).select_from(model)
                    )
                counts["cases"] = sorted(
                    (str(c.id), c.status.value, str(c.assigned_clinician_id), str(c.answers_sealed))
                    for c in (await session.scalars(select(models.Case))).all()
                )
                counts["notes"] = sorted(
                    (n.status.value, n.content_sealed)
                    for n in (await session.scalars(select(models.JournalNote))).all()
                )
                return counts
        finally:
            await database.dispose()

    return asyncio.run(take())


@pytest.mark.parametrize("outsider", OUTSIDERS)
def test_outsiders_can_not_change_a_case(world: dict[str, Any], outsider: str) -> None:
    api: Api = world["api"]
    token = world["tokens"].get(outsider)
    real = {"draft": world["draft"], "claimed": world["claimed"]}
    missing = {"draft": MISSING_CASE, "claimed": MISSING_CASE}
    before = _snapshot(world)
    for (name, input, fields), (_, missing_input, _) in zip(
        _mutations(world, real, world["note"]), _mutations(world, missing, str(uuid.uuid4())), strict=True
    ):
        payload = api.mutate(name, input, fields, token)
        assert payload["errors"], f"{outsider} could {name}"
        code = payload["errors"][0]["code"]
        expected = {"UNAUTHENTICATED"} if outsider == "anonymous" else {"NOT_FOUND"}
        assert code in expected, f"{outsider} {name}: {payload['errors']}"
        same = api.mutate(name, missing_input, fields, token)
        assert same["errors"] == payload["errors"], f"{outsider} {name} tells a real case from a missing one"
    upload = api.client.post(
        "/graphql",
        data={
            "operations": '{"query": "mutation($i: AttachImageInput!) '
            '{ attachImage(input: $i) { errors { code } } }", '
            f'"variables": {{"i": {{"caseId": "{world["draft"]}", "image": null}}}}}}',
            "map": '{"0": ["variables.i.image"]}',
        },
        files={"0": ("x.png", b"\x89PNG\r\n\x1a\n", "image/png")},
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    assert upload.json()["data"]["attachImage"]["errors"][0]["code"] in ("NOT_FOUND", "UNAUTHENTICATED")
    assert _snapshot(world) == before


@pytest.mark.parametrize("outsider", OUTSIDERS)
def test_outsiders_can_not_read_a_case(world: dict[str, Any], outsider: str) -> None:
    api: Api = world["api"]
    token = world["tokens"].get(outsider)
    for case_id in (world["draft"], world["claimed"], MISSING_CASE, world["note"]):
        for field in ("case", "node"):
            result = api.raw(f"query($id: ID!) {{ {field}(id: $id) {{ id }} }}", token, id=case_id)
            if token is None:
                assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            else:
                assert result == {"data": {field: None}}
    if token:
        mine = api.gql("{ myCases(first: 50) { edges { node { id } } } }", token)["myCases"]["edges"]
        assert not {world["draft"], world["claimed"]} & {edge["node"]["id"] for edge in mine}
    else:
        assert (
            api.raw("{ myCases { edges { node { id } } } }")["errors"][0]["extensions"]["code"]
            == "UNAUTHENTICATED"
        )


@pytest.mark.parametrize("outsider", OUTSIDERS)
def test_only_clinicians_see_the_queue_and_only_operators_the_overview(
    world: dict[str, Any], outsider: str
) -> None:
    api: Api = world["api"]
    token = world["tokens"].get(outsider)
    queue = api.raw("{ caseQueue { edges { node { id } } } }", token)
    if outsider == "other_clinician":
        ids = {edge["node"]["id"] for edge in queue["data"]["caseQueue"]["edges"]}
        assert world["claimed"] not in ids  # claimed by another clinician
    else:
        assert queue["errors"][0]["extensions"]["code"] in ("FORBIDDEN", "UNAUTHENTICATED")
    overview = api.raw("{ operatorOverview { openCases } }", token)
    if outsider == "operator":
        assert overview["data"]["operatorOverview"]["openCases"] >= 1
    else:
        assert overview["errors"][0]["extensions"]["code"] in ("FORBIDDEN", "UNAUTHENTICATED")


def test_the_owners_can(world: dict[str, Any]) -> None:
    """The matrix means something: the mother and the assigned clinician do see the case."""
    api: Api = world["api"]
    for who in ("mother", "clinician"):
        case = api.gql(
            "query($id: ID!) { case(id: $id) { id status } }", world["tokens"][who], id=world["claimed"]
        )
        assert case["case"]["status"] == "IN_REVIEW"
    note = "query($id: ID!) { node(id: $id) { ... on JournalNote { status } } }"
    assert api.gql(note, world["tokens"]["clinician"], id=world["note"])["node"] == {"status": "DRAFT"}
    assert api.gql(note, world["tokens"]["mother"], id=world["note"])["node"] is None  # a draft: staff only


# --- existence oracles: a real id and a made-up one get the same answer ---------------------------------


@dataclass(frozen=True)
class ById:
    """An operation that takes an id: its document (the id is the variable ``$id``, or ``$input``'s
    ``id_field``), which of the world's objects it names, and who may do it (left out: they may know)."""

    name: str
    document: str
    target: str  # "draft" | "claimed" | "note" | "message"
    allowed: frozenset[str]
    id_field: str | None = None
    input: dict[str, Any] | None = None

    def variables(self, object_id: str) -> dict[str, Any]:
        if self.id_field is None:
            return {"id": object_id}
        return {"input": {**(self.input or {}), self.id_field: object_id}}


def _mutation(name: str, fields: str, id_field: str, target: str, allowed: set[str], **input: Any) -> ById:
    document = (
        f"mutation($input: {name[0].upper()}{name[1:]}Input!) "
        f"{{ {name}(input: $input) {{ {fields} errors {{ field code message }} }} }}"
    )
    return ById(name, document, target, frozenset(allowed), id_field, input)


def _by_id(world: dict[str, Any]) -> list[ById]:
    """Every query and mutation that takes the id of a case, a journal note or a message."""
    versions = world["versions"]
    case = "query($id: ID!) { case(id: $id) { id number status } }"
    node = "query($id: ID!) { node(id: $id) { id ... on Case { number } ... on JournalNote { status } } }"
    answers = [{"questionId": "main_complaint", "value": "x"}]
    storage = {"purpose": "COMMUNICATION_STORAGE", "textVersion": versions["COMMUNICATION_STORAGE"]}
    return [
        ById("case", case, "draft", frozenset({"mother"})),
        ById("case", case, "claimed", frozenset({"mother", "clinician"})),
        ById("node", node, "claimed", frozenset({"mother", "clinician"})),
        ById("node", node, "note", frozenset({"clinician"})),  # a draft: the mother gets null either way
        _mutation("answerQuestionnaire", "case { id }", "caseId", "draft", {"mother"}, answers=answers),
        _mutation("grantConsent", "consent { granted }", "caseId", "draft", {"mother"}, **storage),
        _mutation(
            "withdrawConsent",
            "consent { granted } erasure { cases }",
            "caseId",
            "claimed",
            {"mother"},
            purpose="COMMUNICATION_STORAGE",
        ),
        _mutation("submitCase", "case { id }", "caseId", "draft", {"mother"}, idempotencyKey="x"),
        _mutation("confirmPayment", "case { id }", "caseId", "claimed", {"mother"}),
        _mutation("cancelCase", "case { id }", "caseId", "claimed", {"mother"}),
        _mutation("closeCase", "case { id }", "caseId", "claimed", {"mother"}),
        _mutation("claimCase", "case { id }", "caseId", "claimed", {"clinician"}),
        _mutation(
            "sendMessage",
            "message { id } case { id }",
            "caseId",
            "claimed",
            {"mother", "clinician"},
            body="x",
        ),
        _mutation(
            "answerCase", "message { id }", "caseId", "claimed", {"clinician"}, body="x", outcome="ADVICE"
        ),
        _mutation("draftJournalNote", "case { id }", "caseId", "claimed", {"clinician"}),
        _mutation("approveJournalNote", "note { id }", "noteId", "note", {"clinician"}),
        _mutation("setWithheldFromGuardian", "case { id }", "messageId", "message", {"clinician"}),
        _mutation("setWithheldFromGuardian", "case { id }", "noteId", "note", {"clinician"}),
    ]


def _made_up(target: str) -> str:
    if target == "message":
        return str(uuid.uuid4())  # messages are not Relay nodes: their ids are bare UUIDs
    return str(relay.GlobalID("JournalNote" if target == "note" else "Case", str(uuid.uuid4())))


def _attach(api: Api, case_id: str, token: str | None) -> dict[str, Any]:
    """attachImage for a case id: the one id-taking mutation sent as a multipart request."""
    query = (
        "mutation($i: AttachImageInput!) "
        "{ attachImage(input: $i) { attachment { id } errors { field code message } } }"
    )
    operations = {"query": query, "variables": {"i": {"caseId": case_id, "image": None}}}
    response = api.client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.i.image"]})},
        files={"0": ("x.png", b"\x89PNG\r\n\x1a\n", "image/png")},
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _refused(answer: dict[str, Any], anonymous: bool) -> bool:
    """The operation did nothing for the caller: a top-level error, a null result or a payload with errors
    and nothing else; an anonymous caller is told to log in."""
    codes = [e.get("extensions", {}).get("code") for e in answer.get("errors", [])]
    data = answer.get("data") or {}
    for value in data.values():
        if isinstance(value, dict):
            codes += [e["code"] for e in value["errors"]]
            assert all(v is None for k, v in value.items() if k != "errors"), answer
        elif value is not None:
            return False
    if anonymous:
        return codes == ["UNAUTHENTICATED"]
    return codes in ([], ["NOT_FOUND"])


@pytest.mark.parametrize("caller", ["mother", "clinician", *OUTSIDERS])
def test_a_real_id_and_a_made_up_one_get_the_same_answer(world: dict[str, Any], caller: str) -> None:
    """Whoever may not see an object gets, for its id, exactly the answer she gets for an id that names
    nothing (data, code, message, field): anonymous callers, outsiders and the wrong role alike."""
    api: Api = world["api"]
    token = world["tokens"].get(caller)
    before = _snapshot(world)
    checked = []
    for operation in _by_id(world):
        if caller in operation.allowed:
            continue
        real = api.raw(operation.document, token, **operation.variables(world[operation.target]))
        made_up = api.raw(operation.document, token, **operation.variables(_made_up(operation.target)))
        label = f"{caller} {operation.name}({operation.target})"
        assert real == made_up, f"{label} tells a real id from a made-up one: {real} / {made_up}"
        assert _refused(real, anonymous=token is None), f"{label}: {real}"
        checked.append(label)
    if caller != "mother":
        real, made_up = _attach(api, world["draft"], token), _attach(api, _made_up("draft"), token)
        assert real == made_up and _refused(real, anonymous=token is None), (real, made_up)
    assert len(checked) >= 7  # the table means something for every caller
    assert _snapshot(world) == before


def test_a_plugin_is_not_found_by_id_where_the_list_is_refused(tmp_path: Path) -> None:
    """In production the plugin list is for operators: `node` answers for a loaded plugin as it does for
    a name that is not one."""
    settings = Settings.defaults(data_dir=tmp_path / "data").model_copy(
        update={"environment": Environment.PRODUCTION, "graphiql": False, **REAL_PROVIDERS}
    )
    platform = Platform.create(settings, extra_plugins=[ProductionProviders()], load_entry_points=False)
    with TestClient(create_app(platform, run_jobs_in_process=False)) as client:
        api = Api(client)
        query = "query($id: ID!) { node(id: $id) { id ... on Plugin { name version } } }"
        real = api.raw(query, id=str(relay.GlobalID("Plugin", "core.core_plugin")))
        made_up = api.raw(query, id=str(relay.GlobalID("Plugin", "core.no_such_plugin")))
    assert real == made_up == {"data": {"node": None}}
