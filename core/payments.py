"""The fee: reserved when a case is submitted, captured when it closes, released when it is cancelled.

Submitting is idempotent on the client's key: a retry with the same key returns the submitted case and
never reserves twice (the provider gets a key derived from it, so even a retry after a crash between the
provider's answer and our commit finds the same authorization). A declined card is a typed error and the
case stays a draft. Capture and release run as outbox jobs, keyed by the reservation, so they happen once.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from core import audit
from core.access import as_patient, load_case
from core.cases import check_submittable, mark_submitted
from core.ctx import Ctx
from core.db.base import utcnow
from core.db.models import Case, PaymentReservation
from core.errors import PaymentExpired, ProviderError, ValidationError
from core.jobs.outbox import enqueue
from core.jobs.types import JobContext
from core.money import Money
from core.providers.payment import Payment, PaymentStatus, ReserveRequest


def _store(reservation: PaymentReservation, payment: Payment) -> None:
    reservation.authorized_amount = payment.amounts.authorized
    reservation.captured_amount = payment.amounts.captured
    reservation.released_amount = payment.amounts.released
    reservation.refunded_amount = payment.amounts.refunded
    reservation.status = payment.status.value
    reservation.expires_at = payment.expires_at
    reservation.updated_at = utcnow()


async def submit_case(
    ctx: Ctx,
    case_id: uuid.UUID,
    *,
    idempotency_key: str,
    provider: str | None = None,
    payment_method: str | None = None,
    return_url: str | None = None,
) -> Case:
    if not idempotency_key or len(idempotency_key) > 100:
        raise ValidationError("Oppgi en idempotensnøkkel (høyst 100 tegn).", field="idempotencyKey")
    case = await load_case(ctx, case_id, as_patient(ctx.actor, ctx.today), for_update=True)
    key = f"{case.id}:{idempotency_key}"
    existing = await ctx.session.scalar(
        select(PaymentReservation).where(PaymentReservation.idempotency_key == key)
    )
    if existing is not None:
        return case  # a retry of a submit that went through
    await check_submittable(ctx, case)
    from core.privacy import require_unrestricted

    await require_unrestricted(ctx, case.requester_id)
    try:
        payments = ctx.platform.providers.payment(provider)
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
    _store(reservation, payment)
    ctx.session.add(reservation)
    mark_submitted(ctx, case)
    await ctx.session.flush()
    await audit.log(
        ctx,
        person_id=case.subject_id,
        object_type="case",
        object_id=str(case.id),
        action="submit",
    )
    return case


async def reservation_for(ctx: Ctx | JobContext, case_id: uuid.UUID) -> PaymentReservation | None:
    return await ctx.session.scalar(
        select(PaymentReservation)
        .where(PaymentReservation.case_id == case_id)
        .order_by(PaymentReservation.created_at.desc())
        .limit(1)
    )


async def capture_later(ctx: Ctx, case: Case) -> None:
    await enqueue(ctx.session, "payments.capture", {"case_id": str(case.id)}, dedupe_key=f"capture:{case.id}")


async def release_later(ctx: Ctx, case: Case) -> None:
    if await reservation_for(ctx, case.id) is not None:
        await enqueue(
            ctx.session, "payments.release", {"case_id": str(case.id)}, dedupe_key=f"release:{case.id}"
        )


async def capture_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    reservation = await reservation_for(ctx, uuid.UUID(payload["case_id"]))
    if reservation is None or reservation.status == PaymentStatus.CAPTURED.value:
        return
    provider = ctx.platform.providers.payment(reservation.provider)
    try:
        payment = await provider.capture(
            reservation.provider_payment_id,
            Money(reservation.amount, reservation.currency),
            idempotency_key=f"capture:{reservation.id}",
        )
    except PaymentExpired:
        payment = await provider.get(reservation.provider_payment_id)  # record it; nothing to retry
    _store(reservation, payment)


async def release_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    reservation = await reservation_for(ctx, uuid.UUID(payload["case_id"]))
    if reservation is None or reservation.status in (
        PaymentStatus.RELEASED.value,
        PaymentStatus.DECLINED.value,
    ):
        return
    provider = ctx.platform.providers.payment(reservation.provider)
    try:
        payment = await provider.release(
            reservation.provider_payment_id, idempotency_key=f"release:{reservation.id}"
        )
    except (PaymentExpired, ProviderError) as exc:
        if getattr(exc, "retryable", False):
            raise
        payment = await provider.get(reservation.provider_payment_id)
    _store(reservation, payment)
