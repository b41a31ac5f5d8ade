"""Payment after the visit, through GraphQL with a simulated clock: the payment link 15 minutes after the
visit is completed, paying from it with the fake provider's test cards, the invoice with its fee after 48
hours unpaid (its PDF for her side and operators only), paying after the invoice settles it, an operator
registering a bank transfer; redelivered webhooks and jobs settle and issue nothing twice, and the payment
provider gets nothing about her health."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
import time_machine
from sqlalchemy import func, select

from legetime.core.appointments import settlement, timed_texts
from legetime.core.platform.db.appointment_models import (
    Appointment,
    AppointmentPayment,
    Invoice,
    TimedTextPlan,
)
from legetime.core.platform.db.models import AuditEvent
from legetime.core.platform.jobs.types import JobContext
from legetime.core.platform.providers import INVOICING, PAYMENT, SMS
from legetime.plugins.payments import fake
from tests.appointment_stack import AppointmentStack, appointment_stack
from tests.support import synthetic_national_id

T = TypeVar("T")

PRICE = 95000
PHONE = "412 34 567"
LINK = re.compile(r"/t/([A-Za-z0-9_-]+)")
STATUS = (
    "query($id: ID, $link: String) { appointmentPaymentStatus(appointmentId: $id, token: $link) "
    "{ status amountDue { amount } paidAt invoicedAt } }"
)
INVOICE = (
    "query($id: ID!) { appointmentInvoice(appointmentId: $id) "
    "{ number kid amount { amount } fee { amount } issuedOn dueOn status documentUrl } }"
)
START = "action { kind url } status"
HEALTH_WORDS = ("Undersøkelse", "undersøkelse", "Majorstuen", "Føflekk", "visit", "klinikk")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[AppointmentStack]:
    with appointment_stack(tmp_path) as stack:
        yield stack


def run(stack: AppointmentStack, work: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine in the app's event loop (where its platform lives)."""
    assert stack.client.portal is not None
    return stack.client.portal.call(work)


def in_db(stack: AppointmentStack, work: Callable[[Any], Awaitable[T]]) -> T:
    async def transaction() -> T:
        async with stack.platform.db.transaction() as session:
            return await work(session)

    return run(stack, transaction)


def texts(stack: AppointmentStack, kind: str) -> list[Any]:
    stored = run(stack, stack.platform.providers.get(SMS).messages)  # type: ignore[attr-defined]
    return [m for m in stored if f":{kind}:" in m.reference]


def wait_for_text(stack: AppointmentStack, kind: str) -> Any:
    return stack.api.wait_for(lambda: texts(stack, kind), f"the {kind} text")[0]


def token_of(text: Any) -> str:
    found = LINK.search(text.body)
    assert found is not None, text.body
    return found.group(1)


def psp_requests(stack: AppointmentStack) -> list[Any]:
    """What the fake payment provider was asked to keep (its own table: what the partner gets)."""
    provider: Any = stack.platform.providers.get(PAYMENT, fake.NAME)

    async def rows() -> list[Any]:
        async with provider._db.transaction() as session:  # the fake's store, as the PSP would see it
            query = select(fake.payments).order_by(fake.payments.c.created_at)
            return list((await session.execute(query)).all())

    return run(stack, rows)


def completed_visit(stack: AppointmentStack, traveller: time_machine.Traveller) -> tuple[str, datetime]:
    """A visit booked five days ahead, travelled to and completed by its clinician: (id, completed at)."""
    slot = stack.slots()[0]
    booked = stack.book(slot["id"], phone=PHONE, message="Føflekk på ryggen.")
    assert booked["errors"] == []
    appointment_id = booked["appointment"]["id"]
    starts = datetime.fromisoformat(slot["startsAt"])
    traveller.move_to(starts + timedelta(minutes=5))
    stack.login()

    async def before_visit_settled(session: Any) -> bool:
        planned = await session.scalar(
            select(func.count(TimedTextPlan.id)).where(
                TimedTextPlan.appointment_id == _uuid(appointment_id), TimedTextPlan.status == "planned"
            )
        )
        return bool(planned == 0)

    # The reminder and arrival texts went out at the jump; complete after them (no concurrent change).
    stack.api.wait_for(lambda: in_db(stack, before_visit_settled), "the texts before the visit")
    done = stack.api.ok(
        "completeAppointment", {"appointmentId": appointment_id}, "appointment { status }", stack.clinician
    )
    assert done["appointment"]["status"] == "COMPLETED"
    return appointment_id, datetime.now(UTC)


