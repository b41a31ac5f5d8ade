"""The whole in-person journey through GraphQL, on a simulated clock (issue 16, "Done when"): a written
consultation ends with a physical-examination referral → she books a time → the reminder with the form
link two days before → she sends the health declaration after BankID → the arrival text one hour before →
she registers her arrival → the visit is completed → the payment link → no payment → the invoice with its
fee after 48 hours → she pays it → the appointment's data is deleted after the retention period. The
texts are the ones the SMS provider took, the links the ones in them; on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import time_machine

from legetime.core.appointments.retention import run_appointment_retention
from legetime.core.identity.actors import SYSTEM
from legetime.core.platform.providers import SMS
from legetime.plugins.payments import fake
from tests.api import SUBMIT_FIELDS, complete_answers
from tests.appointment_stack import APPOINTMENT, VISIT, AppointmentStack, appointment_stack
from tests.test_appointment_forms import DECLARATION

LINK = re.compile(r"/t/([A-Za-z0-9_-]+)")
MONDAY_MORNING = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # 09:00 in Oslo
READ = f"query($id: ID!) {{ appointment(id: $id) {{ {APPOINTMENT.removeprefix('appointment {')} }}"
INVOICE = (
    "query($id: ID!) { appointmentInvoice(appointmentId: $id) "
    "{ number kid amount { amount } fee { amount } dueOn status documentUrl } }"
)


def texts(stack: AppointmentStack, kind: str) -> list[Any]:
    assert stack.client.portal is not None
    stored = stack.client.portal.call(stack.platform.providers.get(SMS).messages)  # type: ignore[attr-defined]
    return [m for m in stored if f":{kind}:" in m.reference]


def link_in(stack: AppointmentStack, kind: str) -> str:
    """The token of the link in the (one) text of this kind, once it has gone out."""
    [text] = stack.api.wait_for(lambda: texts(stack, kind), f"the {kind} text")
    found = LINK.search(text.body)
    assert found is not None, text.body
    return found.group(1)


def answered_with_physical_examination(stack: AppointmentStack) -> str:
    """Her written consultation, answered by the clinician: come in for an examination."""
    api = stack.api
    case_id = api.ok("startCase", {}, "case { id }", stack.mother)["case"]["id"]
    answers = {"caseId": case_id, "answers": complete_answers(api, for_child=False)}
    api.ok("answerQuestionnaire", answers, "case { id }", stack.mother)
    version = api.gql("{ consentTexts { purpose version } }")["consentTexts"][0]["version"]
    api.ok(
        "grantConsent",
        {"purpose": "COMMUNICATION_STORAGE", "textVersion": version},
        "consent { granted }",
        stack.mother,
    )
    api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "k"}, SUBMIT_FIELDS, stack.mother)
    api.ok("claimCase", {"caseId": case_id}, "case { id }", stack.clinician)
    answer = {
        "caseId": case_id,
        "body": "Føflekken bør undersøkes. Bestill time.",
        "outcome": "PHYSICAL_EXAMINATION",
    }
    api.ok("answerCase", answer, "case { status outcome }", stack.clinician)
    return str(case_id)


def test_the_whole_in_person_journey(tmp_path: Path, database_url: str) -> None:
    with (
        time_machine.travel(MONDAY_MORNING, tick=True) as clock,
        appointment_stack(tmp_path, database_url) as stack,
    ):
        api = stack.api
        price, fee = 95000, stack.platform.settings.invoice_fee_minor

        # The consultation refers her; she picks a time on Friday (within the next two weeks).
        case_id = answered_with_physical_examination(stack)
        referral = {"caseId": case_id, "clinicId": stack.clinic_id, "appointmentType": VISIT}
        referred = api.ok("referToAppointment", referral, APPOINTMENT, stack.clinician)["appointment"]
        assert (referred["status"], referred["startsAt"]) == ("REQUESTED", None)
        appointment_id = referred["id"]
        slot = stack.slots(VISIT, days=4, token=stack.mother)[0]
        starts = datetime.fromisoformat(slot["startsAt"])
        time = {"appointmentId": appointment_id, "slotId": slot["id"]}
        booked = api.ok("bookAppointmentTime", time, APPOINTMENT, stack.mother)["appointment"]
        assert (booked["status"], booked["startsAt"], booked["caseId"]) == (
            "BOOKED",
            slot["startsAt"],
            case_id,
        )

        # Two days before: the reminder, with the link to the health declaration she sends after BankID.
        clock.move_to(starts - timedelta(days=2) + timedelta(minutes=1))
        stack.login()
        forms = link_in(stack, "reminder")
        form = {"token": forms, "kind": "HEALTH_DECLARATION", "answers": DECLARATION}
        sent = api.ok("submitAppointmentForm", form, "appointment { status forms { kind } }", stack.mother)
        assert sent["appointment"] == {"status": "REMINDED", "forms": [{"kind": "HEALTH_DECLARATION"}]}

        # One hour before: the arrival text; she registers from its link at the door.
        clock.move_to(starts - timedelta(minutes=59))
        arrival = link_in(stack, "arrival")
        registered = api.ok("registerArrival", {"token": arrival}, "arrivedAt")
        assert registered["arrivedAt"] is not None

        # The visit; then the payment link, which she does not use.
        clock.move_to(starts + timedelta(minutes=25))
        stack.login()
        done = api.ok("completeAppointment", {"appointmentId": appointment_id}, APPOINTMENT, stack.clinician)
        assert done["appointment"]["status"] == "COMPLETED"
        clock.move_to(starts + timedelta(minutes=41))
        link_in(stack, "payment_link")

        # 48 hours unpaid: the invoice with its fee, which she pays from its link.
        clock.move_to(starts + timedelta(hours=48, minutes=30))
        stack.login()
        pay = link_in(stack, "invoice")
        # The text goes out from within the job that issues the invoice: read it once that has committed.
        invoice = api.wait_for(
            lambda: api.gql(INVOICE, stack.mother, id=appointment_id)["appointmentInvoice"], "the invoice"
        )
        assert (invoice["amount"]["amount"], invoice["fee"]["amount"], invoice["status"]) == (
            price + fee,
            fee,
            "issued",
        )
        paid = api.ok("startAppointmentPayment", {"token": pay, "paymentMethod": fake.CARD_OK}, "status")
        assert paid["status"] == "PAID"
        assert api.gql(INVOICE, stack.mother, id=appointment_id)["appointmentInvoice"]["status"] == "settled"
        seen = api.gql(READ, stack.mother, id=appointment_id)["appointment"]
        assert (seen["status"], seen["deleted"], seen["forms"][0]["answers"]["height"]) == (
            "PAID",
            False,
            168,
        )

        # Five texts, each once, none with anything about her health.
        every = [m for kind in ("reminder", "arrival", "payment_link", "invoice") for m in texts(stack, kind)]
        assert len(every) == 4 and all(
            "Føflekk" not in m.body and "Undersøkelse" not in m.body for m in every
        )

        # After the retention period her message and forms are gone; a tombstone is left.
        retention = timedelta(days=stack.platform.settings.appointment_retention_days)
        clock.move_to(datetime.now(UTC) + retention + timedelta(hours=1))
        assert stack.client.portal is not None
        summary = stack.client.portal.call(
            lambda: run_appointment_retention(stack.platform, actor=SYSTEM, trigger="test")
        )
        assert summary.appointments == 1
        stack.login()
        after = api.gql(READ, stack.mother, id=appointment_id)["appointment"]
        assert (after["status"], after["deleted"], after["message"]) == ("PAID", True, None)
        assert after["forms"] == [] or after["forms"][0]["answers"] in (None, {})
