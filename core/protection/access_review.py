"""Reviewing the access log (Normen): a privacy officer searches it by patient, staff member, case, action
and period, and sees unusual patterns flagged. Every review is itself logged (``log_review``).

A search always has a period (at most ``MAX_PERIOD``) and is read newest first, a page at a time by
keyset on (``occurred_at``, ``id``): the indexes ``ix_audit_event_occurred`` (the period),
``ix_audit_event_actor`` (a staff member; the ``MANY_PATIENTS`` windows) and ``ix_audit_event_person``
(a patient; a case, whose entries all name its patient) answer each filter without a scan of the log.

The flags, computed for the entries a page returns (docs/privacy.md, "Reviewing the access log"):

* ``UNASSIGNED_CASE``: a clinician opened or acted on a case (``object_type`` "case") that was never
  assigned to her. Only claiming assigns a case and nothing unassigns it, so the case's
  ``assigned_clinician_id`` says whether it ever was. Not flagged: a page of the queue (action "list":
  the queue is where a clinician finds her next case), her own case, a case she opened as a guardian.
* ``NIGHT``: staff reading or changing someone else's data between 22:00 and 06:00 where the service runs
  (``Settings.zone``, Europe/Oslo).
* ``MANY_PATIENTS``: a staff member touched more than ``MANY_PATIENTS`` distinct patients within
  ``MANY_PATIENTS_MINUTES`` minutes; every entry of such a burst is flagged. Pages of the queue and
  the privacy officer's own reviews are not counted (looking across patients is what they are for).

Staff are the roles ``STAFF_ROLES`` as the log names them; patients and guardians, integrators and the
platform itself are never flagged.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncGenerator, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.identity.actors import Actor
from legetime.core.identity.countries import identify
from legetime.core.identity.ctx import Ctx
from legetime.core.identity.nationalid import InvalidNationalId
from legetime.core.identity.persons import find_person
from legetime.core.platform.db.models import (
    Attachment,
    AuditEvent,
    Case,
    Consent,
    JournalNote,
    Message,
    Person,
)
from legetime.core.platform.errors import ErrorCode, Forbidden, LegetimeError, NotFound, ValidationError
from legetime.core.protection import audit

MAX_PERIOD = timedelta(days=366)
NIGHT_STARTS, NIGHT_ENDS = 22, 6
"""Local hours: from 22:00 up to (not including) 06:00."""
MANY_PATIENTS = 15
"""More distinct patients than this within ``MANY_PATIENTS_MINUTES`` is a burst. A clinician answers a
case in minutes, so fifteen in ten minutes is browsing, not treating."""
MANY_PATIENTS_MINUTES = 10
SCAN_CHUNK = 500
"""Rows read (and flagged) per query while looking for flagged entries only."""
SCAN_LIMIT = 10_000
"""A page of flagged entries reads at most this many rows; the next page goes on from there."""

REVIEW = "review_access_log"
EXPORT = "export_access_log"
REVIEWER_ROLE = "privacy_officer"
"""The role her reviews are logged with (``Actor.role`` knows clinicians and operators only)."""
STAFF_ROLES = frozenset({"clinician", "operator", REVIEWER_ROLE})
NOT_COUNTED = frozenset({"list", REVIEW, EXPORT})
"""Actions that never count towards ``MANY_PATIENTS`` or ``UNASSIGNED_CASE`` (see the module docstring)."""


class Flag(StrEnum):
    UNASSIGNED_CASE = "unassigned_case"
    NIGHT = "night"
    MANY_PATIENTS = "many_patients"


def require_privacy_officer(actor: Actor) -> uuid.UUID:
    if actor.person_id is None:
        raise LegetimeError("Du må logge inn.", code=ErrorCode.UNAUTHENTICATED)
    if not actor.is_privacy_officer:
        raise Forbidden("Bare personvernombud har tilgang til tilgangsloggen.")
    return actor.person_id


# --- the filter ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseObjects:
    """A case and what belongs to it, as the access log names them: (object type, ids)."""

    id: uuid.UUID
    subject_id: uuid.UUID
    objects: dict[str, list[str]]


@dataclass(frozen=True)
class Filter:
    since: datetime
    until: datetime
    """Exclusive."""
    patient_id: uuid.UUID | None = None
    staff_id: uuid.UUID | None = None
    case: CaseObjects | None = None
    action: str | None = None

    @property
    def kinds(self) -> str:
        """What was filtered on, never the values: the object of the review's own log entry."""
        named = {"patient": self.patient_id, "staff": self.staff_id, "case": self.case, "action": self.action}
        return "+".join(["period", *(kind for kind, value in named.items() if value is not None)])

    @property
    def subject_id(self) -> uuid.UUID | None:
        """The one patient the filter is about, if it names one."""
        return self.patient_id or (self.case.subject_id if self.case else None)

    def conditions(self) -> list[ColumnElement[bool]]:
        where = [AuditEvent.occurred_at >= self.since, AuditEvent.occurred_at < self.until]
        if self.patient_id is not None:
            where.append(AuditEvent.person_id == self.patient_id)
        if self.staff_id is not None:
            where.append(AuditEvent.actor_id == self.staff_id)
        if self.action is not None:
            where.append(AuditEvent.action == self.action)
        if self.case is not None:
            # Every entry about a case or what belongs to it names the case's patient: her index finds them.
            about = [
                and_(AuditEvent.object_type == kind, AuditEvent.object_id.in_(ids))
                for kind, ids in self.case.objects.items()
            ]
            where.append(and_(AuditEvent.person_id == self.case.subject_id, or_(*about)))
        return where


