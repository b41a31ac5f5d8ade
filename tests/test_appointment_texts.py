"""The texts before a visit, with a simulated clock: the reminder two days before (Oslo time, across a
change of summer time too) with the forms link, the arrival text one hour before with the link that
registers arrival inside its window; moving re-plans, cancelling stops them, a redelivered job sends
nothing twice; the texts say when, never what or where."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from zoneinfo import ZoneInfo

import time_machine
from sqlalchemy import select

from legetime.core.appointments import texts_before_visit, timed_texts
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.appointment_models import Appointment, TimedText, TimedTextPlan
from legetime.core.platform.db.models import AuditEvent
from legetime.core.platform.jobs.types import JobContext
from legetime.core.platform.providers import SMS
from tests.appointment_stack import APPOINTMENT, AppointmentStack, appointment_stack

OSLO = ZoneInfo("Europe/Oslo")
MONDAY_MORNING = datetime(2027, 1, 11, 9, 45, tzinfo=OSLO)
"""Five days later the first free time is Saturday 16 January 2027 at 10:00."""
LINK = re.compile(r"https?://\S+/t/([A-Za-z0-9_-]+)")
ARRIVAL_LINK = "query($link: String!) { appointmentLink(token: $link) { purpose startsAt clinicName } }"
REGISTER = (
    "mutation($input: RegisterArrivalInput!) { registerArrival(input: $input) { "
    "arrivedAt appointment { id status } errors { field code message } } }"
)


@contextmanager
def stack_at(tmp_path: Path, when: datetime) -> Iterator[AppointmentStack]:
    with time_machine.travel(when, tick=True), appointment_stack(tmp_path) as stack:
        yield stack


def run(stack: AppointmentStack, work: Any, *args: Any) -> Any:
    assert stack.client.portal is not None
    return stack.client.portal.call(work, *args)


def texts(stack: AppointmentStack, appointment_id: str) -> list[Any]:
    """The appointment's texts the SMS provider took, oldest first."""
    stored = run(stack, stack.platform.providers.get(SMS).messages)  # type: ignore[attr-defined]
    return [m for m in reversed(stored) if m.reference.startswith(f"{appointment_id}:")]


def plans(stack: AppointmentStack, appointment_id: str) -> list[tuple[TimedText, int, datetime, str]]:
    async def read() -> list[tuple[TimedText, int, datetime, str]]:
        async with stack.platform.db.transaction() as session:
            rows = (
                await session.scalars(
                    select(TimedTextPlan)
                    .where(TimedTextPlan.appointment_id == uuid.UUID(appointment_id))
                    .order_by(TimedTextPlan.plan, TimedTextPlan.due_at)
                )
            ).all()
            return [(r.kind, r.plan, r.due_at, r.status) for r in rows]

    return cast(list[tuple[TimedText, int, datetime, str]], run(stack, read))


def wait_for_text(stack: AppointmentStack, appointment_id: str, kind: TimedText, plan: int = 1) -> Any:
    reference = timed_texts.reference(uuid.UUID(appointment_id), kind, plan)
    found = stack.api.wait_for(
        lambda: [m for m in texts(stack, appointment_id) if m.reference == reference], f"the {kind} text"
    )
    return found[0]


def wait_for_status(
    stack: AppointmentStack, appointment_id: str, kind: TimedText, plan: int, status: str
) -> None:
    stack.api.wait_for(
        lambda: any((k, p, s) == (kind, plan, status) for k, p, _, s in plans(stack, appointment_id)),
        f"{kind} of plan {plan} to be {status}",
    )


def status_of(stack: AppointmentStack, appointment_id: str) -> str:
    query = "query($id: ID!) { appointment(id: $id) { status } }"
    return str(stack.api.gql(query, stack.operator, id=appointment_id)["appointment"]["status"])


def token_in(body: str) -> str:
    match = LINK.search(body)
    assert match is not None, body
    return match.group(1)


def assert_says_nothing_of_the_visit(body: str) -> None:
    for secret in ("Undersøkelse", "Dagkirurgi", "Majorstuen", "Kirkeveien", "kneet", "Nora", "Haugen"):
        assert secret not in body, (secret, body)


def register(stack: AppointmentStack, token: str, login: str | None = None) -> dict[str, Any]:
    return dict(stack.api.gql(REGISTER, login, input={"token": token})["registerArrival"])


def test_the_reminder_is_two_days_before_at_the_same_oslo_time_across_summer_time() -> None:
    ctx = cast(Ctx, SimpleNamespace(platform=SimpleNamespace(settings=SimpleNamespace(zone=OSLO))))
    spring = datetime(2027, 3, 29, 9, 0, tzinfo=OSLO).astimezone(
        UTC
    )  # the Monday after summer time began (28 March)
    due = timed_texts.reminder_due(ctx, spring)
    assert due.astimezone(OSLO) == datetime(2027, 3, 27, 9, 0, tzinfo=OSLO)
    assert spring - due == timedelta(hours=47)
    autumn = datetime(2027, 11, 1, 9, 0, tzinfo=OSLO).astimezone(
        UTC
    )  # the Monday after it ended (31 October)
    due = timed_texts.reminder_due(ctx, autumn)
    assert due.astimezone(OSLO) == datetime(2027, 10, 30, 9, 0, tzinfo=OSLO)
    assert autumn - due == timedelta(hours=49)


