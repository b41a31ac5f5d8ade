"""The appointments' access rules as a matrix, through GraphQL: every role × every operation, with the
outcome each must get. Roles: the patient herself, the guardian of a child under 16 (and the same guardian
once the child is 16), another patient, the appointment's clinician, another clinician, an operator, an
integrator's token and an anonymous caller. A refusal reveals nothing: it is the same error as for an id
that does not exist, and nothing changes. Every allowed read is in the access log, with the reader's role."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import select

from legetime.core.platform.db.models import AuditEvent
from tests.appointment_stack import AppointmentStack, appointment_stack
from tests.support import synthetic_national_id
from tests.test_appointment_forms import DECLARATION
from tests.test_notices import MOTHER

OTHER_PATIENT = synthetic_national_id(date(1990, 1, 12))
OTHER_CLINICIAN = synthetic_national_id(date(1975, 5, 5), female=False)
CHILD = synthetic_national_id(date(2017, 6, 1))
SECRET = "Vondt i kneet etter fall."
FIELDS = "appointment { id status startsAt message forms { answers } }"
READ = f"query($id: ID!) {{ {FIELDS} }}".replace("appointment {", "appointment(id: $id) {")
MISSING = str(uuid.uuid4())
OK, CONTENT, NO_CONTENT = "ok", "content", "no content"
NOT_FOUND, UNAUTHENTICATED, FORBIDDEN = "NOT_FOUND", "UNAUTHENTICATED", "FORBIDDEN"

ROLES = (
    "patient",
    "guardian",
    "other_patient",
    "clinician",
    "other_clinician",
    "operator",
    "integrator",
    "anonymous",
)
TOKEN = {"patient": "mother", "guardian": "mother"}
"""The guardian is the mother acting on her child's appointment; every other role acts on hers."""