async def make_filter(
    ctx: Ctx,
    *,
    since: datetime,
    until: datetime,
    patient_id: uuid.UUID | None = None,
    patient_national_id: str | None = None,
    staff_id: uuid.UUID | None = None,
    case_number: str | None = None,
    action: str | None = None,
) -> Filter:
    """The filter from what the privacy officer typed, checked. Times without a zone are local time."""
    zone = ctx.platform.settings.zone
    since, until = _aware(since, zone), _aware(until, zone)
    if until <= since:
        raise ValidationError("Slutten av perioden må være etter starten.", field="to")
    if until - since > MAX_PERIOD:
        raise ValidationError(f"Perioden kan være høyst {MAX_PERIOD.days} dager.", field="to")
    if patient_national_id is not None and patient_national_id.strip():
        if patient_id is not None:
            raise ValidationError(
                "Oppgi pasienten med id eller fødselsnummer, ikke begge.", field="patientNationalId"
            )
        patient_id = await _person_by_national_id(ctx, patient_national_id)
    case = await _case_objects(ctx.session, case_number) if case_number and case_number.strip() else None
    if action is not None:
        action = action.strip() or None
        if action is not None and len(action) > 50:
            raise ValidationError("Ukjent handling.", field="action")
    return Filter(since, until, patient_id, staff_id, case, action)


def _aware(value: datetime, zone: ZoneInfo) -> datetime:
    return value.replace(tzinfo=zone) if value.tzinfo is None else value


async def _person_by_national_id(ctx: Ctx, value: str) -> uuid.UUID:
    rules = identify(value)
    if rules is None:
        raise InvalidNationalId("Ugyldig fødselsnummer.", field="patientNationalId")
    person = await find_person(ctx.session, ctx.platform, rules.parse(value).value)
    if person is None:
        raise NotFound("Fant ingen person med dette fødselsnummeret.", field="patientNationalId")
    return person.id


async def _case_objects(session: AsyncSession, number: str) -> CaseObjects:
    """The case by its number, and the ids of its images, journal notes, messages and consents (what is
    still stored: once the communication is erased its messages' and images' entries are found by patient)."""
    case = await session.scalar(select(Case).where(Case.number == number.strip().upper()))
    if case is None:
        raise NotFound("Fant ikke saken.", field="caseNumber")
    # A summary care record look-up is logged with the case's id (it is never stored: no id of its own).
    objects = {"case": [str(case.id)], "summary_care_record": [str(case.id)]}
    for kind, model in (
        ("attachment", Attachment),
        ("journal_note", JournalNote),
        ("message", Message),
        ("consent", Consent),
    ):
        ids = (await session.scalars(select(model.id).where(model.case_id == case.id))).all()
        if ids:
            objects[kind] = [str(object_id) for object_id in ids]
    return CaseObjects(case.id, case.subject_id, objects)


# --- reading and flagging ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """One entry of the log as a review shows it."""

    id: int
    occurred_at: datetime
    actor_id: uuid.UUID | None
    actor_role: str
    person_id: uuid.UUID | None
    object_type: str
    object_id: str
    action: str
    reason: str | None
    seq: int | None
    hash: str | None
    prev_hash: str | None
    flags: frozenset[Flag] = field(default=frozenset())

    @property
    def position(self) -> tuple[datetime, int]:
        return self.occurred_at, self.id

    @property
    def chained(self) -> bool:
        return self.seq is not None


