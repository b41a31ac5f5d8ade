"""Payment after the visit: the payment link, the invoice after 48 hours unpaid, and settling either.

**The texts.** Fifteen minutes after the visit the patient (or the guardian who booked) gets a payment
link (``PAYMENT_LINK``); 48 hours after it, if still unpaid, the invoice is issued through the invoicing
provider and she is told (``INVOICE``). Both are makers of ``timed_texts`` and run inside its job's
transaction, with the appointment locked. Issuing is idempotent at the provider by its reference (the
appointment's id), and every part of the request is derived from what does not change between attempts
(the plan's due date, the appointment's number and price), so a retried job gets the same invoice back and
stores it once. The PDF is sealed with the appointment's data key before it goes to storage: the storage
provider only ever holds ciphertext, and the document dies with the key at the end of retention.

**Paying.** From the link (no login: the signed token is the authority, for this one appointment and this
purpose) or in the app as the patient: the default payment provider reserves the amount due (the price,
or the invoice's total once invoiced), and an authorized payment is captured at once — at once for a card
that needs no approval, later for a redirect (Vipps, Swedbank Pay, 3-D Secure) when a webhook or the
periodic reconciliation sees the authorization. A captured payment settles the appointment (PAID, the
retention period starts) and, if an invoice was issued, the invoice at its provider. An operator marks an
invoice paid that came by bank transfer with its KID.

**Once.** Everything that moves money carries a key derived from what it is about (the appointment and
the amount for a reservation, the provider's payment id for a capture or a release), and every decision is
taken with the appointment's row locked: a capture seen twice, a webhook delivered twice or a job
redelivered settles nothing twice. A payment authorized after the appointment was settled another way is
released, not captured: she is never charged twice. A payment she started for the price before the invoice
was issued, and approved after, settles the invoice too: she set out to pay in time.

**What the payment partner gets.** The amount, the appointment's number as reference and "Legetime" as
the description: never the appointment type, the clinic or anything else about her health. The invoice's
lines say "Konsultasjon" and "Fakturagebyr", whatever the type is called.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.appointments import access, appointment_events, booking, links, states, timed_texts
from legetime.core.appointments.links import LinkPurpose
from legetime.core.appointments.states import AppointmentEvent
from legetime.core.consultation.access import require_person
from legetime.core.consultation.cases import CASE_NUMBER_ALPHABET
from legetime.core.consultation.submission import refresh_other_payments
from legetime.core.identity.actors import SYSTEM
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.appointment_models import (
    Appointment,
    AppointmentPayment,
    AppointmentStatus,
    Invoice,
    TimedText,
    TimedTextPlan,
)
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import Person
from legetime.core.platform.errors import (
    Forbidden,
    NotFound,
    PaymentDeclined,
    PaymentExpired,
    ProviderError,
    ValidationError,
)
from legetime.core.platform.events import EventType
from legetime.core.platform.jobs.types import JobContext
from legetime.core.platform.money import Money
from legetime.core.platform.providers import INVOICING, PAYMENT, STORAGE
from legetime.core.platform.providers.invoicing import InvoiceLine, InvoiceRequest, InvoiceStatus
from legetime.core.platform.providers.payment import (
    Payment,
    PaymentAction,
    PaymentProvider,
    PaymentStatus,
    ReserveRequest,
)
from legetime.core.protection import audit, content

if TYPE_CHECKING:
    from legetime.core.platform.runtime import Platform

log = structlog.get_logger(__name__)

DESCRIPTION = "Legetime"
"""What the payment partner shows on her statement: nothing about the visit."""
CONSULTATION_LINE = "Konsultasjon"
FEE_LINE = "Fakturagebyr"
INVOICE_DOCUMENT = "invoice"
"""What the sealed PDF is bound to (``content.seal_document``)."""
DOCUMENT_URL_LIFETIME = timedelta(minutes=10)
DOCUMENT_URL_KEY = "invoice-document-url"
SETTLED = InvoiceStatus.SETTLED.value
ISSUED = InvoiceStatus.ISSUED.value

OPEN = (PaymentStatus.PENDING.value, PaymentStatus.AUTHORIZED.value, PaymentStatus.PARTIALLY_CAPTURED.value)
FAILED = (
    PaymentStatus.DECLINED.value,
    PaymentStatus.EXPIRED.value,
    PaymentStatus.RELEASED.value,
)
DECLINED_MESSAGE = "Betalingen ble ikke godkjent. Prøv igjen eller velg en annen betalingsmåte."
NOT_PAYABLE = "Timen har ingenting å betale."
NOT_FOUND_MESSAGE = "Fant ikke fakturaen (lenken kan være utløpt)."


def kroner(amount: int) -> str:
    """``kr 1 015,00``: how an amount reads in a Norwegian text (a plain space: GSM-7 has no NBSP)."""
    major, minor = divmod(amount, 100)
    grouped = f"{major:,}".replace(",", " ")
    return f"kr {grouped},{minor:02d}"


def invoice_number(appointment: Appointment) -> str:
    """The invoice number, derived from the appointment's number (so a retry makes the same): each of its
    six characters as its two-digit place in the alphabet; the twelve digits make the KID."""
    suffix = appointment.number.removeprefix("LT-T")
    digits = "".join(f"{CASE_NUMBER_ALPHABET.index(char):02d}" for char in suffix)
    return f"LT-F{digits}"


def amount_due(appointment: Appointment, invoice: Invoice | None) -> Money:
    """The price, or the invoice's total (price and fee) once it is issued."""
    if invoice is not None:
        return Money(invoice.amount, invoice.currency)
    return Money(appointment.price_amount, appointment.price_currency)


