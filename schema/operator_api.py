"""Operators: queue metadata, SLA figures, the SMS log and job status — never message bodies or answers."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import strawberry
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.consultation.overdue import AWAITING_ANSWER
from legetime.core.identity.actors import require_operator
from legetime.core.platform.db import models
from legetime.core.platform.errors import ValidationError
from legetime.core.protection import audit
from legetime.schema.case_types import CaseStatus
from legetime.schema.context import Info
from legetime.schema.pagination import check_page_size

OPEN = AWAITING_ANSWER


@strawberry.type
class StatusCount:
    status: CaseStatus  # type: ignore[valid-type]
    count: int


@strawberry.type(description="One hand-over of a text to one SMS provider, and what its network reported.")
class SmsAttemptView:
    provider: str
    status: str = strawberry.field(description="refused, queued, sent, delivered or failed.")
    error: str | None = strawberry.field(description="The provider's code and reason of a failure.")
    segments: int | None
    encoding: str | None
    sender: str | None = strawberry.field(description="The sender name it went out with.")
    created_at: datetime
    status_at: datetime | None


@strawberry.type(description="An SMS notice: who, when, how it went (the text holds no health content).")
class SmsNotice:
    case_number: str
    event: str
    to: str | None
    provider: str | None
    segments: int | None
    status: str = strawberry.field(
        description="pending, sent, delivered, failed (no provider could deliver it), or why it was not "
        "sent (no_phone, skipped_…)."
    )
    failure_reason: str | None
    created_at: datetime
    sent_at: datetime | None
    status_at: datetime | None = strawberry.field(description="When the network last reported on it.")
    attempts: list[SmsAttemptView] = strawberry.field(
        description="Each provider it went to, in order (more than one after a failover)."
    )


@strawberry.type(description="SMS use of one provider over a period: the basis of its cost.")
class SmsUsage:
    provider: str
    texts: int
    segments: int = strawberry.field(description="Billed units: GSM-7 or UCS-2 segments, counted locally.")
    delivered: int
    failed: int


@strawberry.type
class Job:
    id: strawberry.ID
    name: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


@strawberry.type(description="The access log's chaining: entries are chained within about a second.")
class AccessLogChain:
    unchained: int = strawberry.field(
        description="Entries written but not chained yet; a number that keeps growing means no sequencer "
        "runs (`legetime worker`, or `legetime serve` without Redis)."
    )
    oldest_unchained_at: datetime | None = strawberry.field(
        description="When the oldest of them was written."
    )


@strawberry.type(description="The operation's figures: cases by status, open and overdue, answer times.")
class OperationFigures:
    by_status: list[StatusCount]
    open_cases: int
    overdue_cases: int
    answered_within_sla: float | None = strawberry.field(
        description="Share of answered cases answered in time."
    )
    median_response_minutes: float | None


@strawberry.type(description="The operation at a glance.")
class OperatorOverview(OperationFigures):
    @strawberry.field(
        description='The SMS log, newest first; `status: "failed"` for texts no provider delivered.'
    )
    async def sms(self, info: Info, first: int = 50, status: str | None = None) -> list[SmsNotice]:
        ctx = await info.context.read()
        check_page_size(first, None, ctx.platform.settings.max_page_size)
        query = (
            select(models.Notification, models.Case.number)
            .join(models.Case, models.Case.id == models.Notification.case_id)
            .order_by(models.Notification.created_at.desc())
            .limit(first)
        )
        if status:
            query = query.where(models.Notification.status == status)
        rows = (await ctx.session.execute(query)).all()
        attempts: dict[Any, list[SmsAttemptView]] = defaultdict(list)
        if rows:
            for a in await ctx.session.scalars(
                select(models.SmsAttempt)
                .where(models.SmsAttempt.notification_id.in_([n.id for n, _ in rows]))
                .order_by(models.SmsAttempt.created_at, models.SmsAttempt.id)
            ):
                attempts[a.notification_id].append(
                    SmsAttemptView(
                        provider=a.provider,
                        status=a.status,
                        error=a.error,
                        segments=a.segments,
                        encoding=a.encoding,
                        sender=a.sender,
                        created_at=a.created_at,
                        status_at=a.status_at,
                    )
                )
        return [
            SmsNotice(
                case_number=number,
                event=n.event,
                to=_mask(n.to),
                provider=n.provider,
                segments=n.segments,
                status=n.status,
                failure_reason=n.failure_reason,
                created_at=n.created_at,
                sent_at=n.sent_at,
                status_at=n.status_at,
                attempts=attempts[n.id],
            )
            for n, number in rows
        ]

    @strawberry.field(description="Texts no provider could deliver (status failed), all time.")
    async def failed_texts(self, info: Info) -> int:
        ctx = await info.context.read()
        count = await ctx.session.scalar(select(func.count()).where(models.Notification.status == "failed"))
        return int(count or 0)

    @strawberry.field(
        description="SMS use per provider over the last `days` days (texts, segments, outcome)."
    )
    async def sms_usage(self, info: Info, days: int = 30) -> list[SmsUsage]:
        if not 1 <= days <= 366:
            raise ValidationError("days must be between 1 and 366.", field="days")
        ctx = await info.context.read()
        attempt = models.SmsAttempt
        rows = (
            await ctx.session.execute(
                select(
                    attempt.provider,
                    func.count(),
                    func.coalesce(func.sum(attempt.segments), 0),
                    func.count().filter(attempt.status == "delivered"),
                    func.count().filter(attempt.status.in_(("failed", "refused"))),
                )
                .where(attempt.created_at >= ctx.now - timedelta(days=days))
                .group_by(attempt.provider)
                .order_by(attempt.provider)
            )
        ).all()
        return [
            SmsUsage(provider=p, texts=t, segments=int(s or 0), delivered=d, failed=f)
            for p, t, s, d, f in rows
        ]

    @strawberry.field
    async def access_log_chain(self, info: Info) -> AccessLogChain:
        ctx = await info.context.read()
        unchained, oldest = await audit.chain_lag(ctx.session)
        return AccessLogChain(unchained=unchained, oldest_unchained_at=oldest)

    @strawberry.field
    async def jobs(self, info: Info, first: int = 50, status: str | None = None) -> list[Job]:
        ctx = await info.context.read()
        check_page_size(first, None, ctx.platform.settings.max_page_size)
        query = select(models.OutboxJob).order_by(models.OutboxJob.created_at.desc()).limit(first)
        if status:
            query = query.where(models.OutboxJob.status == status)
        return [
            Job(
                id=strawberry.ID(str(j.id)),
                name=j.name,
                status=j.status.value,
                attempts=j.attempts,
                last_error=j.last_error,
                created_at=j.created_at,
                finished_at=j.finished_at,
            )
            for j in (await ctx.session.scalars(query)).all()
        ]


def _mask(phone: str | None) -> str | None:
    return None if phone is None else f"{phone[:3]}*****{phone[-2:]}"


@strawberry.type
class OperatorQuery:
    @strawberry.field(description="Operators: queue, SLA figures, SMS log and jobs.")
    async def operator_overview(self, info: Info) -> OperatorOverview:
        ctx = await info.context.read()
        require_operator(ctx.actor)
        figures = await operation_figures(ctx.session, ctx.now)
        return OperatorOverview(**vars(figures))


async def operation_figures(session: AsyncSession, now: datetime) -> OperationFigures:
    """The figures of the overview (a few aggregate queries; no person's data)."""
    counts = dict(
        (await session.execute(select(models.Case.status, func.count()).group_by(models.Case.status))).all()
    )
    overdue = await session.scalar(
        select(func.count()).where(models.Case.status.in_(OPEN), models.Case.sla_due_at < now)
    )
    answered: list[tuple[datetime, datetime, datetime]] = [
        (submitted, answered_at, due)
        for submitted, answered_at, due in (
            await session.execute(
                select(models.Case.submitted_at, models.Case.answered_at, models.Case.sla_due_at).where(
                    models.Case.answered_at.is_not(None), models.Case.sla_due_at.is_not(None)
                )
            )
        ).all()
        if submitted is not None and answered_at is not None and due is not None
    ]
    in_time = [answered_at <= due for _, answered_at, due in answered]
    minutes = [(answered_at - submitted).total_seconds() / 60 for submitted, answered_at, _ in answered]
    return OperationFigures(
        by_status=[StatusCount(status=status, count=count) for status, count in sorted(counts.items())],
        open_cases=sum(counts.get(status, 0) for status in OPEN),
        overdue_cases=int(overdue or 0),
        answered_within_sla=sum(in_time) / len(in_time) if in_time else None,
        median_response_minutes=statistics.median(minutes) if minutes else None,
    )
