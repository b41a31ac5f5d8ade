"""An appointment's text is sent once however often its job is delivered: real dramatiq workers on Redis,
several threads, the job handed to them again and again while it runs (as a relay that died after
sending, and the broker's own redeliveries, do) — on PostgreSQL, where the workers really run at once."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import Notification, OutboxJob, OutboxStatus, SmsAttempt
from legetime.core.platform.jobs.runner import JobRunner
from legetime.core.platform.providers import SMS
from tests.appointment_stack import AppointmentStack, appointment_stack
from tests.migrated import upgrade

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _in_app(stack: AppointmentStack, work: Any) -> Any:
    assert stack.client.portal is not None
    return stack.client.portal.call(work)


def test_a_reminder_delivered_many_times_at_once_is_texted_once(
    tmp_path: Path, fresh_postgres_url: str, redis_url: str
) -> None:
    namespace = f"legetime-test-{uuid.uuid4().hex[:8]}"
    upgrade(fresh_postgres_url)
    with appointment_stack(
        tmp_path, fresh_postgres_url, redis_url=redis_url, queue_namespace=namespace
    ) as stack:
        booked = stack.book(stack.slots(days=5)[0]["id"], phone="412 34 567")["appointment"]
        key = f"appointment-text:{booked['id']}:reminder:1"

        async def due_now() -> str:
            async with stack.platform.db.transaction() as session:
                job = await session.scalar(select(OutboxJob).where(OutboxJob.dedupe_key == key))
                assert job is not None and job.status is OutboxStatus.PENDING
                await session.execute(
                    update(OutboxJob).where(OutboxJob.id == job.id).values(available_at=utcnow())
                )
                return str(job.id)

        job_id = _in_app(stack, due_now)
        runner = JobRunner(stack.platform)
        runner.start_workers(threads=4)
        try:
            for _ in range(6):  # six deliveries of one job, to four threads at once
                runner.actor.send(job_id)

            async def finished() -> bool:
                async with stack.platform.db.transaction() as session:
                    job = await session.get(OutboxJob, uuid.UUID(job_id))
                    return job is not None and job.status is OutboxStatus.DONE

            stack.api.wait_for(lambda: _in_app(stack, finished), "the reminder job")
            time.sleep(1)  # let every delivery be processed
        finally:
            runner.stop()

        sms: Any = stack.platform.providers.get(SMS)
        sent = [m for m in _in_app(stack, sms.messages) if ":reminder:" in m.reference]
        assert len(sent) == 1

        async def hand_overs() -> int:  # the provider keeps one message per reference whatever we do
            async with stack.platform.db.transaction() as session:
                notices = select(Notification.id).where(
                    Notification.appointment_id == uuid.UUID(booked["id"])
                )
                attempts = await session.scalars(
                    select(SmsAttempt.id).where(SmsAttempt.notification_id.in_(notices))
                )
                return len(attempts.all())

        assert _in_app(stack, hand_overs) == 1
        status = stack.api.gql(
            "query($id: ID!) { appointment(id: $id) { status } }", stack.mother, id=booked["id"]
        )
        assert status["appointment"]["status"] == "REMINDED"