async def invoice_of(session: AsyncSession, appointment_id: uuid.UUID) -> Invoice | None:
    return await session.scalar(select(Invoice).where(Invoice.appointment_id == appointment_id))


def _system(ctx: JobContext) -> Ctx:
    return Ctx(session=ctx.session, platform=ctx.platform, actor=SYSTEM)


# --- the texts ---------------------------------------------------------------------------------------------


def _skip(appointment: Appointment) -> str:
    return f"skipped_{appointment.status.value}"


@timed_texts.makes(TimedText.PAYMENT_LINK)
async def payment_link_text(
    ctx: JobContext, appointment: Appointment, row: TimedTextPlan
) -> timed_texts.Text:
    """Shortly after the visit, while unpaid. Made again (a failover) once sent: the same text."""
    body = (
        f"Legetime: Takk for besøket. Betal {kroner(appointment.price_amount)} her: "
        f"{links.link_for(ctx.platform, appointment, LinkPurpose.PAYMENT)}"
    )
    if row.status == timed_texts.PLANNED and appointment.status is not AppointmentStatus.COMPLETED:
        return timed_texts.Text(body, skipped=_skip(appointment))
    return timed_texts.Text(body)


@timed_texts.makes(TimedText.INVOICE)
async def invoice_text(ctx: JobContext, appointment: Appointment, row: TimedTextPlan) -> timed_texts.Text:
    """48 hours after the visit: issue the invoice if still unpaid, and tell her. Made again (a failover,
    or a job retried after the issue) it finds the invoice and says the same."""
    invoice = await invoice_of(ctx.session, appointment.id)
    if invoice is None and row.status == timed_texts.PLANNED:
        if appointment.status is not AppointmentStatus.COMPLETED:
            return timed_texts.Text("", skipped=_skip(appointment))
        invoice = await issue_invoice(_system(ctx), appointment, _local_date(ctx.platform, row.due_at))
    if invoice is None:  # a failover of a text never sent: nothing to say
        return timed_texts.Text("", skipped=_skip(appointment))
    body = (
        f"Legetime: Faktura på {kroner(invoice.amount)} er sendt. Se den i appen eller betal her: "
        f"{links.link_for(ctx.platform, appointment, LinkPurpose.PAYMENT)}"
    )
    return timed_texts.Text(body)


def _local_date(platform: Platform, moment: datetime) -> date:
    return moment.astimezone(platform.settings.zone).date()


async def _recipient(ctx: Ctx, appointment: Appointment) -> str:
    """Who the invoice is to: the guardian who booked for her child, else the patient."""
    person_id = (
        appointment.booked_by_id if appointment.booked_by_role == access.GUARDIAN else appointment.patient_id
    )
    person = await ctx.session.get(Person, person_id)
    assert person is not None
    return f"{person.given_name} {person.family_name}".strip()


