"""Looking up the patient's summary care record (Kjernejournal) for the clinician who holds her case.

Only that clinician, only while the case is open, only while the patient consents to the look-up
(``kjernejournal_lookup``, for the case or in general) and processing is not restricted. Every look-up is
in the patient's access log, whether or not a record came back. The record itself is passed through:
fetched per request from the ``fetch_summary_care_record`` hook, never stored, cached or logged.
"""

from __future__ import annotations

import uuid

from sqlalchemy import and_, select

from legetime.core.consultation import consents
from legetime.core.consultation.access import (
    NOT_FOUND_MESSAGE,
    as_clinician,
    load_case,
    require_unrestricted,
)
from legetime.core.identity import persons
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.models import (
    Case,
    CaseStatus,
    ConsentPurpose,
    Person,
    StaffMembership,
    StaffRole,
)
from legetime.core.platform.errors import NotFound
from legetime.core.platform.summary_care import SummaryCareRecord
from legetime.core.protection import audit

OBJECT_TYPE = "summary_care_record"
NO_CONSENT_MESSAGE = "Pasienten har ikke samtykket til oppslag i kjernejournal."


async def look_up(ctx: Ctx, case_id: uuid.UUID) -> SummaryCareRecord | None:
    """The record of the case's patient (None: no plugin has one). "Not found" for anyone but the
    clinician who holds the case, and for a closed or cancelled case (the treatment is over)."""
    treating = and_(
        as_clinician(ctx.actor, write=True),  # the assigned clinician, while she is one
        Case.status.not_in((CaseStatus.CLOSED, CaseStatus.CANCELLED)),
    )
    case = await load_case(ctx, case_id, treating)
    # Checked before the hook is called: without consent her national ID goes nowhere.
    await consents.require(
        ctx, case.subject_id, ConsentPurpose.KJERNEJOURNAL_LOOKUP, case.id, NO_CONSENT_MESSAGE
    )
    await require_unrestricted(ctx, case.subject_id)
    patient = await ctx.session.get(Person, case.subject_id)
    if patient is None:
        raise NotFound(NOT_FOUND_MESSAGE, field="caseId")
    hpr_number = await ctx.session.scalar(
        select(StaffMembership.hpr_number).where(
            StaffMembership.person_id == ctx.actor.person_id,
            StaffMembership.role == StaffRole.CLINICIAN,
            StaffMembership.ended_at.is_(None),
        )
    )
    # Logged before the call: her national ID leaves the platform whether or not a record comes back.
    await audit.log(
        ctx,
        person_id=case.subject_id,
        object_type=OBJECT_TYPE,
        object_id=str(case.id),
        action="read",
        reason="treatment",
    )
    national_id = persons.national_id(ctx.platform.keyring, patient)
    return await ctx.platform.hooks.fetch_summary_care_record(national_id, hpr_number, ctx.platform)
