"""SLA alerts: an open case that comes within a threshold of its deadline (``LEGETIME_SLA_ALERT_MINUTES``,
60 and 15 minutes by default) alerts the clinicians on duty and the operators, once per case and
threshold: a ``case.sla_warning`` event (the clinicians' queue shows it live, integrators get it as a
webhook) and a text to the on-duty number, when operators have set one.

A periodic job (every ``SLA_ALERT_EVERY``) raises them, the sibling of ``overdue``: several workers run it
side by side, each locks the cases it alerts (``SKIP LOCKED``), and the alert's primary key (case,
threshold) makes a second alert impossible. A case that is already past its deadline gets no warning
(``case.overdue`` says that).

A case found within several thresholds at once (the job was not running, or the case was submitted
close to its deadline) is alerted once, for the smallest of them, the most urgent: the larger ones are
recorded as done, so they never fire later, and nobody gets two texts for one case in the same minute.

The on-duty number is the operators' to set and clear (``set_on_duty_phone``); each change is in the
access log. It is read when an alert is raised and kept in the notice, so the text goes to the number
that was on duty then.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import and_, delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.consultation.case_events import emit_as_system
from legetime.core.consultation.notifications import notify_on_duty
from legetime.core.consultation.overdue import AWAITING_ANSWER
from legetime.core.identity.actors import require_operator
from legetime.core.identity.ctx import Ctx
from legetime.core.identity.phone import normalize_phone
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import Case, CaseSlaAlert, OnDutyPhone
from legetime.core.platform.events import EventType
from legetime.core.protection import audit

if TYPE_CHECKING:
    from legetime.core.platform.runtime import Platform

log = structlog.get_logger(__name__)

SLA_ALERT_EVERY = timedelta(minutes=1)
BATCH = 200
ON_DUTY_ROW = 1
"""The on-duty number is one row of its table, with this id."""


async def alert_cases_near_deadline(platform: Platform, now: datetime | None = None) -> int:
    """Alert every open case that came within a threshold of its deadline and was not alerted for it
    yet; returns how many alerts were raised (a case past several thresholds counts once)."""
    now = now or utcnow()
    thresholds = platform.settings.sla_alert_minutes
    if not thresholds:
        return 0
    alerted = 0
    while True:
        async with platform.db.transaction() as session:
            due = await _due(session, thresholds, now)
            done = await _done(session, [case.id for case in due])
            phone = await session.scalar(select(OnDutyPhone.phone).where(OnDutyPhone.id == ON_DUTY_ROW))
            for case in due:
                assert case.sla_due_at is not None
                within = {t for t in thresholds if case.sla_due_at <= now + timedelta(minutes=t)}
                earlier = done.get(case.id, set())
                new = within - earlier
                if not new:
                    continue
                for minutes in new:
                    session.add(CaseSlaAlert(case_id=case.id, threshold_minutes=minutes, alerted_at=now))
                # Only an alert more urgent than any before it: a threshold that is merely new (added to the
                # setting after a smaller one fired) is recorded without a second alert.
                if not earlier or min(new) < min(earlier):
                    await _alert(session, case, min(new), phone)
                    alerted += 1
        if len(due) < BATCH:
            return alerted


async def _due(session: AsyncSession, thresholds: list[int], now: datetime) -> list[Case]:
    """Open cases, deadline still ahead, within a threshold they have no alert for; locked, oldest
    deadline first."""
    not_alerted = [
        and_(
            Case.sla_due_at <= now + timedelta(minutes=minutes),
            ~exists().where(CaseSlaAlert.case_id == Case.id, CaseSlaAlert.threshold_minutes == minutes),
        )
        for minutes in thresholds
    ]
    return list(
        (
            await session.scalars(
                select(Case)
                .where(Case.status.in_(AWAITING_ANSWER), Case.sla_due_at > now, or_(*not_alerted))
                .order_by(Case.sla_due_at)
                .limit(BATCH)
                .with_for_update(of=Case, skip_locked=True)
            )
        ).all()
    )


async def _done(session: AsyncSession, case_ids: list[uuid.UUID]) -> dict[uuid.UUID, set[int]]:
    """The thresholds each case was alerted for already."""
    rows = await session.execute(
        select(CaseSlaAlert.case_id, CaseSlaAlert.threshold_minutes).where(CaseSlaAlert.case_id.in_(case_ids))
    )
    done: dict[uuid.UUID, set[int]] = {}
    for case_id, minutes in rows:
        done.setdefault(case_id, set()).add(minutes)
    return done


async def _alert(session: AsyncSession, case: Case, minutes: int, phone: str | None) -> None:
    assert case.sla_due_at is not None
    await emit_as_system(
        session,
        EventType.CASE_SLA_WARNING,
        case.id,
        threshold_minutes=minutes,
        sla_due_at=case.sla_due_at.isoformat(),
    )
    if phone is not None:  # no number set: the event alone (the queue, webhooks)
        await notify_on_duty(session, case, minutes, phone)
    log.info("sla.warning", case_id=str(case.id), threshold_minutes=minutes, texted=phone is not None)


# --- the on-duty number ---------------------------------------------------------------------------------


async def on_duty_phone(ctx: Ctx) -> OnDutyPhone | None:
    """Operators: the number SLA alerts are texted to, if one is set."""
    require_operator(ctx.actor)
    return await ctx.session.get(OnDutyPhone, ON_DUTY_ROW)


async def set_on_duty_phone(ctx: Ctx, phone: str | None) -> OnDutyPhone | None:
    """Operators: set the on-duty number (normalised to E.164; a number that cannot receive SMS is
    refused), or clear it with ``None`` or an empty string. Every change is in the access log."""
    require_operator(ctx.actor)
    if phone is None or not phone.strip():
        await ctx.session.execute(delete(OnDutyPhone).where(OnDutyPhone.id == ON_DUTY_ROW))
        await _log(ctx, "clear")
        return None
    # The clinic's number, nobody's own: without a country code, of the platform's default country.
    number = normalize_phone(phone, default_region=ctx.platform.settings.default_phone_region)
    row = await ctx.session.get(OnDutyPhone, ON_DUTY_ROW, with_for_update=True)
    if row is None:
        row = OnDutyPhone(id=ON_DUTY_ROW, phone=number, changed_at=ctx.now)
        ctx.session.add(row)
    else:
        row.phone, row.changed_at = number, ctx.now
    await _log(ctx, "set")
    return row


async def _log(ctx: Ctx, action: str) -> None:
    # Which number is not logged: the access log says who changed it and when, as for other settings.
    await audit.log(
        ctx, person_id=None, object_type="on_duty_phone", object_id=str(ON_DUTY_ROW), action=action
    )