async def issue_invoice(ctx: Ctx, appointment: Appointment, issued_on: date) -> Invoice:
    """Issue the invoice (the appointment locked and COMPLETED): at the provider, idempotent by the
    appointment's id; its PDF sealed into storage; the appointment INVOICED."""
    settings = ctx.platform.settings
    currency = appointment.price_currency
    fee = settings.invoice_fee_minor
    lines = [InvoiceLine(CONSULTATION_LINE, Money(appointment.price_amount, currency))]
    if fee:
        lines.append(InvoiceLine(FEE_LINE, Money(fee, currency)))
    request = InvoiceRequest(
        reference=str(appointment.id),
        number=invoice_number(appointment),
        recipient_name=await _recipient(ctx, appointment),
        lines=tuple(lines),
        issued_on=issued_on,
        due_on=issued_on + timedelta(days=settings.invoice_due_days),
    )
    provider = ctx.platform.providers.get(INVOICING)
    issued = await provider.issue(request)
    invoice = Invoice(
        id=uuid.uuid4(),
        appointment_id=appointment.id,
        number=issued.number,
        provider=provider.name,
        provider_id=issued.provider_id,
        kid=issued.kid,
        amount=issued.total.amount,
        fee_amount=fee,
        currency=issued.total.currency,
        issued_on=issued_on,
        due_on=issued.due_on,
        status=issued.status.value,
        created_at=ctx.now,
    )
    if issued.document is not None:
        storage = ctx.platform.providers.get(STORAGE)
        sealed = content.seal_document(ctx.platform.keyring, appointment, INVOICE_DOCUMENT, issued.document)
        stored = await storage.put(
            f"invoices/{appointment.id}.pdf.sealed", sealed, "application/octet-stream"
        )
        invoice.document_key = stored.key
    ctx.session.add(invoice)
    appointment.status = states.next_status(appointment.status, AppointmentEvent.INVOICE)
    appointment.invoiced_at = ctx.now
    await ctx.session.flush()
    await booking.log_appointment(ctx, appointment, "invoice")
    await appointment_events.emit(ctx, EventType.APPOINTMENT_INVOICED, appointment)
    log.info("appointment.invoiced", appointment_id=str(appointment.id), invoice_id=str(invoice.id))
    return invoice


# --- paying ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentStart:
    """What starting (or resuming) a payment answers."""

    appointment: Appointment
    payment_status: PaymentStatus | None = None
    """The payment's status as its provider reported it; None when nothing was paid here (already paid)."""
    action: PaymentAction | None = None
    """While the payment waits for the payer: how she approves it (read from the provider, never stored)."""
    provider: str | None = None
    error: PaymentDeclined | None = None
    """The payer's card or app refused it: recorded, and a new attempt may follow."""


async def start_payment(
    ctx: Ctx, token: str, payment_method: str | None, return_url: str | None
) -> PaymentStart:
    """Pay from the link in her text (no login needed: the token is for this appointment and paying)."""
    appointment = await links.read_token(ctx, token, LinkPurpose.PAYMENT, for_update=True)
    return await _start(ctx, appointment, payment_method, return_url)


async def start_payment_in_app(
    ctx: Ctx, appointment_id: uuid.UUID, payment_method: str | None, return_url: str | None
) -> PaymentStart:
    """Pay in the app, as the patient (or the guardian)."""
    appointment = await access.load(
        ctx, appointment_id, access.as_patient(ctx.actor, ctx.today), for_update=True
    )
    return await _start(ctx, appointment, payment_method, return_url)


