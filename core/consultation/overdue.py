"""Overdue cases: a case still waiting for its answer when its deadline (``sla``) passes is flagged once,
with a ``case.overdue`` event (the clinicians' queue shows it live, integrators get it as a webhook).

A periodic job (every ``OVERDUE_EVERY``) flags them in batches. Several workers run it side by side: each
locks the cases it flags (``SKIP LOCKED``), and the flag's primary key makes a second flag impossible.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from legetime.core.consultation.case_events import emit_as_system
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import Case, CaseOverdue, CaseStatus
from legetime.core.platform.events import EventType

if TYPE_CHECKING:
    from legetime.core.platform.runtime import Platform

OVERDUE_EVERY = timedelta(minutes=1)
AWAITING_ANSWER = (CaseStatus.SUBMITTED, CaseStatus.IN_REVIEW, CaseStatus.AWAITING_PATIENT)
"""Open cases, counted against the deadline (as the operators' overview counts them)."""
BATCH = 200


async def flag_overdue_cases(platform: Platform, now: datetime | None = None) -> int:
    """Flag every open case past its deadline that is not flagged yet; returns how many."""
    now = now or utcnow()
    flagged = 0
    while True:
        async with platform.db.transaction() as session:
            due = (
                await session.execute(
                    select(Case.id, Case.sla_due_at)
                    .outerjoin(CaseOverdue, CaseOverdue.case_id == Case.id)
                    .where(
                        Case.status.in_(AWAITING_ANSWER),
                        Case.sla_due_at < now,
                        CaseOverdue.case_id.is_(None),
                    )
                    .order_by(Case.sla_due_at)
                    .limit(BATCH)
                    .with_for_update(of=Case, skip_locked=True)
                )
            ).all()
            for case_id, due_at in due:
                session.add(CaseOverdue(case_id=case_id, flagged_at=now))
                await emit_as_system(
                    session,
                    EventType.CASE_OVERDUE,
                    case_id,
                    sla_due_at=due_at.isoformat() if due_at else None,
                )
        flagged += len(due)
        if len(due) < BATCH:
            return flagged
