"""Submitting a case: the fee is reserved, and the case is submitted once the money is held.

Submitting is idempotent on the client's key: a retry with the same key returns the submitted case and
never reserves twice (the provider gets a key derived from it, so even a retry after a crash between the
provider's answer and our commit finds the same authorization). A declined card is a typed error and the
case stays a draft. When the payer must approve first (3-D Secure, the Vipps app), the case waits as a
draft with a pending payment until the approval is seen: ``confirm_payment``, a provider's webhook, or the
periodic reconciliation, which also makes sure no capture or release is lost.

While it waits, submitting (again) and confirming answer how the payer approves (``PaymentStep.action``: a
page to go to, or a client secret for the provider's script in her browser). That answer is read from the
provider each time and never stored; only the case's patient (or the guardian submitting for her child)
gets it, since both calls look the case up as the patient.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.consultation.access import as_patient, load_case, require_unrestricted
from legetime.core.consultation.cases import check_submittable, close_answered_cases, mark_submitted
from legetime.core.consultation.payments import (
    CAPTURE_JOB,
    RELEASE_JOB,
    record_payment,
    release_later,
    reservation_for,
)
from legetime.core.identity.actors import SYSTEM
from legetime.core.identity.ctx import Ctx
from legetime.core.platform import idempotency
from legetime.core.platform.db.models import Case, CaseStatus, OutboxJob, OutboxStatus, PaymentReservation
from legetime.core.platform.errors import PaymentDeclined, ProviderError, ValidationError
from legetime.core.platform.jobs.outbox import enqueue
from legetime.core.platform.jobs.types import JobContext
from legetime.core.platform.money import Money
from legetime.core.platform.providers import PAYMENT
from legetime.core.platform.providers.payment import Payment, PaymentAction, PaymentStatus, ReserveRequest
from legetime.core.protection import audit

if TYPE_CHECKING:
    from legetime.core.platform.runtime import Platform
from legetime.core.platform.webhooks import WebhookOutcome

log = structlog.get_logger(__name__)

REFRESH_JOB = "payments.refresh"


DECLINED = "Betalingen ble ikke godkjent. Prøv igjen eller velg en annen betalingsmåte."


@dataclass(frozen=True)
class PaymentStep:
    """A submit or a confirmation as the patient's client sees it."""

    case: Case
    action: PaymentAction | None = None
    """While the payment waits for the payer: how she approves it (read from the provider, never stored)."""
    provider: str | None = None
    """The payment provider of ``action`` (whose script a client secret is for)."""
    error: PaymentDeclined | None = None
    """The payer's approval failed (declined after 3-D Secure …): the case stays a draft, and the declined
    payment is recorded."""


FAILED = (PaymentStatus.DECLINED.value, PaymentStatus.EXPIRED.value)


def _step(case: Case, payment: Payment) -> PaymentStep:
    if case.status is not CaseStatus.DRAFT:
        return PaymentStep(case)
    return PaymentStep(case, action=payment.next_action(), provider=payment.provider)


async def submit_case(
    ctx: Ctx,
    case_id: uuid.UUID,
    *,
    idempotency_key: str,
    provider: str | None = None,
    payment_method: str | None = None,
    return_url: str | None = None,
) -> PaymentStep:
    """Reserve the fee and submit the case. When the payer must approve first (3-D Secure, the Vipps
    app, a card form of the provider's own), the case stays a draft with a pending payment, and the step
    says how she approves; it is submitted as soon as the approval is seen (``confirm_payment``, a
    webhook, or reconciliation)."""
    idempotency.check_key(idempotency_key)
    case = await load_case(ctx, case_id, as_patient(ctx.actor, ctx.today), for_update=True)
    key = f"{case.id}:{idempotency_key}"
    existing = await ctx.session.scalar(
        select(PaymentReservation).where(PaymentReservation.idempotency_key == key)
    )
    if existing is None and case.status is CaseStatus.DRAFT:
        latest = await reservation_for(ctx, case.id)
        if latest is not None and latest.status == PaymentStatus.PENDING.value:
            existing = latest  # one payment waits for approval: never start a second one
    if existing is not None:
        if case.status is not CaseStatus.DRAFT:
            return PaymentStep(case)  # a retry of a submit that went through
        payment = await refresh(ctx, case, existing)  # or of one waiting for the payer
        if existing.status not in FAILED:
            return _step(case, payment)
        if existing.idempotency_key == key:
            return PaymentStep(case, error=PaymentDeclined(DECLINED))
        # the payment that waited was declined meanwhile: this submit starts a new one
    await check_submittable(ctx, case)
    await require_unrestricted(ctx, case.requester_id)
    try:
        payments = ctx.platform.providers.get(PAYMENT, provider)
    except LookupError:
        raise ValidationError("Ukjent betalingsmåte.", field="paymentProvider") from None
    payment = await payments.reserve(
        ReserveRequest(
            amount=Money(case.price_amount, case.price_currency),
            reference=case.number,
            idempotency_key=f"reserve:{key}",
            return_url=return_url,
            payment_method=payment_method,
        )
    )
    reservation = PaymentReservation(
        case_id=case.id,
        provider=payments.name,
        provider_payment_id=payment.payment_id,
        idempotency_key=key,
        amount=case.price_amount,
        currency=case.price_currency,
        status=payment.status.value,
    )
    ctx.session.add(reservation)
    await record_payment(ctx, reservation, payment, case=case, new=True)
    await ctx.session.flush()
    await _settle(ctx, case, reservation)
    return _step(case, payment)


