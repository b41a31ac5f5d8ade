"""The domain events of consultations (``legetime.core.platform.events``), emitted where the change is made,
in its transaction: the case's id and status after the change, who made it, and ids and codes only."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.consultation.case_states import CaseEvent
from legetime.core.identity.actors import SYSTEM
from legetime.core.identity.ctx import Ctx
from legetime.core.platform import events
from legetime.core.platform.db.models import Case, RequesterRole
from legetime.core.platform.events import EventType
from legetime.core.platform.jobs.types import JobContext
from legetime.core.platform.providers.payment import PaymentStatus

FOR_TRANSITION = {
    CaseEvent.SUBMIT: EventType.CASE_SUBMITTED,
    CaseEvent.CLAIM: EventType.CASE_CLAIMED,
    CaseEvent.RELEASE_CLAIM: EventType.CASE_CLAIM_RELEASED,
    CaseEvent.ASK_FOLLOW_UP: EventType.CASE_FOLLOW_UP_ASKED,
    CaseEvent.PATIENT_REPLIED: EventType.CASE_PATIENT_REPLIED,
    CaseEvent.ANSWER: EventType.CASE_ANSWERED,
    CaseEvent.CLOSE: EventType.CASE_CLOSED,
    CaseEvent.CANCEL: EventType.CASE_CANCELLED,
}

FOR_PAYMENT_STATUS = {
    PaymentStatus.AUTHORIZED: EventType.PAYMENT_RESERVED,
    PaymentStatus.CAPTURED: EventType.PAYMENT_CAPTURED,
    PaymentStatus.PARTIALLY_CAPTURED: EventType.PAYMENT_CAPTURED,
    PaymentStatus.RELEASED: EventType.PAYMENT_RELEASED,
    PaymentStatus.DECLINED: EventType.PAYMENT_FAILED,
    PaymentStatus.EXPIRED: EventType.PAYMENT_FAILED,
}


async def emit(ctx: Ctx | JobContext, type: EventType, case: Case | uuid.UUID | None, **data: Any) -> None:
    """Record ``type`` about ``case`` (a loaded case, or its id) in the transaction of ``ctx``."""
    await _emit(ctx.session, type, case, _role(ctx, case), data)


async def emit_as_system(
    session: AsyncSession, type: EventType, case_id: uuid.UUID | None, **data: Any
) -> None:
    """Record ``type`` that the platform itself caused (a network's delivery report …)."""
    await _emit(session, type, case_id, SYSTEM.role, data)


async def _emit(
    session: AsyncSession,
    type: EventType,
    case: Case | uuid.UUID | None,
    role: str,
    data: dict[str, Any],
) -> None:
    if isinstance(case, Case):
        case_id: uuid.UUID | None = case.id
        status: str | None = case.status.name
    elif case is not None:
        case_id = case
        found = await session.scalar(select(Case.status).where(Case.id == case))
        status = found.name if found is not None else None
    else:
        case_id = status = None
    await events.emit(session, type, case_id=case_id, case_status=status, actor_role=role, data=data)


def _role(ctx: Ctx | JobContext, case: Case | uuid.UUID | None) -> str:
    actor = ctx.actor if isinstance(ctx, Ctx) else SYSTEM
    if (
        isinstance(case, Case)
        and case.requester_role is RequesterRole.GUARDIAN
        and actor.person_id == case.requester_id
    ):
        return "guardian"
    return actor.role
