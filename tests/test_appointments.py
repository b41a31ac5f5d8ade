"""Booking appointments through GraphQL: the patient books, moves and cancels within the operators' rules;
a type that cannot be booked directly becomes a request staff give a time; a clinician refers from a case
answered with "physical examination"; one slot is booked once, also under concurrent bookings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import httpx
import pytest
from gql import gql

from tests.appointment_stack import APPOINTMENT, SURGERY, VIDEO, AppointmentStack, appointment_stack
from tests.support import synthetic_national_id
from tests.test_subscriptions import OTHER_PATIENT, Follower


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[AppointmentStack]:
    with appointment_stack(tmp_path) as stack:
        yield stack


@pytest.fixture
def both(tmp_path: Path, database_url: str) -> Iterator[AppointmentStack]:
    with appointment_stack(tmp_path, database_url) as stack:
        yield stack


def test_she_books_a_free_time_and_it_is_no_longer_free(stack: AppointmentStack) -> None:
    slots = stack.slots()
    assert slots and all(s["clinician"]["name"] == "Nora Haugen" for s in slots)
    chosen = slots[0]
    booked = stack.book(chosen["id"], message="Føflekk på ryggen som har vokst.", phone="412 34 567")
    assert booked["errors"] == []
    appointment = booked["appointment"]
    assert appointment["status"] == "BOOKED"
    assert (appointment["startsAt"], appointment["endsAt"]) == (chosen["startsAt"], chosen["endsAt"])
    assert appointment["message"] == "Føflekk på ryggen som har vokst."
    assert appointment["formsRequired"] == ["HEALTH_DECLARATION"]
    assert appointment["price"] == {"amount": 95000, "currency": "NOK"}
    assert chosen["id"] not in {s["id"] for s in stack.slots()}

    again = stack.book(chosen["id"], token=stack.operator)  # an operator has no patient side
    assert [e["code"] for e in again["errors"]] == ["SLOT_TAKEN"]
    mine = stack.api.gql(f"{{ myAppointments {APPOINTMENT.removeprefix('appointment ')} }}", stack.mother)
    assert [a["id"] for a in mine["myAppointments"]] == [appointment["id"]]


def test_operators_see_the_appointment_but_not_her_message(stack: AppointmentStack) -> None:
    booked = stack.book(stack.slots()[0]["id"], message="Hemmelig")["appointment"]
    query = "query($id: ID!) { appointment(id: $id) { id message status } }"
    seen = stack.api.gql(query, stack.operator, id=booked["id"])["appointment"]
    assert seen == {"id": booked["id"], "message": None, "status": "BOOKED"}
    assert stack.api.gql(query, stack.clinician, id=booked["id"])["appointment"]["message"] == "Hemmelig"
    stranger = stack.api.raw(query, None, id=booked["id"])
    assert stranger["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_a_retry_with_the_same_key_books_once(stack: AppointmentStack) -> None:
    slot = stack.slots()[0]["id"]
    first = stack.book(slot, idempotencyKey="b1")
    second = stack.book(slot, idempotencyKey="b1")
    assert first["errors"] == second["errors"] == []
    assert first["appointment"]["id"] == second["appointment"]["id"]
    other = stack.book(stack.slots()[0]["id"], idempotencyKey="b1")
    assert [e["code"] for e in other["errors"]] == ["IDEMPOTENCY_CONFLICT"]


def test_two_concurrent_bookings_of_one_slot_one_wins(both: AppointmentStack) -> None:
    stack = both
    slot = stack.slots()[0]["id"]
    patients = [stack.mother, stack.api.login(synthetic_national_id(date(1990, 5, 17)))]
    tokens = patients * 3  # two patients, three tries each

    with ThreadPoolExecutor(len(tokens)) as pool:
        results = list(pool.map(lambda token: stack.book(slot, token=token), tokens))
    winners = [r for r in results if r["errors"] == []]
    assert len(winners) == 1, results
    assert all([e["code"] for e in r["errors"]] == ["SLOT_TAKEN"] for r in results if r not in winners)
    staff = stack.api.gql("{ staffAppointments { id status } }", stack.operator)["staffAppointments"]
    assert staff == [{"id": winners[0]["appointment"]["id"], "status": "BOOKED"}]


def test_she_moves_and_cancels_until_the_limit(tmp_path: Path) -> None:
    with appointment_stack(tmp_path, appointment_change_hours=24) as stack:
        api = stack.api
        booked = stack.book(stack.slots()[0]["id"])["appointment"]
        later = stack.slots(days=6)[0]
        moved = api.ok(
            "moveAppointment",
            {"appointmentId": booked["id"], "slotId": later["id"]},
            APPOINTMENT,
            stack.mother,
        )["appointment"]
        assert (moved["status"], moved["startsAt"]) == ("BOOKED", later["startsAt"])
        free_again = {s["startsAt"] for s in stack.slots(days=4.9, span=1.2)}
        assert booked["startsAt"] in free_again  # the old time is free again

        soon = stack.book(stack.slots(days=1 / 24, span=22 / 24)[0]["id"])["appointment"]  # within 24 hours
        refused = api.mutate("cancelAppointment", {"appointmentId": soon["id"]}, APPOINTMENT, stack.mother)
        assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"]
        by_staff = api.ok("cancelAppointment", {"appointmentId": soon["id"]}, APPOINTMENT, stack.operator)
        assert by_staff["appointment"]["status"] == "CANCELLED"

        cancelled = api.ok("cancelAppointment", {"appointmentId": moved["id"]}, APPOINTMENT, stack.mother)
        assert cancelled["appointment"]["status"] == "CANCELLED"
        again = api.mutate("cancelAppointment", {"appointmentId": moved["id"]}, APPOINTMENT, stack.mother)
        assert [e["code"] for e in again["errors"]] == ["ILLEGAL_TRANSITION"]
        assert later["startsAt"] in {s["startsAt"] for s in stack.slots(days=5.9, span=1.2)}


def test_a_type_staff_book_becomes_a_request_they_give_a_time(stack: AppointmentStack) -> None:
    api = stack.api
    slot = stack.slots(SURGERY)[0]
    requested = stack.book(slot["id"], SURGERY, message="Ønsker time etter 15. januar.", insurerPays=True)
    appointment = requested["appointment"]
    assert (appointment["status"], appointment["startsAt"]) == ("REQUESTED", None)
    assert appointment["formsRequired"] == ["HEALTH_DECLARATION", "INSURER_CONSENT"]

    refused = api.mutate(
        "bookAppointmentTime",
        {"appointmentId": appointment["id"], "slotId": slot["id"]},
        APPOINTMENT,
        stack.mother,
    )
    assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    requests = api.gql("{ staffAppointments(statuses: [REQUESTED]) { id message } }", stack.clinician)
    assert requests["staffAppointments"] == [
        {"id": appointment["id"], "message": "Ønsker time etter 15. januar."}
    ]
    given = api.ok(
        "bookAppointmentTime",
        {"appointmentId": appointment["id"], "slotId": slot["id"]},
        APPOINTMENT,
        stack.operator,
    )["appointment"]
    assert (given["status"], given["startsAt"]) == ("BOOKED", slot["startsAt"])


def test_bad_input_is_a_typed_error_and_nothing_is_stored(stack: AppointmentStack) -> None:
    api = stack.api
    cases = [
        ({"slotId": "forged"}, {"NOT_FOUND", "INVALID"}),
        ({"appointmentType": "nope"}, {"NOT_FOUND"}),
        ({"clinicId": "00000000-0000-0000-0000-000000000000"}, {"NOT_FOUND"}),
        ({"message": "x" * 1001}, {"INVALID"}),
        ({"phone": "123"}, {"INVALID_PHONE"}),
        ({"childNationalId": "12345678901", "guardianDeclared": True}, {"INVALID_NATIONAL_ID"}),
    ]
    for change, codes in cases:
        wanted = {
            "clinicId": stack.clinic_id,
            "appointmentType": "visit",
            "slotId": stack.slots()[0]["id"],
            **change,
        }
        payload = api.mutate("bookAppointment", wanted, APPOINTMENT, stack.mother)
        assert payload["appointment"] is None and {e["code"] for e in payload["errors"]} <= codes, (
            change,
            payload,
        )
    assert api.gql("{ myAppointments { id } }", stack.mother)["myAppointments"] == []


def test_video_slots_and_operators_rules(stack: AppointmentStack) -> None:
    api = stack.api
    assert stack.slots(VIDEO)
    refused = api.mutate("saveClinic", {"name": "X", "address": "Y"}, "clinic { id }", stack.mother)
    assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    bad = api.mutate(
        "saveAppointmentType",
        {"code": "Bad Code", "name": "X", "mode": "VIDEO", "minutes": 20, "priceAmount": 0},
        "appointmentType { code }",
        stack.operator,
    )
    assert [e["field"] for e in bad["errors"]] == ["code"]


def test_she_follows_her_appointment_live_and_another_patient_sees_none_of_it(address: str) -> None:
    """``appointmentUpdates`` with a real ``graphql-transport-ws`` client: ids and statuses, hers only."""
    updates = gql("subscription { appointmentUpdates { appointmentId type status } }")
    with httpx.Client(base_url=f"http://{address}", timeout=30) as client:
        stack = AppointmentStack(client, None, None)  # type: ignore[arg-type]
        other = stack.api.login(OTHER_PATIENT)
        hers, theirs = Follower(address, stack.mother, updates), Follower(address, other, updates)
        booked = stack.book(stack.slots()[0]["id"])["appointment"]
        stack.api.ok("cancelAppointment", {"appointmentId": booked["id"]}, "appointment { id }", stack.mother)
        stack.api.wait_for(lambda: len(hers.received) >= 2, "her updates")
        time.sleep(0.3)  # a stray update for the other patient would have arrived by now
    assert hers.close() == [
        {"appointmentId": booked["id"], "type": "appointment.booked", "status": "BOOKED"},
        {"appointmentId": booked["id"], "type": "appointment.cancelled", "status": "CANCELLED"},
    ]
    assert theirs.close() == []