async def _start(
    ctx: Ctx, appointment: Appointment, payment_method: str | None, return_url: str | None
) -> PaymentStart:
    if appointment.status is AppointmentStatus.PAID:
        return PaymentStart(appointment)
    if appointment.status not in states.UNPAID:
        raise ValidationError(NOT_PAYABLE, field="appointmentId")
    await booking.log_appointment(ctx, appointment, "pay_start")
    waiting = await ctx.session.scalar(
        select(AppointmentPayment)
        .where(AppointmentPayment.appointment_id == appointment.id, AppointmentPayment.status.in_(OPEN))
        .order_by(AppointmentPayment.created_at.desc())
        .limit(1)
    )
    if waiting is not None:  # one payment at a time: resume it (a retry, or back from the provider's page)
        payment = await refresh(ctx, appointment, waiting)
        if waiting.status not in FAILED:
            return _started(appointment, payment)
    due = amount_due(appointment, await invoice_of(ctx.session, appointment.id))
    failed_before = await ctx.session.scalar(
        select(func.count(AppointmentPayment.id)).where(
            AppointmentPayment.appointment_id == appointment.id,
            AppointmentPayment.amount == due.amount,
            AppointmentPayment.status.in_(FAILED),
        )
    )
    # Stable for a retry of this attempt (a lost answer reserves nothing twice); a new one after a decline.
    key = f"appointment:{appointment.id}:{due.amount}:{failed_before or 0}"
    provider = ctx.platform.providers.get(PAYMENT)
    request = ReserveRequest(
        amount=due,
        reference=appointment.number,
        idempotency_key=f"reserve:{key}",
        return_url=return_url,
        payment_method=payment_method,
        description=DESCRIPTION,
    )
    try:
        payment = await provider.reserve(request)
    except PaymentDeclined as exc:
        payment_id = getattr(exc, "payment_id", None) or f"declined:{key}"
        ctx.session.add(_row(appointment, provider.name, payment_id, key, due, PaymentStatus.DECLINED.value))
        log.info("appointment.payment_declined", appointment_id=str(appointment.id), code=str(exc.code))
        return PaymentStart(appointment, PaymentStatus.DECLINED, provider=provider.name, error=exc)
    row = _row(appointment, provider.name, payment.payment_id, key, due, payment.status.value)
    ctx.session.add(row)
    await ctx.session.flush()
    payment = await _act(ctx, appointment, row, provider, payment)
    if row.status in FAILED:
        return PaymentStart(
            appointment,
            PaymentStatus(row.status),
            provider=provider.name,
            error=PaymentDeclined(DECLINED_MESSAGE),
        )
    return _started(appointment, payment)


def _row(
    appointment: Appointment, provider: str, payment_id: str, key: str, due: Money, status: str
) -> AppointmentPayment:
    return AppointmentPayment(
        id=uuid.uuid4(),
        appointment_id=appointment.id,
        provider=provider,
        provider_payment_id=payment_id,
        idempotency_key=key,
        amount=due.amount,
        currency=due.currency,
        status=status,
    )


def _started(appointment: Appointment, payment: Payment) -> PaymentStart:
    return PaymentStart(appointment, payment.status, action=payment.next_action(), provider=payment.provider)


def _store(row: AppointmentPayment, payment: Payment) -> None:
    row.status = payment.status.value
    row.action_url = payment.action_url if payment.status is PaymentStatus.PENDING else None
    if payment.status is PaymentStatus.CAPTURED and row.captured_at is None:
        row.captured_at = utcnow()
    row.updated_at = utcnow()


async def refresh(ctx: Ctx, appointment: Appointment, row: AppointmentPayment) -> Payment:
    """Re-fetch the payment from its provider (the source of truth) and act on it (the appointment
    locked)."""
    provider = ctx.platform.providers.get(PAYMENT, row.provider)
    payment = await provider.get(row.provider_payment_id)
    return await _act(ctx, appointment, row, provider, payment)


async def _act(
    ctx: Ctx, appointment: Appointment, row: AppointmentPayment, provider: PaymentProvider, payment: Payment
) -> Payment:
    """Capture an authorization while the appointment is unpaid (release it if it was paid another way
    meanwhile); settle the appointment once the money is captured. Safe to repeat."""
    _store(row, payment)
    held = payment.status in (PaymentStatus.AUTHORIZED, PaymentStatus.PARTIALLY_CAPTURED)
    if held and appointment.status in states.UNPAID:
        left = payment.amounts.authorized - payment.amounts.captured - payment.amounts.released
        try:
            payment = await provider.capture(
                row.provider_payment_id,
                Money(left, payment.amount.currency),
                idempotency_key=f"capture:{row.provider}:{row.provider_payment_id}",
            )
        except PaymentExpired:
            payment = await provider.get(row.provider_payment_id)
        _store(row, payment)
    elif held:
        payment = await provider.release(
            row.provider_payment_id, idempotency_key=f"release:{row.provider}:{row.provider_payment_id}"
        )
        _store(row, payment)
        log.info("appointment.payment_released", appointment_id=str(appointment.id), reason="already_paid")
    if row.status == PaymentStatus.CAPTURED.value and appointment.status in states.UNPAID:
        await _settle(ctx, appointment)
    return payment


async def _settle(ctx: Ctx, appointment: Appointment) -> None:
    """Paid: the appointment (PAID, retention starts) and its invoice, if one was issued."""
    invoice = await invoice_of(ctx.session, appointment.id)
    await booking.settle(ctx, appointment)
    if invoice is not None and invoice.status != SETTLED:
        provider = ctx.platform.providers.get(INVOICING, invoice.provider)
        settled = await provider.settle(invoice.provider_id, ctx.now)
        invoice.status = settled.status.value
        invoice.settled_at = settled.settled_at or ctx.now
    await booking.log_appointment(ctx, appointment, "pay")
    log.info("appointment.paid", appointment_id=str(appointment.id), invoiced=invoice is not None)