class World:
    def __init__(self, stack: AppointmentStack) -> None:
        self.stack, self.api = stack, stack.api
        api, operator = stack.api, stack.operator
        invite = {"nationalId": OTHER_CLINICIAN, "role": "CLINICIAN", "hprNumber": "7654321"}
        api.ok("inviteStaff", invite, "member { personId }", operator)
        made = api.ok(
            "createIntegratorAccount",
            {"name": "Journalsystemet", "scopes": ["READ_CASE_STATUS"]},
            "token",
            operator,
        )
        self.tokens: dict[str, str | None] = {
            "mother": stack.mother,
            "clinician": stack.clinician,
            "operator": operator,
            "other_patient": api.login(OTHER_PATIENT),
            "other_clinician": api.login(OTHER_CLINICIAN),
            "integrator": made["token"],
            "anonymous": None,
        }
        self.slots = [s["id"] for s in stack.slots(days=4, span=9)]

    def token(self, role: str) -> str | None:
        return self.tokens[TOKEN.get(role, role)]

    def appointment(self, role: str, *, request: bool = False) -> dict[str, Any]:
        """A fresh appointment of the mother (for the guardian: of her child), with a message."""
        extra: dict[str, Any] = {"message": SECRET}
        if role == "guardian":
            extra |= {"childNationalId": CHILD, "childGivenName": "Ola", "guardianDeclared": True}
        booked = self.stack.book(None if request else self.slots.pop(0), token=self.stack.mother, **extra)
        assert booked["errors"] == [], booked
        return dict(booked["appointment"])

    def as_operator(self, appointment_id: str) -> dict[str, Any]:
        return dict(self.api.gql(READ, self.tokens["operator"], id=appointment_id)["appointment"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with appointment_stack(Path(tmp_path_factory.mktemp("appointment_matrix"))) as stack:
        yield World(stack)


# The tests that move the clock come first and bring their own stack: the clock is the process's, and
# the shared world below must not see it jump (its timed texts would run days ahead).


def test_staff_mark_a_no_show_once_the_visit_began(tmp_path: Path) -> None:
    """(A stack of its own in the simulated clock: it shuts down in it.)"""
    with (
        time_machine.travel(datetime.now(UTC), tick=True) as traveller,
        appointment_stack(tmp_path) as stack,
    ):
        target = stack.book(stack.slots()[0]["id"], message=SECRET)["appointment"]
        traveller.move_to(datetime.fromisoformat(target["startsAt"]) + timedelta(minutes=20))
        stranger = stack.api.login(OTHER_PATIENT)
        refused = stack.api.mutate("markNoShow", {"appointmentId": target["id"]}, FIELDS, stranger)
        assert refused["errors"][0]["code"] == NOT_FOUND
        stack.login()
        missed = stack.api.ok("markNoShow", {"appointmentId": target["id"]}, FIELDS, stack.operator)
        assert missed["appointment"]["status"] == "NO_SHOW"


def test_the_guardian_loses_access_when_the_child_turns_16(tmp_path: Path) -> None:
    """Her appointment booked at 15 is the mother's to read, move and cancel until the birthday; then it is
    the teenager's alone: not found for the mother, gone from her list. (The stack lives in the simulated
    clock, so it also shuts down in it.)"""
    with (
        time_machine.travel(datetime.now(UTC), tick=True) as traveller,
        appointment_stack(tmp_path) as stack,
    ):
        api = stack.api
        today = datetime.now(UTC).astimezone(stack.platform.settings.zone).date()
        birthday = today + timedelta(days=2)
        teenager = synthetic_national_id(date(birthday.year - 16, birthday.month, birthday.day))
        child: dict[str, Any] = {
            "childNationalId": teenager,
            "childGivenName": "Kari",
            "guardianDeclared": True,
        }
        target = stack.book(stack.slots(days=6)[0]["id"], message=SECRET, **child)["appointment"]
        assert api.gql(READ, stack.mother, id=target["id"])["appointment"]["message"] == SECRET

        traveller.move_to(datetime.now(UTC) + timedelta(days=3))
        mother = api.login(MOTHER)
        refused = api.raw(READ, mother, id=target["id"])
        assert refused["errors"][0]["extensions"]["code"] == NOT_FOUND
        assert api.gql("{ myAppointments { id } }", mother)["myAppointments"] == []
        cancel = api.mutate("cancelAppointment", {"appointmentId": target["id"]}, FIELDS, mother)
        assert cancel["errors"][0]["code"] == NOT_FOUND
        her = api.login(teenager)  # she logs in herself now
        assert api.gql(READ, her, id=target["id"])["appointment"]["message"] == SECRET


def _read(world: World, role: str, appointment_id: str) -> str:
    result = world.api.raw(READ, world.token(role), id=appointment_id)
    if result.get("errors"):
        return str(result["errors"][0]["extensions"]["code"])
    seen = result["data"]["appointment"]
    if seen["message"] == SECRET and seen["forms"] and seen["forms"][0]["answers"]:
        return CONTENT
    assert seen["message"] is None and all(f["answers"] is None for f in seen["forms"])
    return NO_CONTENT


READS = {
    "patient": CONTENT,
    "guardian": CONTENT,
    "other_patient": NOT_FOUND,
    "clinician": CONTENT,
    "other_clinician": NOT_FOUND,
    "operator": NO_CONTENT,
    "integrator": UNAUTHENTICATED,
    "anonymous": UNAUTHENTICATED,
}


def test_reading_one_appointment_and_its_content(world: World) -> None:
    targets = {role: world.appointment("guardian" if role == "guardian" else "patient") for role in ROLES}
    for target in targets.values():  # her health declaration: content like the message
        input = {"appointmentId": target["id"], "kind": "HEALTH_DECLARATION", "answers": DECLARATION}
        assert (
            world.api.mutate("submitAppointmentForm", input, "appointment { id }", world.stack.mother)[
                "errors"
            ]
            == []
        )
    outcomes = {role: _read(world, role, targets[role]["id"]) for role in ROLES}
    assert outcomes == READS
    for role, outcome in READS.items():  # a refusal is the same as for an id that does not exist
        if outcome in (NOT_FOUND, UNAUTHENTICATED):
            assert _read(world, role, MISSING) == outcome
            existing = world.api.raw(READ, world.token(role), id=targets[role]["id"])["errors"][0]
            missing = world.api.raw(READ, world.token(role), id=MISSING)["errors"][0]
            assert existing["message"] == missing["message"]

    async def reads() -> list[Any]:
        async with world.stack.platform.db.transaction() as session:
            rows = await session.scalars(select(AuditEvent).where(AuditEvent.action == "read"))
            return list(rows)

    assert world.stack.client.portal is not None
    logged = world.stack.client.portal.call(reads)
    for role, outcome in READS.items():
        mine = [e for e in logged if e.object_type == "appointment" and e.object_id == targets[role]["id"]]
        if outcome in (CONTENT, NO_CONTENT):
            expected = "patient" if role == "guardian" else role  # she reads as herself, about the child
            assert [e.actor_role for e in mine] == [expected], role
            if role in ("patient", "guardian"):  # about herself, or about the child
                assert (mine[0].person_id == mine[0].actor_id) is (role == "patient"), role
        else:
            assert mine == [], role


def test_the_lists(world: World) -> None:
    own, child = world.appointment("patient"), world.appointment("guardian")
    ids = {own["id"], child["id"]}

    def listed(query: str, role: str) -> set[str] | str:
        result = world.api.raw(query, world.token(role))
        if result.get("errors"):
            return str(result["errors"][0]["extensions"]["code"])
        return {a["id"] for a in next(iter(result["data"].values()))} & ids

    mine = "{ myAppointments { id } }"
    staff = "{ staffAppointments { id } }"
    assert {role: listed(mine, role) for role in ROLES} == {
        "patient": ids,
        "guardian": ids,
        "other_patient": set(),
        "clinician": set(),
        "other_clinician": set(),
        "operator": set(),
        "integrator": UNAUTHENTICATED,
        "anonymous": UNAUTHENTICATED,
    }
    assert {role: listed(staff, role) for role in ROLES} == {
        "patient": FORBIDDEN,
        "guardian": FORBIDDEN,
        "other_patient": FORBIDDEN,
        "clinician": ids,
        "other_clinician": set(),
        "operator": ids,
        "integrator": UNAUTHENTICATED,
        "anonymous": UNAUTHENTICATED,
    }


CHANGES: dict[str, dict[str, str]] = {
    "moveAppointment": {
        "patient": OK,
        "guardian": OK,
        "other_patient": NOT_FOUND,
        "clinician": OK,
        "other_clinician": NOT_FOUND,
        "operator": OK,
        "integrator": UNAUTHENTICATED,
        "anonymous": UNAUTHENTICATED,
    },
    "cancelAppointment": {
        "patient": OK,
        "guardian": OK,
        "other_patient": NOT_FOUND,
        "clinician": OK,
        "other_clinician": NOT_FOUND,
        "operator": OK,
        "integrator": UNAUTHENTICATED,
        "anonymous": UNAUTHENTICATED,
    },
    "markArrived": {
        "patient": NOT_FOUND,
        "guardian": NOT_FOUND,
        "other_patient": NOT_FOUND,
        "clinician": OK,
        "other_clinician": NOT_FOUND,
        "operator": OK,
        "integrator": UNAUTHENTICATED,
        "anonymous": UNAUTHENTICATED,
    },
    "completeAppointment": {
        "patient": NOT_FOUND,
        "guardian": NOT_FOUND,
        "other_patient": NOT_FOUND,
        "clinician": OK,
        "other_clinician": NOT_FOUND,
        "operator": FORBIDDEN,  # she sees it at the reception; only its clinician ends a visit
        "integrator": UNAUTHENTICATED,
        "anonymous": UNAUTHENTICATED,
    },
    "markNoShow": {  # before the visit: staff who may are told it has not begun
        "patient": NOT_FOUND,
        "guardian": NOT_FOUND,
        "other_patient": NOT_FOUND,
        "clinician": "INVALID",
        "other_clinician": NOT_FOUND,
        "operator": "INVALID",
        "integrator": UNAUTHENTICATED,
        "anonymous": UNAUTHENTICATED,
    },
    "bookAppointmentTime": {  # a request: any clinician may take one
        "patient": OK,
        "guardian": OK,
        "other_patient": NOT_FOUND,
        "clinician": OK,
        "other_clinician": OK,
        "operator": OK,
        "integrator": UNAUTHENTICATED,
        "anonymous": UNAUTHENTICATED,
    },
}


@pytest.mark.parametrize("operation", list(CHANGES))
def test_changing_an_appointment(world: World, operation: str) -> None:
    outcomes = {}
    for role in ROLES:
        target = world.appointment(role, request=operation == "bookAppointmentTime")
        wanted: dict[str, Any] = {"appointmentId": target["id"]}
        if operation in ("moveAppointment", "bookAppointmentTime"):
            wanted["slotId"] = world.slots.pop(0)
        before = world.as_operator(target["id"])
        payload = world.api.mutate(operation, wanted, FIELDS, world.token(role))
        if payload["errors"]:
            outcomes[role] = payload["errors"][0]["code"]
            assert payload["appointment"] is None
            assert world.as_operator(target["id"]) == before, (operation, role)  # nothing changed
            if payload["errors"][0]["code"] == NOT_FOUND:  # the same answer as for no such appointment
                missing = world.api.mutate(
                    operation, {**wanted, "appointmentId": MISSING}, FIELDS, world.token(role)
                )
                assert missing["errors"][0]["code"] == NOT_FOUND
                assert missing["errors"][0]["message"] == payload["errors"][0]["message"]
        else:
            outcomes[role] = OK
    assert outcomes == CHANGES[operation]
