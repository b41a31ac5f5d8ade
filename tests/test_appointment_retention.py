"""An appointment's content is deleted when its purpose is fulfilled: the retention period after it was paid,
cancelled or missed, then the periodic purge (or ``legetime purge``) shreds its key and deletes her message,
her forms and the stored invoice copy, batch by batch, on SQLite and PostgreSQL. What stays is a tombstone
(ids, dates, status, amounts, the invoice's bookkeeping fields), anonymised statistics, the access log and
an ``appointment.erased`` event. Every change to an appointment is a domain event with ids only."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import time_machine
from sqlalchemy import func, select

from legetime.core.appointments.retention import APPOINTMENT_RETENTION, run_appointment_retention
from legetime.core.core_plugin import purge
from legetime.core.identity.actors import SYSTEM
from legetime.core.platform.db import models
from legetime.core.platform.db.appointment_models import (
    Appointment,
    AppointmentErasure,
    AppointmentStatistic,
    Invoice,
    TimedTextPlan,
)
from legetime.core.platform.errors import StorageNotFound
from legetime.core.platform.events import EventType
from legetime.core.platform.providers import STORAGE
from tests.appointment_stack import APPOINTMENT, AppointmentStack, appointment_stack
from tests.test_appointment_forms import DECLARATION
from tests.test_appointment_payment import wait_for_text

T = TypeVar("T")
SECRET = "Føflekk på ryggen som har vokst."
READ = "query($id: ID!) { appointment(id: $id) { status message deleted forms { kind answers } } }"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[AppointmentStack]:
    with appointment_stack(tmp_path) as stack:
        yield stack


def run(stack: AppointmentStack, work: Callable[[], Awaitable[T]]) -> T:
    assert stack.client.portal is not None
    return stack.client.portal.call(work)


def in_db(stack: AppointmentStack, work: Callable[[Any], Awaitable[T]]) -> T:
    async def transaction() -> T:
        async with stack.platform.db.transaction() as session:
            return await work(session)

    return run(stack, transaction)


def purge_at(stack: AppointmentStack, now: datetime, **options: Any) -> Any:
    return run(
        stack,
        lambda: run_appointment_retention(stack.platform, actor=SYSTEM, trigger="test", now=now, **options),
    )


def retention_until(stack: AppointmentStack, appointment_id: str) -> datetime:
    found = in_db(
        stack,
        lambda s: s.scalar(
            select(Appointment.retention_until).where(Appointment.id == uuid.UUID(appointment_id))
        ),
    )
    assert found is not None
    return found


def declare(stack: AppointmentStack, appointment_id: str) -> None:
    sent = stack.api.mutate(
        "submitAppointmentForm",
        {"appointmentId": appointment_id, "kind": "HEALTH_DECLARATION", "answers": DECLARATION},
        "appointment { id }",
        stack.mother,
    )
    assert sent["errors"] == [], sent


def texts_settled(stack: AppointmentStack, appointment_id: str) -> None:
    """Wait until the texts due at a jump of the clock went out (no change races them)."""

    async def settled(session: Any) -> bool:
        planned = await session.scalar(
            select(func.count(TimedTextPlan.id)).where(
                TimedTextPlan.appointment_id == uuid.UUID(appointment_id),
                TimedTextPlan.status == "planned",
                TimedTextPlan.due_at <= datetime.now(UTC),
            )
        )
        return bool(planned == 0)

    stack.api.wait_for(lambda: in_db(stack, settled), "the texts due now")


def test_after_the_visit_and_the_payment_the_content_goes_and_the_bookkeeping_stays(
    stack: AppointmentStack,
) -> None:
    """The whole way: booked with a message, the health declaration sent, the visit, no payment, the
    invoice (its PDF stored sealed), paid by bank transfer; 90 days later the purge deletes her message,
    her form, the PDF copy and the key, and keeps what the law needs."""
    api = stack.api
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        slot = stack.slots()[0]
        appointment_id = stack.book(slot["id"], message=SECRET, phone="412 34 567")["appointment"]["id"]
        declare(stack, appointment_id)
        traveller.move_to(datetime.fromisoformat(slot["startsAt"]) + timedelta(minutes=5))
        stack.login()
        texts_settled(stack, appointment_id)
        api.ok("completeAppointment", {"appointmentId": appointment_id}, APPOINTMENT, stack.clinician)
        traveller.move_to(datetime.now(UTC) + timedelta(hours=48, minutes=1))
        stack.login()
        wait_for_text(stack, "invoice")
        paid = api.ok("markInvoicePaid", {"appointmentId": appointment_id}, "status", stack.operator)
        assert paid["status"] == "PAID"
        key = uuid.UUID(appointment_id)
        before = api.gql(READ, stack.mother, id=appointment_id)["appointment"]
        assert before["message"] == SECRET and before["forms"][0]["answers"]["height"] == 168
        assert before["deleted"] is False
        document_key = in_db(stack, lambda s: s.scalar(select(Invoice.document_key)))
        assert document_key is not None
        storage = stack.platform.providers.get(STORAGE)
        assert run(stack, lambda: storage.open(document_key))  # the sealed PDF is there

        until = retention_until(stack, appointment_id)
        assert (
            until - datetime.now(UTC) <= timedelta(days=90) < until - datetime.now(UTC) + timedelta(minutes=5)
        )
        assert purge_at(stack, until - timedelta(hours=1)).appointments == 0

        summary = purge_at(stack, until + timedelta(minutes=1))
        assert (summary.appointments, summary.messages, summary.forms, summary.documents) == (1, 1, 1, 1)
        assert summary.storage_failures == 0

        after = api.gql(READ, stack.mother, id=appointment_id)["appointment"]
        assert after == {"status": "PAID", "message": None, "deleted": True, "forms": []}
        clinician_view = api.gql(READ, stack.clinician, id=appointment_id)["appointment"]
        assert clinician_view["message"] is None and clinician_view["deleted"] is True
        with pytest.raises(StorageNotFound):
            run(stack, lambda: storage.open(document_key))

        async def kept(session: Any) -> dict[str, Any]:
            return {
                "appointment": await session.get(Appointment, key),
                "invoice": await session.scalar(select(Invoice)),
                "tombstones": (await session.scalars(select(AppointmentErasure))).all(),
                "stats": (await session.scalars(select(AppointmentStatistic))).all(),
                "log": (
                    await session.scalars(
                        select(models.AuditEvent.action).where(models.AuditEvent.object_id == appointment_id)
                    )
                ).all(),
                "run": await session.scalar(
                    select(models.RetentionRun)
                    .where(
                        models.RetentionRun.rule == APPOINTMENT_RETENTION,
                        models.RetentionRun.dry_run.is_(False),
                    )
                    .order_by(models.RetentionRun.started_at.desc())
                ),
            }

        found = in_db(stack, kept)
        appointment = found["appointment"]
        assert appointment.data_key is None and appointment.message_sealed is None  # crypto-shredded
        assert appointment.purged_at is not None and appointment.paid_at and appointment.completed_at
        assert appointment.price_amount == 95000 and appointment.clinic_id and appointment.patient_id
        invoice = found["invoice"]  # bookkeeping law: number, KID, amounts, dates, status stay
        assert invoice.document_key is None
        assert (invoice.amount, invoice.fee_amount, invoice.status) == (95000 + 6500, 6500, "settled")
        assert invoice.number and invoice.kid and invoice.issued_on and invoice.due_on
        [tombstone] = found["tombstones"]
        assert tombstone.rule == "retention" and tombstone.deleted == {
            "message": 1,
            "forms": 1,
            "documents": 1,
        }
        [statistic] = found["stats"]
        assert statistic.appointment_type == "visit" and statistic.final_status == "paid"
        assert statistic.paid and statistic.invoiced and not statistic.for_child
        assert statistic.age_band == "30-49" and len(statistic.month) == 7
        assert not {"appointment_id", "patient_id", "person_id"} & set(
            AppointmentStatistic.__table__.columns.keys()
        )
        assert "erase_content" in found["log"]
        assert (found["run"].appointments, found["run"].messages) == (1, 1)
        assert tombstone.run_id == found["run"].id

        erased = stack.api.wait_for(
            lambda: [e for e in stack.events.events if e.type is EventType.APPOINTMENT_ERASED],
            "the erased event",
        )
        assert erased[0].data["appointment_id"] == appointment_id and erased[0].actor_role == "system"
        assert purge_at(stack, until + timedelta(days=1)).appointments == 0  # idempotent


def test_cancelled_and_missed_ones_are_purged_in_batches_and_open_ones_stay(
    tmp_path: Path, database_url: str
) -> None:
    """On both backends: two cancelled and a no-show purged one per transaction; the upcoming one keeps its
    message; a dry run counts without deleting."""
    with appointment_stack(tmp_path, database_url) as stack:
        api = stack.api
        slots = stack.slots(span=2)
        booked = [stack.book(slot["id"], message=SECRET)["appointment"] for slot in slots[:4]]
        api.ok("cancelAppointment", {"appointmentId": booked[0]["id"]}, APPOINTMENT, stack.mother)
        api.ok("cancelAppointment", {"appointmentId": booked[1]["id"]}, APPOINTMENT, stack.operator)
        starts = datetime.fromisoformat(booked[2]["startsAt"])
        with time_machine.travel(starts + timedelta(minutes=20), tick=True):
            stack.login()
            texts_settled(stack, booked[2]["id"])
            missed = api.ok("markNoShow", {"appointmentId": booked[2]["id"]}, APPOINTMENT, stack.operator)
            assert missed["appointment"]["status"] == "NO_SHOW"
            later = retention_until(stack, booked[2]["id"]) + timedelta(minutes=1)

            dry = purge_at(stack, later, dry_run=True)
            assert (dry.appointments, dry.messages, dry.dry_run) == (3, 3, True)
            assert api.gql(READ, stack.mother, id=booked[0]["id"])["appointment"]["message"] == SECRET

            batches: list[tuple[int, int]] = []
            summary = purge_at(stack, later, batch_size=1, progress=lambda *done: batches.append(done))
            assert (summary.appointments, summary.messages) == (3, 3)
            assert batches == [(0, 3), (1, 3), (2, 3), (3, 3)]
            for gone in booked[:3]:
                assert api.gql(READ, stack.mother, id=gone["id"])["appointment"]["deleted"] is True
            upcoming = api.gql(READ, stack.mother, id=booked[3]["id"])["appointment"]
            assert (upcoming["message"], upcoming["deleted"]) == (SECRET, False)

        async def stats(session: Any) -> list[tuple[str, bool]]:
            rows = await session.execute(select(AppointmentStatistic.final_status, AppointmentStatistic.paid))
            return sorted((row[0], row[1]) for row in rows)

        assert in_db(stack, stats) == [("cancelled", False), ("cancelled", False), ("no_show", False)]
        count = in_db(stack, lambda s: s.scalar(select(func.count()).select_from(AppointmentErasure)))
        assert count == 3


def test_the_periodic_retention_job_purges_appointments(tmp_path: Path) -> None:
    with appointment_stack(tmp_path, appointment_retention_days=0) as stack:
        booked = stack.book(stack.slots()[0]["id"], message=SECRET)["appointment"]
        stack.api.ok("cancelAppointment", {"appointmentId": booked["id"]}, APPOINTMENT, stack.mother)
        assert run(stack, lambda: purge(stack.platform)) == 1  # ``privacy.retention``: cases and appointments
        seen = stack.api.gql(READ, stack.mother, id=booked["id"])["appointment"]
        assert (seen["message"], seen["deleted"]) == (None, True)
        runs = stack.api.gql("{ retentionRuns { rule trigger appointments } }", stack.operator)[
            "retentionRuns"
        ]
        assert {"rule": APPOINTMENT_RETENTION, "trigger": "schedule", "appointments": 1} in runs


def test_legetime_purge_deletes_appointments_too(tmp_path: Path) -> None:
    from tests.cli import run_cli

    with appointment_stack(tmp_path, appointment_retention_days=0) as stack:
        booked = stack.book(stack.slots()[0]["id"], message=SECRET)["appointment"]
        stack.api.ok("cancelAppointment", {"appointmentId": booked["id"]}, APPOINTMENT, stack.mother)
    env = {
        "LEGETIME_DATA_DIR": str(tmp_path / "data"),
        "LEGETIME_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'appointments.db'}",
    }
    dry = run_cli("purge", "--dry-run", env=env)
    assert dry.returncode == 0 and "Would delete the content of 1 appointment" in dry.stdout, dry.stdout
    done = run_cli("purge", env=env)
    assert done.returncode == 0 and "Deleted the content of 1 appointment" in done.stdout, done.stdout
    assert "Deleted the communication of 0 case" in done.stdout
    again = run_cli("purge", env=env)
    assert "Deleted the content of 0 appointment" in again.stdout, again.stdout


def test_every_change_is_an_event_with_ids_and_status_only(stack: AppointmentStack) -> None:
    """Requested, booked, moved, cancelled; booked, arrived, completed — each in the transaction of the
    change, to plugins (and webhooks) after commit; no message, no type, no name in them. (Arrival and
    completion have no time rule: the visit's day need not come.)"""
    api = stack.api
    request = stack.book(None, message=SECRET)["appointment"]
    slots = stack.slots(span=2)
    api.ok(
        "bookAppointmentTime",
        {"appointmentId": request["id"], "slotId": slots[0]["id"]},
        APPOINTMENT,
        stack.mother,
    )
    api.ok(
        "moveAppointment",
        {"appointmentId": request["id"], "slotId": slots[1]["id"]},
        APPOINTMENT,
        stack.mother,
    )
    api.ok("cancelAppointment", {"appointmentId": request["id"]}, APPOINTMENT, stack.mother)
    visit = stack.book(slots[2]["id"])["appointment"]
    api.ok("markArrived", {"appointmentId": visit["id"]}, APPOINTMENT, stack.operator)
    api.ok("completeAppointment", {"appointmentId": visit["id"]}, APPOINTMENT, stack.clinician)

    def of(appointment_id: str) -> list[Any]:
        mine = [e for e in stack.events.events if e.data.get("appointment_id") == appointment_id]
        return sorted(mine, key=lambda e: e.occurred_at)

    expected_request = [
        (EventType.APPOINTMENT_REQUESTED, "REQUESTED", "patient"),
        (EventType.APPOINTMENT_BOOKED, "BOOKED", "patient"),
        (EventType.APPOINTMENT_MOVED, "BOOKED", "patient"),
        (EventType.APPOINTMENT_CANCELLED, "CANCELLED", "patient"),
    ]
    api.wait_for(lambda: len(of(request["id"])) == 4 and len(of(visit["id"])) == 3, "the events")
    assert [
        (e.type, e.data["appointment_status"], e.actor_role) for e in of(request["id"])
    ] == expected_request
    assert [(e.type, e.data["appointment_status"], e.actor_role) for e in of(visit["id"])] == [
        (EventType.APPOINTMENT_BOOKED, "BOOKED", "patient"),
        (EventType.APPOINTMENT_ARRIVED, "ARRIVED", "operator"),
        (EventType.APPOINTMENT_COMPLETED, "COMPLETED", "clinician"),
    ]
    for event in of(request["id"]) + of(visit["id"]):
        assert event.case_id is None and event.case_status is None
        assert set(event.data) == {"appointment_id", "appointment_status", "clinic_id"}
        assert event.data["clinic_id"] == stack.clinic_id
        assert SECRET not in str(event.data)
