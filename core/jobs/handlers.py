"""The core's own job handlers, registered like a plugin's (always loaded, cannot be disabled)."""

from __future__ import annotations

from core.hookspecs import hookimpl
from core.jobs.types import JobHandler
from core.journal import draft_job
from core.notifications import send_sms_job
from core.payments import capture_job, refresh_job, release_job
from core.privacy import delete_objects_job, erase_case_job


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
