"""Paying for a visit as clients see it: from the payment link in her text (no login) or in the app, the
invoice issued after 48 hours unpaid (its PDF behind a short-lived signed URL, for her side and operators),
and an operator registering an invoice paid by bank transfer. The rules live in
``legetime.core.appointments.settlement``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from legetime.core.appointments import settlement
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db import appointment_models as am
from legetime.core.platform.errors import NotFound, ValidationError
from legetime.core.platform.providers.payment import PaymentActionKind as CorePaymentActionKind
from legetime.core.platform.runtime import Platform
from legetime.schema.appointment_api import AppointmentStatus
from legetime.schema.clinic_api import parse_uuid
from legetime.schema.context import Info
from legetime.schema.errors import Error
from legetime.schema.mutation import mutate
from legetime.schema.platform_types import Money

PaymentActionKind = strawberry.enum(
    CorePaymentActionKind,
    name="PaymentActionKind",
    description="REDIRECT: send the payer to `url`. CLIENT_SECRET: the provider's script confirms in her "
    "browser with `clientSecret` and `publishableKey`.",
)


@strawberry.type(description="How the payer approves a payment that waits for her (never store or log it).")
class AppointmentPaymentAction:
    kind: PaymentActionKind  # type: ignore[valid-type]
    url: str | None
    client_secret: str | None
    publishable_key: str | None


@strawberry.type(description="The invoice of a visit not paid within 48 hours.")
class AppointmentInvoice:
    number: str
    kid: str = strawberry.field(description="The payment reference for a bank transfer (KID).")
    amount: Money = strawberry.field(description="The total: the visit's price and the fee.")
    fee: Money
    issued_on: date
    due_on: date
    status: str = strawberry.field(description="`issued`, `settled` or `cancelled`.")
    settled_at: datetime | None
    document_url: str | None = strawberry.field(
        description="The invoice as PDF: a signed URL that works for a few minutes, for this reader only. "
        "Null when the appointment's data has been deleted."
    )


@strawberry.type(description="Where the payment of an appointment stands.")
class AppointmentPaymentStatus:
    appointment_id: strawberry.ID
    status: AppointmentStatus  # type: ignore[valid-type]
    amount_due: Money | None = strawberry.field(description="What is left to pay; null once paid.")
    paid_at: datetime | None
    invoiced_at: datetime | None


@strawberry.input
class StartAppointmentPaymentInput:
    token: str | None = strawberry.field(
        default=None, description="The payment link's token (no login needed)."
    )
    appointment_id: strawberry.ID | None = strawberry.field(
        default=None, description="Or the appointment, as its patient (or her guardian) logged in."
    )
    payment_method: str | None = strawberry.field(
        default=None, description="As `paymentMethods` names it; null: the provider's default."
    )
    return_url: str | None = strawberry.field(
        default=None, description="Where the provider sends her back after approving (redirects)."
    )


@strawberry.type
class StartAppointmentPaymentPayload:
    action: AppointmentPaymentAction | None = strawberry.field(
        default=None, description="While the payment waits for her approval: how she approves it."
    )
    status: AppointmentStatus | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="The appointment's status afterwards: PAID once the payment settled it."
    )
    errors: list[Error] = strawberry.field(
        description="PAYMENT_DECLINED: the payment was refused (recorded); start again to try another card."
    )


@strawberry.input
class MarkInvoicePaidInput:
    appointment_id: strawberry.ID


@strawberry.type
class MarkInvoicePaidPayload:
    invoice: AppointmentInvoice | None = None
    status: AppointmentStatus | None = None  # type: ignore[valid-type]
    errors: list[Error]


def _invoice(ctx: Ctx, invoice: am.Invoice, appointment: am.Appointment) -> AppointmentInvoice:
    deleted = appointment.data_key is None
    return AppointmentInvoice(
        number=invoice.number,
        kid=invoice.kid,
        amount=Money(amount=invoice.amount, currency=invoice.currency),
        fee=Money(amount=invoice.fee_amount, currency=invoice.currency),
        issued_on=invoice.issued_on,
        due_on=invoice.due_on,
        status=invoice.status,
        settled_at=invoice.settled_at,
        document_url=None if deleted else settlement.document_url(ctx, invoice),
    )


def _action(start: settlement.PaymentStart) -> AppointmentPaymentAction | None:
    action = start.action
    if action is None:
        return None
    return AppointmentPaymentAction(
        kind=action.kind,
        url=action.url,
        client_secret=action.client_secret,
        publishable_key=action.publishable_key,
    )


@dataclass(frozen=True)
class _Started:
    start: settlement.PaymentStart
    status: am.AppointmentStatus


@strawberry.type
class AppointmentPaymentQuery:
    @strawberry.field(
        description="The invoice of an appointment, when one was issued: for its patient (or her guardian) "
        "and operators. The read is logged."
    )
    async def appointment_invoice(
        self, info: Info, appointment_id: strawberry.ID
    ) -> AppointmentInvoice | None:
        ctx = await info.context.read()
        invoice, appointment = await settlement.readable_invoice(
            ctx, parse_uuid(appointment_id, "appointmentId")
        )
        return _invoice(ctx, invoice, appointment) if invoice is not None else None

    @strawberry.field(
        description="Where an appointment's payment stands: for whoever may see the appointment, or (with "
        "`token`) the holder of its payment link."
    )
    async def appointment_payment_status(
        self, info: Info, appointment_id: strawberry.ID | None = None, token: str | None = None
    ) -> AppointmentPaymentStatus:
        ctx = await info.context.read()
        wanted = parse_uuid(appointment_id, "appointmentId") if appointment_id is not None else None
        state = await settlement.payment_state(ctx, wanted, token)
        row = state.appointment
        due = state.amount_due
        return AppointmentPaymentStatus(
            appointment_id=strawberry.ID(str(row.id)),
            status=row.status,
            amount_due=Money(amount=due.amount, currency=due.currency) if due is not None else None,
            paid_at=row.paid_at,
            invoiced_at=row.invoiced_at,
        )


@strawberry.type
class AppointmentPaymentMutation:
    @strawberry.mutation(
        description="Pay for a visit: from the payment link (`token`, no login) or in the app "
        "(`appointmentId`, as the patient). The amount due is the price, or the invoice's total once "
        "invoiced. When the payer must approve first, `action` says how; the payment settles as soon as "
        "the provider confirms it. Paid already: status PAID and nothing is charged."
    )
    async def start_appointment_payment(
        self, info: Info, input: StartAppointmentPaymentInput
    ) -> StartAppointmentPaymentPayload:
        async def work(ctx: Ctx) -> _Started:
            if input.token is not None:
                start = await settlement.start_payment(
                    ctx, input.token, input.payment_method, input.return_url
                )
            elif input.appointment_id is not None:
                appointment_id = parse_uuid(input.appointment_id, "appointmentId")
                start = await settlement.start_payment_in_app(
                    ctx, appointment_id, input.payment_method, input.return_url
                )
            else:
                raise ValidationError("Oppgi lenken eller timen.", field="token")
            return _Started(start, start.appointment.status)

        started, errors = await mutate(info, work)
        if started is None:
            return StartAppointmentPaymentPayload(errors=errors)
        if started.start.error is not None:
            errors = [*errors, Error.from_exception(started.start.error)]
        return StartAppointmentPaymentPayload(
            action=_action(started.start), status=started.status, errors=errors
        )

    @strawberry.mutation(
        description="Operators: the invoice was paid by bank transfer with its KID. Settles the invoice and "
        "the appointment (again: nothing more happens)."
    )
    async def mark_invoice_paid(self, info: Info, input: MarkInvoicePaidInput) -> MarkInvoicePaidPayload:
        async def work(ctx: Ctx) -> MarkInvoicePaidPayload:
            appointment_id = parse_uuid(input.appointment_id, "appointmentId")
            invoice = await settlement.mark_invoice_paid(ctx, appointment_id)
            appointment = await ctx.session.get(am.Appointment, invoice.appointment_id)
            assert appointment is not None
            return MarkInvoicePaidPayload(
                invoice=_invoice(ctx, invoice, appointment), status=appointment.status, errors=[]
            )

        payload, errors = await mutate(info, work)
        return payload if payload is not None else MarkInvoicePaidPayload(errors=errors)


def invoice_document_route(platform: Platform) -> Route:
    """``/invoices/<id>``: an invoice's PDF behind its signed URL (``AppointmentInvoice.documentUrl``),
    opened (decrypted) for the reader it was made for; the download is logged."""

    async def invoice_document(request: Request) -> Response:
        try:
            async with platform.db.transaction() as session:
                data = await settlement.open_signed(
                    session, platform, request.path_params["invoice_id"], dict(request.query_params)
                )
        except NotFound:
            return Response("Not found", status_code=404)
        headers = {
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": 'inline; filename="faktura.pdf"',
        }
        return Response(data, media_type="application/pdf", headers=headers)

    return Route("/invoices/{invoice_id}", invoice_document, methods=["GET"])