async def confirm_payment(ctx: Ctx, case_id: uuid.UUID) -> PaymentStep:
    """The payer is back from approving (3-D Secure, the Vipps app): ask the provider, submit if approved.

    Still waiting: the step says how she approves. Declined: the step carries the error, and the declined
    payment is recorded (the case stays a draft; a new submit starts a new payment)."""
    case = await load_case(ctx, case_id, as_patient(ctx.actor, ctx.today), for_update=True)
    reservation = await reservation_for(ctx, case.id)
    if reservation is None:
        raise ValidationError("Saken har ingen betaling å bekrefte.", field="caseId")
    payment = await refresh(ctx, case, reservation)
    if reservation.status in FAILED:
        return PaymentStep(case, error=PaymentDeclined(DECLINED))
    return _step(case, payment)


async def refresh(ctx: Ctx, case: Case, reservation: PaymentReservation) -> Payment:
    """Re-fetch the payment from the provider (the source of truth) and act on what changed."""
    provider = ctx.platform.providers.get(PAYMENT, reservation.provider)
    payment = await provider.get(reservation.provider_payment_id)
    await record_payment(ctx, reservation, payment, case=case)
    await _settle(ctx, case, reservation)
    return payment


async def _settle(ctx: Ctx, case: Case, reservation: PaymentReservation) -> None:
    """An authorized payment submits its draft case; a case cancelled meanwhile gets its hold released."""
    if reservation.status != PaymentStatus.AUTHORIZED.value:
        return
    if case.status is CaseStatus.DRAFT:
        await mark_submitted(ctx, case)
        await audit.log(
            ctx,
            person_id=case.subject_id,
            object_type="case",
            object_id=str(case.id),
            action="submit",
        )
    elif case.status is CaseStatus.CANCELLED:
        await release_later(ctx, case)


# --- webhooks and reconciliation ---------------------------------------------------------------------

OtherPayments = Callable[[JobContext, str, str], Awaitable[bool]]
"""Refreshes a payment that is not a case's (provider, payment id); True when it was one of its own."""
_OTHER_PAYMENTS: list[OtherPayments] = []


def refresh_other_payments(refresh: OtherPayments) -> None:
    """Let a layer above (appointments) take the webhooks of its own payments: the consultation never
    imports it, so it registers here."""
    if refresh not in _OTHER_PAYMENTS:
        _OTHER_PAYMENTS.append(refresh)


async def refresh_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    """A verified webhook said a payment changed: re-fetch it (the webhook's body is never trusted)."""
    reservation = await ctx.session.scalar(
        select(PaymentReservation)
        .where(
            PaymentReservation.provider == payload["provider"],
            PaymentReservation.provider_payment_id == payload["payment_id"],
        )
        .with_for_update()
    )
    if reservation is None:
        for other in _OTHER_PAYMENTS:
            if await other(ctx, payload["provider"], payload["payment_id"]):
                return
        return  # not ours (or not committed yet: the provider retries webhooks, reconciliation catches it)
    case = await ctx.session.get(Case, reservation.case_id, with_for_update=True)
    assert case is not None
    await refresh(Ctx(session=ctx.session, platform=ctx.platform, actor=SYSTEM), case, reservation)


OPEN_PAYMENT = (
    PaymentStatus.PENDING.value,
    PaymentStatus.AUTHORIZED.value,
    PaymentStatus.PARTIALLY_CAPTURED.value,
)


AGAIN = {"capture": CAPTURE_JOB, "release": RELEASE_JOB}


async def _enqueue_again(session: AsyncSession, action: str, case_id: uuid.UUID, hour: str) -> int:
    """Enqueue a capture or release once more, unless one is still on its way; at most once an hour."""
    prefix = f"{action}:{case_id}"
    waiting = await session.scalar(
        select(OutboxJob.id).where(
            OutboxJob.dedupe_key.startswith(prefix),
            OutboxJob.status.in_((OutboxStatus.PENDING, OutboxStatus.RELAYED)),
        )
    )
    key = f"{prefix}:{hour}"
    if waiting is not None or await session.scalar(select(OutboxJob.id).where(OutboxJob.dedupe_key == key)):
        return 0
    await enqueue(session, AGAIN[action], {"case_id": str(case_id)}, dedupe_key=key)
    return 1