def _uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)


def payment_status(stack: AppointmentStack, user: str | None = None, **variables: str) -> dict[str, Any]:
    """``appointmentPaymentStatus`` as ``user`` asks (none: the holder of the payment ``link``)."""
    return dict(stack.api.gql(STATUS, user, **variables)["appointmentPaymentStatus"])


def start(stack: AppointmentStack, user: str | None = None, **wanted: Any) -> dict[str, Any]:
    return stack.api.mutate("startAppointmentPayment", wanted, START, user)


def test_the_payment_link_after_the_visit_pays_it(stack: AppointmentStack) -> None:
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        appointment_id, done = completed_visit(stack, traveller)
        assert texts(stack, "payment_link") == []  # not at once: 15 minutes after
        traveller.move_to(done + timedelta(minutes=16))
        text = wait_for_text(stack, "payment_link")
        assert text.body.startswith("Legetime: Takk for besøket. Betal kr 950,00 her: http")
        assert not any(word in text.body for word in HEALTH_WORDS)
        token = token_of(text)

        # The link's page shows what to pay, without a login; she pays with a card that needs no approval.
        assert payment_status(stack, link=token)["amountDue"] == {"amount": PRICE}
        declined = start(stack, token=token, paymentMethod=fake.CARD_DECLINED)
        assert [e["code"] for e in declined["errors"]] == ["PAYMENT_DECLINED"]
        assert declined["status"] == "COMPLETED"
        paid = start(stack, token=token, paymentMethod=fake.CARD_OK)  # another card: a new attempt
        assert paid["errors"] == [] and paid["status"] == "PAID" and paid["action"] is None
        status = payment_status(stack, stack.mother, id=appointment_id)
        assert status["status"] == "PAID" and status["amountDue"] is None and status["paidAt"]
        retention = in_db(stack, lambda s: s.scalar(select(Appointment.retention_until)))
        assert retention is not None and retention > datetime.now(UTC) + timedelta(days=80)

        # Paying again (a second click, the app) charges nothing more.
        assert start(stack, token=token, paymentMethod=fake.CARD_OK)["status"] == "PAID"
        assert start(stack, stack.mother, appointmentId=appointment_id)["status"] == "PAID"
        refused, request = psp_requests(stack)
        assert (refused.card, refused.captured) == (fake.CARD_DECLINED, 0)
        assert (request.amount, request.captured, request.currency) == (PRICE, PRICE, "NOK")
        # What the payment partner got: the amount, the appointment's number, "Legetime". Nothing else.
        number = in_db(stack, lambda s: s.scalar(select(Appointment.number)))
        assert (request.reference, request.description) == (number, "Legetime")
        assert not any(word in str(tuple(request)) for word in HEALTH_WORDS)

        # Paid: no invoice after 48 hours.
        traveller.move_to(done + timedelta(hours=48, minutes=1))
        stack.api.wait_for(lambda: invoice_plan(stack) != "planned", "the invoice job")
        assert invoice_plan(stack) == "skipped_paid"
        assert texts(stack, "invoice") == []
        assert in_db(stack, lambda s: s.scalar(select(func.count(Invoice.id)))) == 0


def invoice_plan(stack: AppointmentStack) -> str:
    """What became of the invoice's planned text."""
    return str(
        in_db(stack, lambda s: s.scalar(select(TimedTextPlan.status).where(TimedTextPlan.kind == "invoice")))
    )


def issue_and_fail(stack: AppointmentStack, appointment_id: str) -> None:
    """The invoice job's first attempt issues the invoice and then fails (its transaction rolls back)."""

    class Lost(Exception):
        pass

    async def attempt() -> None:
        try:
            async with stack.platform.db.transaction() as session:
                plan = await session.scalar(
                    select(Appointment.plan).where(Appointment.id == _uuid(appointment_id))
                )
                payload = {"appointment_id": appointment_id, "kind": "invoice", "plan": plan}
                await timed_texts.send_job(JobContext(stack.platform, session, "first", 1), payload)
                raise Lost
        except Lost:
            pass

    run(stack, attempt)