async def mark_invoice_paid(ctx: Ctx, appointment_id: uuid.UUID) -> Invoice:
    """An operator: the invoice was paid by bank transfer with its KID. Settles it and the appointment;
    again for a settled one changes nothing."""
    require_person(ctx.actor)
    if not ctx.actor.is_operator:
        raise Forbidden("Bare operatører kan registrere innbetalinger.", field="appointmentId")
    appointment = await access.load(ctx, appointment_id, access.as_staff(ctx.actor), for_update=True)
    invoice = await invoice_of(ctx.session, appointment.id)
    if invoice is None:
        raise ValidationError("Timen er ikke fakturert.", field="appointmentId")
    if appointment.status is AppointmentStatus.INVOICED:
        await _settle(ctx, appointment)
    elif appointment.status is not AppointmentStatus.PAID:
        states.next_status(appointment.status, AppointmentEvent.PAY)  # refused, naming the state
    return invoice


# --- webhooks and reconciliation ---------------------------------------------------------------------------


async def refresh_webhook(ctx: JobContext, provider: str, payment_id: str) -> bool:
    """A verified webhook named a payment: if it is an appointment's, re-fetch it and act (registered with
    ``submission``'s refresh job, which knows the cases' payments only)."""
    appointment_id = await ctx.session.scalar(
        select(AppointmentPayment.appointment_id).where(
            AppointmentPayment.provider == provider, AppointmentPayment.provider_payment_id == payment_id
        )
    )
    if appointment_id is None:
        return False
    appointment = await ctx.session.get(
        Appointment, appointment_id, with_for_update=True, populate_existing=True
    )
    row = await ctx.session.scalar(
        select(AppointmentPayment)
        .where(AppointmentPayment.provider == provider, AppointmentPayment.provider_payment_id == payment_id)
        .execution_options(populate_existing=True)
    )
    assert appointment is not None and row is not None
    await refresh(_system(ctx), appointment, row)
    return True


refresh_other_payments(refresh_webhook)


RECONCILE_JOB = "appointments.payments_reconcile"