def test_a_booking_across_the_change_to_summer_time_plans_the_reminder_in_oslo_time(tmp_path: Path) -> None:
    with stack_at(tmp_path, datetime(2027, 3, 25, 9, 45, tzinfo=OSLO)) as stack:
        booked = stack.book(stack.slots(days=4)[0]["id"])["appointment"]
        starts = datetime.fromisoformat(booked["startsAt"])
        local = starts.astimezone(OSLO)
        assert local.date() == date(2027, 3, 29)  # summer time began on Sunday the 28th
        [(_, _, reminder, _), (_, _, arrival, _)] = plans(stack, booked["id"])
        assert reminder.astimezone(OSLO) == local.replace(day=27)  # the same time of day, in winter time
        assert starts - reminder == timedelta(hours=47)
        assert arrival == starts - timedelta(hours=1)


def test_reminder_with_the_forms_link_then_arrival_by_link_within_its_window(tmp_path: Path) -> None:
    with stack_at(tmp_path, MONDAY_MORNING) as stack:
        api = stack.api
        booked = stack.book(stack.slots()[0]["id"], message="Vondt i kneet")["appointment"]
        appointment_id = booked["id"]
        starts, ends = datetime.fromisoformat(booked["startsAt"]), datetime.fromisoformat(booked["endsAt"])
        assert starts.astimezone(OSLO) == datetime(2027, 1, 16, 10, 0, tzinfo=OSLO)
        assert plans(stack, appointment_id) == [
            (TimedText.REMINDER, 1, datetime(2027, 1, 14, 10, 0, tzinfo=OSLO), "planned"),
            (TimedText.ARRIVAL, 1, starts - timedelta(hours=1), "planned"),
        ]

        with time_machine.travel(starts - timedelta(days=2, seconds=-1), tick=True):
            stack.login()
            reminder = wait_for_text(stack, appointment_id, TimedText.REMINDER)
            public = stack.platform.settings.public_url
            assert reminder.body.startswith(
                "Legetime: Påminnelse om time lørdag 16. januar kl. 10:00. Fyll ut skjema før timen: "
                f"{public}/t/"
            )
            assert reminder.body.endswith("Avbestill senest 24 timer før i appen.")
            assert_says_nothing_of_the_visit(reminder.body)
            assert len(token_in(reminder.body)) < 100
            page = api.gql(ARRIVAL_LINK, None, link=token_in(reminder.body))["appointmentLink"]
            assert page == {
                "purpose": "FORMS",
                "startsAt": booked["startsAt"],
                "clinicName": "Legetime Majorstuen",
            }
            wait_for_status(stack, appointment_id, TimedText.REMINDER, 1, "sent")
            assert status_of(stack, appointment_id) == "REMINDED"

        with time_machine.travel(starts - timedelta(hours=1, seconds=-1), tick=True):
            stack.login()
            arrival = wait_for_text(stack, appointment_id, TimedText.ARRIVAL)
            assert arrival.body.startswith("Legetime: Du har time lørdag 16. januar kl. 10:00.")
            assert_says_nothing_of_the_visit(arrival.body)
            token = token_in(arrival.body)
            assert token != token_in(reminder.body)

            with time_machine.travel(starts - timedelta(hours=2), tick=True):  # too early
                early = register(stack, token)
                assert [(e["field"], e["code"]) for e in early["errors"]] == [("token", "INVALID")]
                assert early["arrivedAt"] is None

            arrived = register(stack, token)  # no login: the link is the proof
            assert arrived["errors"] == []
            assert arrived["appointment"] is None  # the link alone does not show the appointment
            assert register(stack, token)["arrivedAt"] == arrived["arrivedAt"]  # again: the same
            assert status_of(stack, appointment_id) == "ARRIVED"
            by_her = register(stack, token, stack.mother)["appointment"]
            assert by_her == {"id": appointment_id, "status": "ARRIVED"}

            async def logged() -> list[tuple[str, str | None, bool]]:
                async with stack.platform.db.transaction() as session:
                    rows = (
                        await session.scalars(
                            select(AuditEvent).where(AuditEvent.object_id == appointment_id)
                        )
                    ).all()
                    return [(r.action, r.actor_role, r.actor_id is None) for r in rows]

            entries = run(stack, logged)
            assert ("arrive", "link", True) in entries  # the link did it; who held it is not known
            assert ("read_link", "link", True) in entries

        with time_machine.travel(ends + timedelta(minutes=1), tick=True):
            late = register(stack, token)
            assert [e["code"] for e in late["errors"]] == ["LINK_EXPIRED"]

        assert [m.reference.split(":")[1] for m in texts(stack, appointment_id)] == ["reminder", "arrival"]