def provider_invoices(stack: AppointmentStack) -> list[Any]:
    from legetime.plugins.invoicing.pdf import invoices

    provider: Any = stack.platform.providers.get(INVOICING)

    async def rows() -> list[Any]:
        async with provider._db.transaction() as session:  # the provider's own store
            return list((await session.execute(select(invoices))).all())

    return run(stack, rows)


def download(stack: AppointmentStack, url: str) -> Any:
    parts = urlsplit(url)
    return stack.client.get(f"{parts.path}?{parts.query}")


@pytest.fixture
def both(tmp_path: Path, database_url: str) -> Iterator[AppointmentStack]:
    with appointment_stack(tmp_path, database_url) as stack:
        yield stack


def test_unpaid_after_48_hours_an_invoice_with_the_fee_and_paying_it_settles_it(
    both: AppointmentStack,
) -> None:
    stack = both
    api = stack.api
    changed = api.mutate(
        "changePlatformSettings", {"values": {"invoice_fee_minor": 9900}}, "changed", stack.operator
    )
    assert changed["errors"] == []
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        appointment_id, done = completed_visit(stack, traveller)
        traveller.move_to(done + timedelta(minutes=16))
        link_token = token_of(wait_for_text(stack, "payment_link"))

        # The job's first attempt issues and then fails; the real job runs after it: one invoice.
        traveller.move_to(done + timedelta(hours=47, minutes=59))
        issue_and_fail(stack, appointment_id)
        traveller.move_to(done + timedelta(hours=48, minutes=1))
        stack.login()
        stack.api.wait_for(lambda: invoice_plan(stack) == "sent", "the invoice job")
        text = wait_for_text(stack, "invoice")
        assert text.body.startswith(
            "Legetime: Faktura på kr 1 049,00 er sendt. Se den i appen eller betal her: "
        )
        assert not any(word in text.body for word in HEALTH_WORDS)
        assert len(provider_invoices(stack)) == 1 and len(texts(stack, "invoice")) == 1
        assert in_db(stack, lambda s: s.scalar(select(func.count(Invoice.id)))) == 1

        invoice = api.gql(INVOICE, stack.mother, id=appointment_id)["appointmentInvoice"]
        assert invoice["amount"] == {"amount": PRICE + 9900} and invoice["fee"] == {"amount": 9900}
        assert (
            invoice["status"] == "issued"
            and invoice["kid"].isdigit()
            and invoice["number"].startswith("LT-F")
        )
        issued = date.fromisoformat(invoice["issuedOn"])
        assert date.fromisoformat(invoice["dueOn"]) == issued + timedelta(days=14)
        pdf = download(stack, invoice["documentUrl"])
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        assert pdf.headers["content-type"] == "application/pdf"
        mine = api.gql(INVOICE, stack.operator, id=appointment_id)["appointmentInvoice"]
        assert download(stack, mine["documentUrl"]).content.startswith(b"%PDF")
        tampered = mine["documentUrl"].replace("role=operator", "role=patient")
        assert download(stack, tampered).status_code == 404

        # Not for another patient, nor the clinician (invoices are for her side and the reception).
        stranger = api.login(synthetic_national_id(date(1990, 5, 17)))
        for other in (stranger, stack.clinician):
            refused = api.raw(INVOICE, other, id=appointment_id)
            assert refused["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        reads = in_db(
            stack,
            lambda s: s.scalar(
                select(func.count(AuditEvent.id)).where(
                    AuditEvent.action.in_(("read_invoice", "download_invoice"))
                )
            ),
        )
        assert reads == 4

        # She pays from the first link (approving in the provider's page): now price and fee.
        status = payment_status(stack, link=link_token)
        assert status["status"] == "INVOICED" and status["amountDue"] == {"amount": PRICE + 9900}
        pending = start(
            stack, token=link_token, paymentMethod=fake.CARD_3DS, returnUrl="https://app.example/betalt"
        )
        assert pending["errors"] == [] and pending["status"] == "INVOICED"
        assert pending["action"]["kind"] == "REDIRECT"
        # Starting again while it waits gives the same payment, not a second one.
        assert start(stack, token=link_token, paymentMethod=fake.CARD_3DS)["action"] == pending["action"]
        assert len(psp_requests(stack)) == 1
        approved = api.client.post(urlsplit(pending["action"]["url"]).path, follow_redirects=False)
        assert approved.status_code == 303  # she approves, and is sent back to the app
        provider: Any = stack.platform.providers.get(PAYMENT, fake.NAME)
        [request] = psp_requests(stack)
        headers, body = provider.webhook_for(request.payment_id, "payment.authorized")
        for _ in range(2):  # the provider delivers it twice
            assert (
                api.client.post("/webhooks/payments/fake", content=body, headers=headers).status_code == 204
            )
        api.wait_for(lambda: payment_status(stack, link=link_token)["status"] == "PAID", "the payment")

        [request] = psp_requests(stack)
        assert (request.amount, request.captured) == (PRICE + 9900, PRICE + 9900)
        [kept] = provider_invoices(stack)
        assert kept.status == "settled"
        assert api.gql(INVOICE, stack.mother, id=appointment_id)["appointmentInvoice"]["status"] == "settled"

        # A webhook job redelivered, and a fresh notification: nothing more is captured or settled.
        async def redeliver(session: Any) -> bool:
            return await settlement.refresh_webhook(
                JobContext(stack.platform, session, "again", 2), fake.NAME, request.payment_id
            )

        assert in_db(stack, redeliver) is True
        headers, body = provider.webhook_for(request.payment_id, "payment.captured")
        assert api.client.post("/webhooks/payments/fake", content=body, headers=headers).status_code == 204
        [request] = psp_requests(stack)
        assert request.captured == PRICE + 9900
        pays = in_db(
            stack, lambda s: s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "pay"))
        )
        assert pays == 1