async def reconcile(session: AsyncSession, platform: Platform, now: datetime, batch: int = 100) -> int:
    """The periodic safety net for lost webhooks: open payments not heard of for a while are re-fetched
    (an authorization is captured and settles); one the payer never approved within
    ``payment_abandon_minutes`` is cancelled, so that a new attempt can start. Returns how many it
    re-fetched."""
    settings = platform.settings
    ctx = Ctx(session=session, platform=platform, actor=SYSTEM, now=now)
    stale = now - timedelta(minutes=settings.payment_reconcile_minutes)
    abandon_before = now - timedelta(minutes=settings.payment_abandon_minutes)
    candidates = (
        await session.execute(
            select(AppointmentPayment.id, AppointmentPayment.appointment_id)
            .where(AppointmentPayment.status.in_(OPEN), AppointmentPayment.updated_at < stale)
            .order_by(AppointmentPayment.updated_at)
            .limit(batch)
        )
    ).all()
    refreshed = 0
    for payment_row_id, appointment_id in candidates:
        # The appointment first (the order every path locks in); one another process holds is skipped.
        appointment = await session.scalar(
            select(Appointment)
            .where(Appointment.id == appointment_id)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        row = await session.get(AppointmentPayment, payment_row_id, populate_existing=True)
        if appointment is None or row is None or row.status not in OPEN:
            continue
        provider = platform.providers.get(PAYMENT, row.provider)
        try:
            await refresh(ctx, appointment, row)
            if row.status == PaymentStatus.PENDING.value and row.created_at < abandon_before:
                payment = await provider.release(
                    row.provider_payment_id,
                    idempotency_key=f"release:{row.provider}:{row.provider_payment_id}",
                )
                _store(row, payment)
        except ProviderError as exc:
            if not getattr(exc, "retryable", False):
                raise
            row.updated_at = now  # try again next round, after the others
            continue
        refreshed += 1
    return refreshed


async def reconcile_payments(platform: Platform) -> int:
    async with platform.db.transaction() as session:
        return await reconcile(session, platform, utcnow())


# --- what the patient side and operators read --------------------------------------------------------------


@dataclass(frozen=True)
class PaymentState:
    appointment: Appointment
    amount_due: Money | None
    """What is left to pay; None once paid (or when there is nothing to pay)."""
    invoice: Invoice | None


async def payment_state(
    ctx: Ctx, appointment_id: uuid.UUID | None = None, token: str | None = None
) -> PaymentState:
    """Where the appointment's payment stands: for whoever may see it, or the holder of its payment link."""
    if token is not None:
        appointment = await links.read_token(ctx, token, LinkPurpose.PAYMENT)
        await booking.log_appointment(ctx, appointment, "read_payment")
    elif appointment_id is not None:
        appointment = await booking.read(ctx, appointment_id)
    else:
        raise ValidationError("Oppgi timen eller lenken.", field="appointmentId")
    invoice = await invoice_of(ctx.session, appointment.id)
    due = amount_due(appointment, invoice) if appointment.status in states.UNPAID else None
    return PaymentState(appointment, due, invoice)


async def readable_invoice(ctx: Ctx, appointment_id: uuid.UUID) -> tuple[Invoice | None, Appointment]:
    """The appointment's invoice for its patient side and operators (clinicians see no invoices); the
    read is logged."""
    appointment = await access.load(ctx, appointment_id, access.readable(ctx.actor, ctx.today))
    patient_side = await access.is_patient_side(ctx, appointment)
    if not patient_side and not ctx.actor.is_operator:
        raise NotFound(access.NOT_FOUND_MESSAGE, field="appointmentId")
    invoice = await invoice_of(ctx.session, appointment.id)
    if invoice is not None:
        await booking.log_appointment(
            ctx, appointment, "read_invoice", None if patient_side else "administration"
        )
    return invoice, appointment


def _signature(platform: Platform, invoice_id: str, expires: int, reader: str, role: str) -> str:
    message = f"{invoice_id}:{expires}:{reader}:{role}".encode()
    return hmac.new(platform.derive_key(DOCUMENT_URL_KEY), message, hashlib.sha256).hexdigest()


def document_url(ctx: Ctx, invoice: Invoice) -> str:
    """A short-lived signed URL of the invoice's PDF for the reader (who was allowed already); the reader
    is bound into it, so that each download is logged as hers."""
    expires = int(time.time() + DOCUMENT_URL_LIFETIME.total_seconds())
    reader, role = str(ctx.actor.person_id), ctx.actor.role
    signature = _signature(ctx.platform, str(invoice.id), expires, reader, role)
    base = ctx.platform.settings.public_url.rstrip("/")
    return f"{base}/invoices/{invoice.id}?expires={expires}&reader={reader}&role={role}&signature={signature}"


async def open_signed(
    session: AsyncSession, platform: Platform, invoice_id: str, query: dict[str, Any]
) -> bytes:
    """The plain PDF behind a signed URL, the download logged as its reader's. Any failure (bad signature,
    expired, the appointment's data deleted) is NotFound."""
    gone = NotFound(NOT_FOUND_MESSAGE)
    expires, reader, role = (
        str(query.get("expires", "")),
        str(query.get("reader", "")),
        str(query.get("role", "")),
    )
    signature = str(query.get("signature", ""))
    if not expires.isdigit() or int(expires) < time.time():
        raise gone
    if not hmac.compare_digest(_signature(platform, invoice_id, int(expires), reader, role), signature):
        raise gone
    try:
        invoice = await session.get(Invoice, uuid.UUID(invoice_id))
        reader_id = uuid.UUID(reader)
    except ValueError:
        raise gone from None
    if invoice is None:
        raise gone
    appointment = await session.get(Appointment, invoice.appointment_id)
    if appointment is None or content.appointment_deleted(appointment):
        raise gone
    if invoice.document_key is not None:
        sealed = await platform.providers.get(STORAGE).open(invoice.document_key)
        data = content.open_document(platform.keyring, appointment, INVOICE_DOCUMENT, sealed)
    else:  # a service that keeps the document itself
        issued = await platform.providers.get(INVOICING, invoice.provider).get(invoice.provider_id)
        if issued.document is None:
            raise gone
        data = issued.document
    await audit.record(
        session,
        actor_id=reader_id,
        actor_role=role,
        person_id=appointment.patient_id,
        object_type="appointment",
        object_id=str(appointment.id),
        action="download_invoice",
    )
    return data