_COLUMNS = (
    AuditEvent.id,
    AuditEvent.occurred_at,
    AuditEvent.actor_id,
    AuditEvent.actor_role,
    AuditEvent.person_id,
    AuditEvent.object_type,
    AuditEvent.object_id,
    AuditEvent.action,
    AuditEvent.reason,
    AuditEvent.seq,
    AuditEvent.hash,
    AuditEvent.prev_hash,
)


async def _rows(
    session: AsyncSession,
    where: Sequence[ColumnElement[bool]],
    after: tuple[datetime, int] | None,
    limit: int,
    *,
    descending: bool,
) -> list[Access]:
    key = tuple_(AuditEvent.occurred_at, AuditEvent.id)
    query = select(*_COLUMNS).where(*where)
    if after is not None:
        query = query.where(key < tuple_(*after) if descending else key > tuple_(*after))
    order = (
        (AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        if descending
        else (AuditEvent.occurred_at, AuditEvent.id)
    )
    rows = await session.execute(query.order_by(*order).limit(limit))
    return [Access(**row) for row in rows.mappings()]


async def walk(
    session: AsyncSession,
    zone: ZoneInfo,
    where: Sequence[ColumnElement[bool]],
    *,
    after: tuple[datetime, int] | None = None,
    chunk: int = SCAN_CHUNK,
    descending: bool = True,
) -> AsyncGenerator[Access, None]:
    """The entries matching ``where`` after ``after``, flagged, ``chunk`` rows per query (stop when done)."""
    position = after
    while True:
        rows = await _rows(session, where, position, chunk, descending=descending)
        for access in await flag(session, zone, rows):
            yield access
        if len(rows) < chunk:
            return
        position = rows[-1].position


@dataclass(frozen=True)
class Page:
    entries: list[Access]
    has_next: bool
    end: tuple[datetime, int] | None
    """Where the next page goes on from: the last entry shown, or the last one searched (flagged only)."""


async def search(
    session: AsyncSession,
    zone: ZoneInfo,
    f: Filter,
    *,
    first: int,
    after: tuple[datetime, int] | None,
    flagged_only: bool,
) -> Page:
    """A page, newest first. Flagged only: up to ``first`` flagged entries found within ``SCAN_LIMIT``
    rows; a page may then be short (even empty) and still have a next one."""
    if first <= 0:
        return Page([], False, after)
    where = f.conditions()
    entries: list[Access] = []
    if not flagged_only:
        async with aclosing(walk(session, zone, where, after=after, chunk=first + 1)) as found:
            async for access in found:
                if len(entries) == first:
                    return Page(entries, True, entries[-1].position)
                entries.append(access)
        return Page(entries, False, entries[-1].position if entries else after)
    scanned, end = 0, after
    async with aclosing(walk(session, zone, where, after=after)) as found:
        async for access in found:
            scanned, end = scanned + 1, access.position
            if access.flags:
                entries.append(access)
                if len(entries) == first:
                    return Page(entries, True, end)
            if scanned >= SCAN_LIMIT:
                return Page(entries, True, end)
    return Page(entries, False, end)


def _by_staff(access: Access) -> bool:
    """Staff acting on someone else's data (her own case, as a patient, is her own business)."""
    return (
        access.actor_role in STAFF_ROLES
        and access.actor_id is not None
        and access.person_id is not None
        and access.person_id != access.actor_id
    )


async def flag(session: AsyncSession, zone: ZoneInfo, rows: Sequence[Access]) -> list[Access]:
    """The rows with their flags: at most two queries, whatever their number."""
    flags: dict[int, set[Flag]] = defaultdict(set)
    staff = [row for row in rows if _by_staff(row)]
    for row in staff:
        hour = row.occurred_at.astimezone(zone).hour
        if hour >= NIGHT_STARTS or hour < NIGHT_ENDS:
            flags[row.id].add(Flag.NIGHT)
    counted = [row for row in staff if row.action not in NOT_COUNTED]
    for row_id in await _unassigned(session, [row for row in counted if row.actor_role == "clinician"]):
        flags[row_id].add(Flag.UNASSIGNED_CASE)
    for row_id in await _in_bursts(session, counted):
        flags[row_id].add(Flag.MANY_PATIENTS)
    return [replace(row, flags=frozenset(flags[row.id])) if row.id in flags else row for row in rows]


async def _unassigned(session: AsyncSession, rows: Iterable[Access]) -> set[int]:
    about_cases: dict[int, tuple[uuid.UUID, uuid.UUID]] = {}
    for row in rows:
        if row.object_type == "case" and row.actor_id is not None:
            try:
                about_cases[row.id] = (uuid.UUID(row.object_id), row.actor_id)
            except ValueError:
                continue
    if not about_cases:
        return set()
    case_ids = {case_id for case_id, _ in about_cases.values()}
    cases = {
        case_id: (assigned, requester)
        for case_id, assigned, requester in await session.execute(
            select(Case.id, Case.assigned_clinician_id, Case.requester_id).where(Case.id.in_(case_ids))
        )
    }
    return {
        row_id
        for row_id, (case_id, actor_id) in about_cases.items()
        if case_id in cases and actor_id not in cases[case_id]
    }


async def _in_bursts(session: AsyncSession, rows: Sequence[Access]) -> set[int]:
    """The rows that fall in a burst: their actors' counted entries within a window either side of each
    are read (one query over the merged intervals) and swept once."""
    if not rows:
        return set()
    window = timedelta(minutes=MANY_PATIENTS_MINUTES)
    intervals: dict[uuid.UUID, list[list[datetime]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r.occurred_at):
        assert row.actor_id is not None  # _by_staff
        spans = intervals[row.actor_id]
        if spans and row.occurred_at - window <= spans[-1][1]:
            spans[-1][1] = row.occurred_at + window
        else:
            spans.append([row.occurred_at - window, row.occurred_at + window])
    around = or_(
        *(
            and_(AuditEvent.actor_id == actor_id, AuditEvent.occurred_at.between(start, end))
            for actor_id, spans in intervals.items()
            for start, end in spans
        )
    )
    events: dict[uuid.UUID | None, list[tuple[int, datetime, uuid.UUID | None]]] = defaultdict(list)
    for row_id, actor_id, occurred_at, person_id in await session.execute(
        select(AuditEvent.id, AuditEvent.actor_id, AuditEvent.occurred_at, AuditEvent.person_id)
        .where(
            around,
            AuditEvent.actor_role.in_(STAFF_ROLES),
            AuditEvent.person_id.is_not(None),
            AuditEvent.person_id != AuditEvent.actor_id,
            AuditEvent.action.not_in(NOT_COUNTED),
        )
        .order_by(AuditEvent.occurred_at, AuditEvent.id)
    ):
        events[actor_id].append((row_id, occurred_at, person_id))
    marked: set[int] = set()
    for sequence in events.values():
        marked |= bursts(sequence, window, MANY_PATIENTS)
    return marked


def bursts(events: Sequence[tuple[int, datetime, Any]], window: timedelta, limit: int) -> set[int]:
    """The ids of the events (id, time, patient; in time order) that lie in some span of ``window`` with
    more than ``limit`` distinct patients. One sweep: each window ends at an event."""
    marked: set[int] = set()
    patients: Counter[Any] = Counter()
    left = marked_up_to = 0
    for right, (_, at, patient) in enumerate(events):
        patients[patient] += 1
        while events[left][1] < at - window:
            gone = events[left][2]
            patients[gone] -= 1
            if not patients[gone]:
                del patients[gone]
            left += 1
        if len(patients) > limit:
            marked.update(event[0] for event in events[max(left, marked_up_to) : right + 1])
            marked_up_to = right + 1
    return marked


async def names(session: AsyncSession, entries: Iterable[Access]) -> dict[uuid.UUID, str]:
    """Names of the actors and patients of these entries (one query)."""
    ids = {i for e in entries for i in (e.actor_id, e.person_id) if i is not None}
    if not ids:
        return {}
    rows = await session.execute(
        select(Person.id, Person.given_name, Person.family_name).where(Person.id.in_(ids))
    )
    return {person_id: f"{given} {family}".strip() for person_id, given, family in rows}


# --- the review's own entry ----------------------------------------------------------------------------


async def log_review(
    ctx: Ctx, f: Filter, action: str, entries: Iterable[Access], *, flagged_only: bool
) -> None:
    """Log a review in the caller's transaction: one entry per patient whose entries it showed (so that
    she sees it in her own access log), or one without a patient when it showed none. The object is
    what was filtered on, never the values (a national ID typed in is in no entry)."""
    subjects: set[uuid.UUID | None] = {e.person_id for e in entries if e.person_id is not None}
    if f.subject_id is not None:
        subjects.add(f.subject_id)
    kinds = f.kinds + ("+flagged" if flagged_only else "")
    await audit.record_many(
        ctx.session,
        [
            audit.Entry(
                ctx.actor.person_id, REVIEWER_ROLE, subject, "access_log", kinds, action, "privacy_review"
            )
            for subject in (sorted(subjects, key=str) or [None])
        ],
    )
