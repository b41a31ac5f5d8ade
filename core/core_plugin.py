"""The core's own plugin: its job handlers and its periodic work, registered through the same hooks as
any plugin's (always loaded, cannot be disabled). Each job's name is a constant next to its handler."""

from __future__ import annotations

from datetime import timedelta

from legetime.core.appointments import (
    settlement,  # its text makers, and the reconciliation of its payments
    surveys,  # the survey's text maker, and the survey after a closed case
    texts_before_visit,  # noqa: F401 - registers its text makers
    timed_texts,
    video_rooms,
)
from legetime.core.appointments.retention import run_appointment_retention
from legetime.core.consultation.cases import SURVEY_JOB, close_answered_cases
from legetime.core.consultation.journal import DRAFT_JOB, draft_job
from legetime.core.consultation.notifications import SEND_SMS_JOB, send_sms_job
from legetime.core.consultation.overdue import OVERDUE_EVERY, flag_overdue_cases
from legetime.core.consultation.payments import CAPTURE_JOB, RELEASE_JOB, capture_job, release_job
from legetime.core.consultation.sla_alerts import SLA_ALERT_EVERY, alert_cases_near_deadline
from legetime.core.consultation.sms_delivery import FAILOVER_JOB, REPORT_JOB, failover_job, report_job
from legetime.core.consultation.submission import REFRESH_JOB, Reconciliation, reconcile, refresh_job
from legetime.core.hookspecs import hookimpl
from legetime.core.identity.actors import SYSTEM
from legetime.core.identity.purge import LOGIN_PURGE_EVERY, PURGE_LOGINS_JOB, purge_logins
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.events import DELIVER_JOB, DISPATCH_JOB, deliver_job, dispatch_job
from legetime.core.platform.jobs.types import JobHandler, PeriodicJob
from legetime.core.platform.runtime import Platform
from legetime.core.platform.webhooks_out.delivery import DELIVER_JOB as WEBHOOK_JOB
from legetime.core.platform.webhooks_out.delivery import deliver_job as webhook_job
from legetime.core.protection.audit import CHAIN_EVERY, CHAIN_JOB, chain_all
from legetime.core.protection.retention import (
    DELETE_OBJECTS_JOB,
    ERASE_CASE_JOB,
    delete_objects_job,
    erase_case_job,
    run_retention,
)

CLOSE_ANSWERED_EVERY = timedelta(minutes=1)


@hookimpl
def register_jobs() -> dict[str, JobHandler]:
    return {
        SEND_SMS_JOB: send_sms_job,
        FAILOVER_JOB: failover_job,
        REPORT_JOB: report_job,
        CAPTURE_JOB: capture_job,
        RELEASE_JOB: release_job,
        REFRESH_JOB: refresh_job,
        DRAFT_JOB: draft_job,
        ERASE_CASE_JOB: erase_case_job,
        DELETE_OBJECTS_JOB: delete_objects_job,
        DISPATCH_JOB: dispatch_job,
        DELIVER_JOB: deliver_job,
        WEBHOOK_JOB: webhook_job,
        timed_texts.SEND_JOB: timed_texts.send_job,
        video_rooms.CLOSE_JOB: video_rooms.close_job,
        SURVEY_JOB: surveys.case_survey_job,
    }


@hookimpl
def register_periodic_jobs() -> list[PeriodicJob]:
    return [
        PeriodicJob("cases.close_answered", close_answered, lambda settings: CLOSE_ANSWERED_EVERY),
        PeriodicJob(
            "payments.reconcile",
            reconcile_payments,
            lambda settings: timedelta(minutes=settings.payment_reconcile_minutes),
        ),
        PeriodicJob(
            "privacy.retention",
            purge,
            lambda settings: timedelta(minutes=settings.purge_interval_minutes),
        ),
        PeriodicJob(PURGE_LOGINS_JOB, purge_logins, lambda settings: LOGIN_PURGE_EVERY),
        PeriodicJob(CHAIN_JOB, chain_access_log, lambda settings: CHAIN_EVERY),
        PeriodicJob("cases.flag_overdue", flag_overdue_cases, lambda settings: OVERDUE_EVERY),
        PeriodicJob("cases.sla_alerts", alert_cases_near_deadline, lambda settings: SLA_ALERT_EVERY),
        PeriodicJob(
            settlement.RECONCILE_JOB,
            settlement.reconcile_payments,
            lambda settings: timedelta(minutes=settings.payment_reconcile_minutes),
        ),
    ]


async def chain_access_log(platform: Platform) -> int:
    """The access log's sequencer: chain the rows written since its last run."""
    return await chain_all(platform.db)


async def close_answered(platform: Platform) -> int:
    """Close answered cases the patient left open (and charge the fee)."""
    async with platform.db.transaction() as session:
        return await close_answered_cases(session, platform, utcnow())


async def reconcile_payments(platform: Platform) -> Reconciliation:
    """Re-fetch open payments, cancel abandoned ones, capture or release what a lost job left."""
    async with platform.db.transaction() as session:
        return await reconcile(session, platform, utcnow())


async def purge(platform: Platform) -> int:
    """Delete the communication of cases and the content of appointments past their retention time
    (batched; see ``protection.retention`` and ``appointments.retention``)."""
    summary = await run_retention(platform, actor=SYSTEM, trigger="schedule")
    appointments = await run_appointment_retention(platform, actor=SYSTEM, trigger="schedule")
    return summary.cases + appointments.appointments
