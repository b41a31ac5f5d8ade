"""The core's own job handlers, registered like a plugin's (always loaded, cannot be disabled)."""

from __future__ import annotations

from legetime.core.consultation.journal import draft_job
from legetime.core.consultation.notifications import send_sms_job
from legetime.core.consultation.payments import capture_job, refresh_job, release_job
from legetime.core.hookspecs import hookimpl
from legetime.core.platform.jobs.types import JobHandler
from legetime.core.privacy.rights import delete_objects_job, erase_case_job


@hookimpl
def register_jobs() -> dict[str, JobHandler]:
    return {
        "notify.sms": send_sms_job,
        "payments.capture": capture_job,
        "payments.release": release_job,
        "payments.refresh": refresh_job,
        "journal.draft": draft_job,
        "privacy.erase_case": erase_case_job,
        "storage.delete": delete_objects_job,
    }