def test_an_operator_registers_a_bank_transfer_and_a_late_card_payment_is_not_charged(
    stack: AppointmentStack,
) -> None:
    api = stack.api
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        appointment_id, done = completed_visit(stack, traveller)
        traveller.move_to(done + timedelta(hours=48, minutes=1))
        stack.login()
        token = token_of(wait_for_text(stack, "invoice"))

        # She starts paying by card but walks away; meanwhile the bank transfer arrives.
        pending = start(stack, token=token, paymentMethod=fake.CARD_3DS)
        assert pending["action"]["kind"] == "REDIRECT"
        mark = "invoice { status } status"
        refused = api.mutate("markInvoicePaid", {"appointmentId": appointment_id}, mark, stack.clinician)
        assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"]
        paid = api.ok("markInvoicePaid", {"appointmentId": appointment_id}, mark, stack.operator)
        assert (paid["invoice"], paid["status"]) == ({"status": "settled"}, "PAID")
        again = api.ok("markInvoicePaid", {"appointmentId": appointment_id}, mark, stack.operator)
        assert again == paid
        [kept] = provider_invoices(stack)
        assert kept.status == "settled"

        # She approves after all, and the webhook is lost: reconciliation finds the authorization and
        # releases it, since the invoice is paid. Nothing is charged.
        assert api.client.post(urlsplit(pending["action"]["url"]).path).status_code == 200
        later = datetime.now(UTC) + timedelta(minutes=20)
        assert run(stack, lambda: _reconcile(stack, later)) == 1
        [request] = psp_requests(stack)
        assert (request.captured, request.released) == (0, request.amount)
        assert in_db(stack, _payment_statuses) == ["released"]
        assert payment_status(stack, stack.mother, id=appointment_id)["status"] == "PAID"


async def _payment_statuses(session: Any) -> list[str]:
    return list((await session.scalars(select(AppointmentPayment.status))).all())


async def _reconcile(stack: AppointmentStack, now: datetime) -> int:
    async with stack.platform.db.transaction() as session:
        return await settlement.reconcile(session, stack.platform, now)