def test_moving_plans_the_texts_again_and_cancelling_stops_them(tmp_path: Path) -> None:
    with stack_at(tmp_path, MONDAY_MORNING) as stack:
        moved = stack.book(stack.slots()[0]["id"])["appointment"]
        cancelled = stack.book(stack.slots()[0]["id"])["appointment"]
        old_start = max(datetime.fromisoformat(a["startsAt"]) for a in (moved, cancelled))
        later = stack.slots(days=8)[0]  # its reminder is due after the old time
        change = {"appointmentId": moved["id"], "slotId": later["id"]}
        assert (
            stack.api.ok("moveAppointment", change, APPOINTMENT, stack.mother)["appointment"]["status"]
            == "BOOKED"
        )
        stack.api.ok("cancelAppointment", {"appointmentId": cancelled["id"]}, APPOINTMENT, stack.mother)
        new_start = datetime.fromisoformat(later["startsAt"])
        assert [(k, p) for k, p, _, _ in plans(stack, moved["id"])] == [
            (TimedText.REMINDER, 1),
            (TimedText.ARRIVAL, 1),
            (TimedText.REMINDER, 2),
            (TimedText.ARRIVAL, 2),
        ]

        with time_machine.travel(old_start - timedelta(days=2, seconds=-1), tick=True):
            for appointment in (moved, cancelled):
                wait_for_status(stack, appointment["id"], TimedText.REMINDER, 1, timed_texts.REPLANNED)
        with time_machine.travel(old_start - timedelta(hours=1, seconds=-1), tick=True):
            for appointment in (moved, cancelled):
                wait_for_status(stack, appointment["id"], TimedText.ARRIVAL, 1, timed_texts.REPLANNED)
        assert texts(stack, moved["id"]) == texts(stack, cancelled["id"]) == []

        with time_machine.travel(new_start - timedelta(days=2, seconds=-1), tick=True):
            wait_for_text(stack, moved["id"], TimedText.REMINDER, plan=2)
        assert [m.reference for m in texts(stack, moved["id"])] == [f"{moved['id']}:reminder:2"]
        assert texts(stack, cancelled["id"]) == []


def test_a_job_delivered_twice_sends_one_text_and_a_failover_makes_the_same_one(tmp_path: Path) -> None:
    with stack_at(tmp_path, MONDAY_MORNING) as stack:
        booked = stack.book(stack.slots()[0]["id"])["appointment"]
        starts = datetime.fromisoformat(booked["startsAt"])
        payload = {"appointment_id": booked["id"], "kind": "reminder", "plan": 1}
        with time_machine.travel(starts - timedelta(days=2, seconds=-1), tick=True):
            sent = wait_for_text(stack, booked["id"], TimedText.REMINDER)
            wait_for_status(stack, booked["id"], TimedText.REMINDER, 1, "sent")

            async def again() -> str:
                for attempt in (2, 3):  # the broker delivers the job again, twice
                    async with stack.platform.db.transaction() as session:
                        await timed_texts.send_job(
                            JobContext(stack.platform, session, "job", attempt), payload
                        )
                async with stack.platform.db.transaction() as session:  # a failover makes the text again
                    appointment = await session.get(Appointment, uuid.UUID(booked["id"]))
                    row = await session.scalar(
                        select(TimedTextPlan).where(TimedTextPlan.kind == TimedText.REMINDER)
                    )
                    assert appointment is not None and row is not None
                    made = await texts_before_visit.reminder(
                        JobContext(stack.platform, session, "job", 1), appointment, row
                    )
                    return made.body

            assert run(stack, again) == sent.body
            assert [m.body for m in texts(stack, booked["id"])] == [sent.body]


def test_an_arrival_registered_at_the_reception_skips_the_arrival_text(tmp_path: Path) -> None:
    with stack_at(tmp_path, MONDAY_MORNING) as stack:
        booked = stack.book(stack.slots()[0]["id"])["appointment"]
        starts = datetime.fromisoformat(booked["startsAt"])
        with time_machine.travel(starts - timedelta(hours=1, minutes=30), tick=True):
            stack.login()
            wait_for_status(stack, booked["id"], TimedText.REMINDER, 1, "sent")
            stack.api.ok("markArrived", {"appointmentId": booked["id"]}, "appointment { id }", stack.operator)
        with time_machine.travel(starts - timedelta(hours=1, seconds=-1), tick=True):
            wait_for_status(stack, booked["id"], TimedText.ARRIVAL, 1, texts_before_visit.NOT_UPCOMING)
        assert [m.reference.split(":")[1] for m in texts(stack, booked["id"])] == ["reminder"]
