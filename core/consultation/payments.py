"""The fee once reserved: captured when the case closes, released when it is cancelled.

Capture and release run as outbox jobs, keyed by the reservation, so they happen once. Reserving the fee
is part of submitting a case (``submission``).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from legetime.core.consultation import case_events
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import Case, PaymentReservation
from legetime.core.platform.errors import PaymentExpired, ProviderError
from legetime.core.platform.jobs.outbox import enqueue
from legetime.core.platform.jobs.types import JobContext
from legetime.core.platform.money import Money
from legetime.core.platform.providers import PAYMENT
from legetime.core.platform.providers.payment import Payment, PaymentStatus

CAPTURE_JOB = "payments.capture"
RELEASE_JOB = "payments.release"


async def record_payment(
    ctx: Ctx | JobContext,
    reservation: PaymentReservation,
    payment: Payment,
    *,
    case: Case | None = None,
    new: bool = False,
) -> None:
    """Store what the provider says of the payment, and a domain event when its status changed (``new``:
    the reservation was just made, so any status is a change)."""
    before = None if new else reservation.status
    store_payment(reservation, payment)
    event = case_events.FOR_PAYMENT_STATUS.get(payment.status)
    if reservation.status != before and event is not None:
        await case_events.emit(
            ctx,
            event,
            case if case is not None else reservation.case_id,
            payment_status=reservation.status,
            provider=reservation.provider,
        )


def store_payment(reservation: PaymentReservation, payment: Payment) -> None:
    reservation.authorized_amount = payment.amounts.authorized
    reservation.captured_amount = payment.amounts.captured
    reservation.released_amount = payment.amounts.released
    reservation.refunded_amount = payment.amounts.refunded
    reservation.status = payment.status.value
    reservation.expires_at = payment.expires_at
    reservation.action_url = payment.action_url if payment.status is PaymentStatus.PENDING else None
    reservation.updated_at = utcnow()


async def reservation_for(ctx: Ctx | JobContext, case_id: uuid.UUID) -> PaymentReservation | None:
    return await ctx.session.scalar(
        select(PaymentReservation)
        .where(PaymentReservation.case_id == case_id)
        .order_by(PaymentReservation.created_at.desc())
        .limit(1)
    )


async def capture_later(ctx: Ctx, case: Case) -> None:
    await enqueue(ctx.session, CAPTURE_JOB, {"case_id": str(case.id)}, dedupe_key=f"capture:{case.id}")


async def release_later(ctx: Ctx, case: Case) -> None:
    if await reservation_for(ctx, case.id) is not None:
        await enqueue(ctx.session, RELEASE_JOB, {"case_id": str(case.id)}, dedupe_key=f"release:{case.id}")


async def capture_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    reservation = await reservation_for(ctx, uuid.UUID(payload["case_id"]))
    if reservation is None or reservation.status == PaymentStatus.CAPTURED.value:
        return
    provider = ctx.platform.providers.get(PAYMENT, reservation.provider)
    try:
        payment = await provider.capture(
            reservation.provider_payment_id,
            Money(reservation.amount, reservation.currency),
            idempotency_key=f"capture:{reservation.id}",
        )
    except PaymentExpired:
        payment = await provider.get(reservation.provider_payment_id)  # record it; nothing to retry
    await record_payment(ctx, reservation, payment)


async def release_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    reservation = await reservation_for(ctx, uuid.UUID(payload["case_id"]))
    if reservation is None or reservation.status in (
        PaymentStatus.RELEASED.value,
        PaymentStatus.DECLINED.value,
    ):
        return
    provider = ctx.platform.providers.get(PAYMENT, reservation.provider)
    try:
        payment = await provider.release(
            reservation.provider_payment_id, idempotency_key=f"release:{reservation.id}"
        )
    except (PaymentExpired, ProviderError) as exc:
        if getattr(exc, "retryable", False):
            raise
        payment = await provider.get(reservation.provider_payment_id)
    await record_payment(ctx, reservation, payment)
