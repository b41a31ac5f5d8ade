"""Privacy officers: search the access log, see unusual patterns flagged, export a period. The rules live
in ``legetime.core.protection.access_review`` and ``access_export``; docs/privacy.md, "Reviewing the
access log", describes them. Every search and export is itself in the access log."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry import relay

from legetime.core.identity.ctx import Ctx
from legetime.core.platform.errors import ValidationError
from legetime.core.protection import access_export, access_review
from legetime.core.protection.access_review import Access, Filter
from legetime.schema.context import Info
from legetime.schema.pagination import check_page_size, decode_cursor, encode_cursor

AccessFlag = strawberry.enum(
    access_review.Flag,
    name="AccessFlag",
    description="An unusual pattern: UNASSIGNED_CASE (a clinician on a case never assigned to her), NIGHT "
    "(staff between 22:00 and 06:00 Norwegian time), MANY_PATIENTS (a staff member on more than "
    f"{access_review.MANY_PATIENTS} patients within {access_review.MANY_PATIENTS_MINUTES} minutes).",
)
ExportFormat = strawberry.enum(access_export.ExportFormat, name="AccessLogExportFormat")
ChainState = strawberry.enum(
    access_export.ChainState,
    name="AccessLogChainState",
    description="VERIFIED; NOT_YET_CHAINED (sound so far, the newest entries are chained within a second); "
    "PARTLY_CHECKED (sound as far as checked: run `legetime audit verify`); BROKEN.",
)


@strawberry.input(
    description="What to look for. The period is required (at most 366 days); the rest narrow it."
)
class AccessLogFilter:
    from_: datetime = strawberry.field(
        name="from", description="Start (inclusive); without a zone: Norwegian time."
    )
    to: datetime = strawberry.field(description="End (exclusive); without a zone: Norwegian time.")
    patient_id: strawberry.ID | None = strawberry.field(default=None, description="The patient's person id.")
    patient_national_id: str | None = strawberry.field(
        default=None, description="Or the patient's national ID (looked up, never logged)."
    )
    staff_id: strawberry.ID | None = strawberry.field(
        default=None, description="The staff member's person id."
    )
    case_number: str | None = strawberry.field(
        default=None,
        description="A case: entries about it and its images, journal notes, messages, consents.",
    )
    action: str | None = strawberry.field(default=None, description="E.g. read, list, answer, claim, export.")


@strawberry.type(description="A person named by an entry: her id and name (never her national ID).")
class AccessLogPerson:
    id: strawberry.ID
    name: str | None


@strawberry.type(description="One entry of the access log, as a privacy officer reviews it.")
class ReviewedAccess:
    id: strawberry.ID
    occurred_at: datetime
    actor: AccessLogPerson | None = strawberry.field(description="Who (null: the platform or a machine).")
    actor_role: str
    patient: AccessLogPerson | None = strawberry.field(description="Whose data (the data subject).")
    object_type: str
    object_id: str
    action: str
    reason: str | None
    chained: bool = strawberry.field(
        description="Whether the sequencer has chained it yet (within a second)."
    )
    flags: list[AccessFlag]  # type: ignore[valid-type]


@strawberry.type
class AccessLogReview:
    entries: list[ReviewedAccess]
    page_info: relay.PageInfo = strawberry.field(
        description=f"With `flaggedOnly`, a page searches at most {access_review.SCAN_LIMIT:,} entries: a "
        "short (even empty) page may still have a next one."
    )


@strawberry.type(description="The chain's verification status over the exported entries' part of it.")
class AccessLogVerification:
    state: ChainState  # type: ignore[valid-type]
    checked_rows: int = strawberry.field(description="Chained rows checked, the export's and those between.")
    unchained_rows: int = strawberry.field(description="Exported entries not chained yet.")
    first_broken_id: strawberry.ID | None
    reason: str | None


@strawberry.type(description="A period of the access log as CSV or JSON, oldest first.")
class AccessLogExport:
    format: ExportFormat  # type: ignore[valid-type]
    content: str
    rows: int
    truncated: bool = strawberry.field(
        description=f"More entries than the limit ({access_export.EXPORT_LIMIT:,}) matched: export the "
        "rest from the last one's time."
    )
    limit: int
    verification: AccessLogVerification


@strawberry.type
class AccessReviewQuery:
    @strawberry.field(
        description="Privacy officers: the access log, newest first, each entry with its flags."
    )
    async def access_log_review(
        self,
        info: Info,
        filter: AccessLogFilter,
        first: int | None = None,
        after: str | None = None,
        flagged_only: bool = False,
    ) -> AccessLogReview:
        ctx = await info.context.read()
        access_review.require_privacy_officer(ctx.actor)
        settings = ctx.platform.settings
        check_page_size(first, None, settings.max_page_size)
        f = await _filter(ctx, filter)
        page = await access_review.search(
            ctx.session,
            settings.zone,
            f,
            first=settings.default_page_size if first is None else first,
            after=_position(after),
            flagged_only=flagged_only,
        )
        await access_review.log_review(ctx, f, access_review.REVIEW, page.entries, flagged_only=flagged_only)
        who = await access_review.names(ctx.session, page.entries)
        end = encode_cursor([page.end[0].isoformat(), page.end[1]]) if page.end else None
        return AccessLogReview(
            entries=[_entry(e, who) for e in page.entries],
            page_info=relay.PageInfo(
                has_next_page=page.has_next,
                has_previous_page=after is not None,
                start_cursor=None,
                end_cursor=end,
            ),
        )

    @strawberry.field(
        description="Privacy officers: a period of the access log as CSV or JSON, with the "
        f"chain's verification status; at most {access_export.EXPORT_LIMIT:,} entries, oldest first."
    )
    async def export_access_log(
        self,
        info: Info,
        filter: AccessLogFilter,
        format: ExportFormat,  # type: ignore[valid-type]
        flagged_only: bool = False,
    ) -> AccessLogExport:
        ctx = await info.context.read()
        access_review.require_privacy_officer(ctx.actor)
        f = await _filter(ctx, filter)
        done = await access_export.export(ctx, f, format, flagged_only=flagged_only)
        v = done.verification
        return AccessLogExport(
            format=done.format,
            content=done.content,
            rows=done.rows,
            truncated=done.truncated,
            limit=access_export.EXPORT_LIMIT,
            verification=AccessLogVerification(
                state=v.state,
                checked_rows=v.checked,
                unchained_rows=v.unchained,
                first_broken_id=strawberry.ID(str(v.first_broken_id)) if v.first_broken_id else None,
                reason=v.reason,
            ),
        )


async def _filter(ctx: Ctx, given: AccessLogFilter) -> Filter:
    return await access_review.make_filter(
        ctx,
        since=given.from_,
        until=given.to,
        patient_id=_person_id(given.patient_id, "patientId"),
        patient_national_id=given.patient_national_id,
        staff_id=_person_id(given.staff_id, "staffId"),
        case_number=given.case_number,
        action=given.action,
    )


def _person_id(value: strawberry.ID | None, field: str) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationError("Ugyldig id.", field=field) from None


def _position(after: str | None) -> tuple[datetime, int] | None:
    """The (time, id) a cursor holds; anything else is a typed error."""
    if not after:
        return None
    values = decode_cursor(after)
    try:
        at, row_id = datetime.fromisoformat(values[0]), int(values[1])
    except (IndexError, TypeError, ValueError):
        raise ValidationError("Ugyldig cursor.", field="after") from None
    if len(values) != 2 or at.tzinfo is None or not 0 < row_id < 2**63:
        raise ValidationError("Ugyldig cursor.", field="after")
    return at, row_id


def _entry(e: Access, who: dict[uuid.UUID, str]) -> ReviewedAccess:
    return ReviewedAccess(
        id=strawberry.ID(str(e.id)),
        occurred_at=e.occurred_at,
        actor=_person(e.actor_id, who),
        actor_role=e.actor_role,
        patient=_person(e.person_id, who),
        object_type=e.object_type,
        object_id=e.object_id,
        action=e.action,
        reason=e.reason,
        chained=e.chained,
        flags=sorted(e.flags, key=list(access_review.Flag).index),
    )


def _person(person_id: uuid.UUID | None, who: dict[uuid.UUID, str]) -> AccessLogPerson | None:
    if person_id is None:
        return None
    return AccessLogPerson(id=strawberry.ID(str(person_id)), name=who.get(person_id) or None)