@dataclass
class Reconciliation:
    refreshed: int = 0
    submitted: int = 0
    abandoned: int = 0
    captures: int = 0
    releases: int = 0
    closed_before_expiry: int = 0


async def reconcile(
    session: AsyncSession, platform: Platform, now: datetime, batch: int = 100
) -> Reconciliation:
    """The periodic safety net, so that a lost webhook or a failed job loses nothing:

    * open payments not heard of for a while are re-fetched (a draft whose payment is now authorized is
      submitted);
    * payments the payer never approved within ``payment_abandon_minutes`` are cancelled;
    * closed cases still holding an authorization are captured, cancelled ones released;
    * answered cases whose hold lapses within ``payment_expiry_margin_hours`` are closed (and charged) now.
    """
    settings = platform.settings
    result = Reconciliation()
    ctx = Ctx(session=session, platform=platform, actor=SYSTEM, now=now)
    stale = now - timedelta(minutes=settings.payment_reconcile_minutes)
    rows = (
        await session.execute(
            select(PaymentReservation, Case)
            .join(Case, Case.id == PaymentReservation.case_id)
            .where(PaymentReservation.status.in_(OPEN_PAYMENT), PaymentReservation.updated_at < stale)
            .order_by(PaymentReservation.updated_at)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
    ).all()
    abandon_before = now - timedelta(minutes=settings.payment_abandon_minutes)
    hour = now.strftime("%Y%m%d%H")  # a failed job may be enqueued again, once an hour
    for reservation, case in rows:
        was_draft = case.status is CaseStatus.DRAFT
        try:
            await refresh(ctx, case, reservation)
        except ProviderError as exc:
            if getattr(exc, "retryable", False):
                reservation.updated_at = now  # try again next round, after the others
                continue
            raise
        result.refreshed += 1
        result.submitted += int(was_draft and case.status is CaseStatus.SUBMITTED)
        status = reservation.status
        if status == PaymentStatus.PENDING.value and reservation.created_at < abandon_before:
            result.abandoned += await _enqueue_again(session, "release", case.id, hour)
        elif status in (PaymentStatus.AUTHORIZED.value, PaymentStatus.PARTIALLY_CAPTURED.value):
            if case.status is CaseStatus.CLOSED:
                result.captures += await _enqueue_again(session, "capture", case.id, hour)
            elif case.status is CaseStatus.CANCELLED:
                result.releases += await _enqueue_again(session, "release", case.id, hour)
    margin = now + timedelta(hours=settings.payment_expiry_margin_hours)
    lapsing = (
        await session.scalars(
            select(Case.id)
            .join(PaymentReservation, PaymentReservation.case_id == Case.id)
            .where(
                Case.status == CaseStatus.ANSWERED,
                PaymentReservation.status == PaymentStatus.AUTHORIZED.value,
                PaymentReservation.expires_at < margin,
            )
            .limit(batch)
        )
    ).all()
    if lapsing:
        result.closed_before_expiry = await close_answered_cases(
            session, platform, now, case_ids=list(lapsing)
        )
    return result


# --- a provider's webhook ----------------------------------------------------------------------------


async def receive_payment_webhook(
    platform: Platform, provider_name: str, headers: Mapping[str, str], body: bytes, url: str
) -> WebhookOutcome:
    """A provider says a payment changed. Verified by the provider plugin (signature, freshness); the body
    is never trusted beyond the payment id: a job re-fetches the payment."""
    try:
        provider = platform.providers.get(PAYMENT, provider_name)
    except LookupError:
        return WebhookOutcome.UNKNOWN_PROVIDER
    try:
        event = await provider.parse_webhook(headers, body, url)
    except ProviderError as exc:
        log.warning("payments.webhook_rejected", provider=provider_name, code=str(exc.code))
        return WebhookOutcome.REJECTED
    # A delivery of the same event again (a provider's retry, a replay by anyone) enqueues nothing more:
    # by the provider's own event id, else by the body (never the URL: a query parameter would defeat it).
    identity = event.event_id.encode() if event.event_id else body
    delivery = hashlib.sha256(identity).hexdigest()
    async with platform.db.transaction() as session:
        await enqueue(
            session,
            REFRESH_JOB,
            {"provider": provider_name, "payment_id": event.payment_id},
            dedupe_key=f"webhook:{provider_name}:{delivery}",
        )
    return WebhookOutcome.ACCEPTED
