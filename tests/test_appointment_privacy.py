"""The patient's rights over her appointments, through GraphQL: the export holds them (times, clinic, type,
status, her message and forms while kept, payments and the invoices' bookkeeping fields, tombstones) with
their access log; a guardian's export holds the appointments she booked for a child in her care, and no
longer once the child is 16; an erasure request deletes the content of ended appointments at once and of
open ones as soon as they end; a restriction of processing blocks booking."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import select

from legetime.core.appointments.retention import run_appointment_retention
from legetime.core.identity.actors import SYSTEM
from legetime.core.platform.db.appointment_models import Appointment, AppointmentErasure
from legetime.core.platform.db.models import RetentionRun
from tests.appointment_stack import APPOINTMENT, AppointmentStack, appointment_stack
from tests.support import synthetic_national_id
from tests.test_appointment_forms import DECLARATION

SECRET = "Vondt i kneet etter fall."
ERASURE = "erasure { rule cases appointments pendingAppointments kept { what } }"
READ = "query($id: ID!) { appointment(id: $id) { status message deleted forms { kind } } }"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[AppointmentStack]:
    with appointment_stack(tmp_path) as stack:
        yield stack


def run(stack: AppointmentStack, work: Any) -> Any:
    assert stack.client.portal is not None
    return stack.client.portal.call(work)


def export(stack: AppointmentStack, token: str) -> dict[str, Any]:
    return dict(stack.api.gql("{ exportMyData }", token)["exportMyData"])


def booked(stack: AppointmentStack, token: str | None = None, **extra: Any) -> dict[str, Any]:
    payload = stack.book(stack.slots(span=2)[0]["id"], token=token, **extra)
    assert payload["errors"] == [], payload
    return dict(payload["appointment"])


def test_her_export_holds_her_appointments_and_their_access_log(stack: AppointmentStack) -> None:
    api = stack.api
    visit = booked(stack, message=SECRET)
    sent = api.mutate(
        "submitAppointmentForm",
        {"appointmentId": visit["id"], "kind": "HEALTH_DECLARATION", "answers": DECLARATION},
        "appointment { id }",
        stack.mother,
    )
    assert sent["errors"] == []
    api.gql(READ, stack.operator, id=visit["id"])  # the reception reads it: in her access log
    other = booked(stack)
    api.ok("cancelAppointment", {"appointmentId": other["id"]}, APPOINTMENT, stack.mother)

    exported = export(stack, stack.mother)
    by_number = {a["number"]: a for a in exported["appointments"]}
    assert set(by_number) == {visit["number"], other["number"]}
    mine = by_number[visit["number"]]
    assert mine["status"] == "booked" and mine["message"] == SECRET and mine["startsAt"]
    assert mine["clinic"]["name"] == "Legetime Majorstuen" and mine["appointmentType"]["code"] == "visit"
    assert mine["bookedBy"] == "self" and mine["forChild"] is False
    assert mine["price"] == {"amount": 95000, "currency": "NOK"}
    assert [f["kind"] for f in mine["forms"]] == ["health_declaration"]
    assert mine["forms"][0]["answers"]["allergies"] == "Penicillin: utslett"
    assert mine["contentDeletedAt"] is None and mine["erasures"] == [] and mine["invoices"] == []
    cancelled = by_number[other["number"]]
    assert cancelled["status"] == "cancelled" and cancelled["cancelledAt"] and cancelled["contentKeptUntil"]

    log = [e for e in exported["accessLog"] if e["appointment"] == visit["number"]]
    assert {"book", "read"} <= {e["action"] for e in log}
    assert {"patient", "operator"} <= {e["actorRole"] for e in log}
    assert all(e["about"] == "me" and e["object"] == "appointment" for e in log)

    # After the retention period: the tombstone in her export, no content.
    async def purge() -> Any:
        later = datetime.now(UTC) + timedelta(days=91)
        return await run_appointment_retention(stack.platform, actor=SYSTEM, trigger="test", now=later)

    assert run(stack, purge).appointments == 1
    after = {a["number"]: a for a in export(stack, stack.mother)["appointments"]}[other["number"]]
    assert after["message"] is None and after["forms"] == [] and after["contentDeletedAt"]
    assert [e["rule"] for e in after["erasures"]] == ["retention"]
    later_log = export(stack, stack.mother)["accessLog"]
    erase = [e for e in later_log if e["appointment"] == other["number"] and e["action"] == "erase_content"]
    assert [e["actorRole"] for e in erase] == ["system"]


def test_a_guardian_exports_her_childs_appointment_until_the_child_is_16(stack: AppointmentStack) -> None:
    api = stack.api
    today = datetime.now(UTC).astimezone(stack.platform.settings.zone).date()
    young = synthetic_national_id(date(today.year - 9, 3, 1))
    birthday = today + timedelta(days=2)
    teenager = synthetic_national_id(date(birthday.year - 16, birthday.month, birthday.day))
    for_child = booked(
        stack, message=SECRET, childNationalId=young, childGivenName="Ola", guardianDeclared=True
    )
    for_teen = booked(
        stack, message=SECRET, childNationalId=teenager, childGivenName="Kari", guardianDeclared=True
    )
    api.gql(READ, stack.clinician, id=for_child["id"])  # the clinician reads it

    exported = export(stack, stack.mother)
    assert {a["number"] for a in exported["appointments"]} == {for_child["number"], for_teen["number"]}
    [child] = [a for a in exported["appointments"] if a["number"] == for_child["number"]]
    assert child["forChild"] is True and child["bookedBy"] == "guardian" and child["message"] == SECRET
    about_child = [e for e in exported["accessLog"] if e["appointment"] == for_child["number"]]
    assert {e["about"] for e in about_child} == {"child"}
    assert {"book", "read"} <= {e["action"] for e in about_child}
    assert "clinician" in {e["actorRole"] for e in about_child}

    # On her 16th birthday the teenager's appointment is hers alone: not in her mother's export any more.
    with time_machine.travel(datetime.now(UTC) + timedelta(days=3), tick=True):
        stack.login()
        later = export(stack, stack.mother)
        assert {a["number"] for a in later["appointments"]} == {for_child["number"]}
        assert for_teen["number"] not in {e["appointment"] for e in later["accessLog"]}


def test_erasure_deletes_ended_appointments_now_and_open_ones_when_they_end(stack: AppointmentStack) -> None:
    api = stack.api
    ended = booked(stack, message=SECRET)
    api.ok("cancelAppointment", {"appointmentId": ended["id"]}, APPOINTMENT, stack.mother)
    upcoming = booked(stack, message=SECRET)

    account = api.gql(f"mutation {{ requestErasure {{ {ERASURE} errors {{ code }} }} }}", stack.mother)
    erasure = account["requestErasure"]["erasure"]
    assert erasure["rule"] == "erasure_request"
    assert erasure["appointments"] == [ended["number"]]
    assert erasure["pendingAppointments"] == [upcoming["number"]]

    stack.login()  # her sessions ended with the erasure
    gone = api.gql(READ, stack.mother, id=ended["id"])["appointment"]
    assert (gone["message"], gone["deleted"]) == (None, True)
    kept = api.gql(READ, stack.clinician, id=upcoming["id"])["appointment"]
    assert (kept["message"], kept["deleted"]) == (SECRET, False)  # the visit still needs it

    # The clinic cancels it: its content goes at once, by her request.
    api.ok("cancelAppointment", {"appointmentId": upcoming["id"]}, APPOINTMENT, stack.operator)
    after = api.gql(READ, stack.mother, id=upcoming["id"])["appointment"]
    assert (after["status"], after["message"], after["deleted"]) == ("CANCELLED", None, True)

    async def recorded() -> tuple[list[Any], list[Any]]:
        async with stack.platform.db.transaction() as session:
            tombstones = (
                await session.execute(select(AppointmentErasure.appointment_id, AppointmentErasure.rule))
            ).all()
            runs = (
                await session.execute(
                    select(RetentionRun.rule, RetentionRun.trigger, RetentionRun.appointments).where(
                        RetentionRun.appointments > 0
                    )
                )
            ).all()
            return list(tombstones), list(runs)

    tombstones, runs = run(stack, recorded)
    assert sorted((str(a), r) for a, r in tombstones) == sorted(
        [(ended["id"], "erasure_request"), (upcoming["id"], "erasure_request")]
    )
    assert [tuple(r) for r in runs] == [("erasure_request", "patient", 1)]

    async def retention_until() -> Any:
        async with stack.platform.db.transaction() as session:
            return await session.scalar(
                select(Appointment.retention_until).where(Appointment.id == uuid.UUID(upcoming["id"]))
            )

    assert run(stack, retention_until) is not None


def test_a_restriction_of_processing_blocks_booking_until_lifted(stack: AppointmentStack) -> None:
    api = stack.api
    api.ok("restrictProcessing", {"restricted": True}, "me { restrictedSince }", stack.mother)
    refused = stack.book(stack.slots()[0]["id"], message=SECRET)
    assert refused["appointment"] is None
    assert [e["code"] for e in refused["errors"]] == ["PROCESSING_RESTRICTED"]
    assert api.gql("{ myAppointments { id } }", stack.mother)["myAppointments"] == []
    api.ok("restrictProcessing", {"restricted": False}, "me { restrictedSince }", stack.mother)
    assert booked(stack)["status"] == "BOOKED"
