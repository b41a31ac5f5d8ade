"""Built-in scheduling: opening hours that operators keep in Legetime, and the bookings of their slots.

* **Hours.** Weekly periods per clinic, clinician and weekday (``builtin_schedule_hours``), in Europe/Oslo
  local time, each cut into slots of ``slot_minutes`` for the appointment types it lists. Replacing a
  clinic's hours is one transaction (serialized per clinic); bookings are never touched by it.
* **Slots are computed, not stored.** A slot is a local start time in a period, turned into an instant with
  ``zoneinfo`` on its own date: 09:00 in Oslo is 08:00 UTC in winter (CET) and 07:00 UTC in summer (CEST).
  A local time that does not exist (the spring gap) is no slot; one that occurs twice (the autumn fold) is
  offered once, at its first occurrence. A slot's length is elapsed time.
* **Slot ids** are opaque and tamper-evident: the clinic, clinician, start (epoch seconds), length and type,
  with an HMAC under a key derived from the master secret. ``book`` checks the HMAC and then that the slot
  still exists in the current hours, in the future, for its type — an id from before the hours changed is
  ``NotFound``.
* **No double booking.** A booking is a row; a partial UNIQUE index on (clinic, clinician, start) over the
  live rows (``released_at IS NULL``) lets exactly one of concurrent INSERTs of a slot commit, on
  PostgreSQL and SQLite alike; the others get ``SlotTaken``. Released bookings stay, with ``released_at``,
  outside the index, so a released slot can be booked again.
* **Idempotency by reference.** A second partial UNIQUE index holds one live booking per reference: booking
  the same slot again with the same reference returns the same booking; booking another slot with a
  reference that holds a live booking raises ``IdempotencyConflict`` (release first, then book: a moved
  appointment). After a release the reference is free again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import (
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    Time,
    Uuid,
    delete,
    exc,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.sdk import (
    Booking,
    Capability,
    IdempotencyConflict,
    NotFound,
    OpeningHours,
    PluginDatabase,
    PluginTables,
    ProviderCheck,
    ProviderContext,
    ProviderSettings,
    ProviderSpec,
    ProviderUnavailable,
    ScheduleManagement,
    Slot,
    SlotQuery,
    SlotTaken,
    UTCDateTime,
    ValidationError,
    Weekday,
    hookimpl,
)

T = TypeVar("T")

NAME = "builtin"
OSLO = ZoneInfo("Europe/Oslo")
SLOT_KEY_PURPOSE = "scheduling-builtin-slot-id"
MIN_SLOT_MINUTES, MAX_SLOT_MINUTES = 5, 240
MAX_TYPE_LENGTH = 64
MAX_REFERENCE_LENGTH = 200
MAX_LIMIT = 500
MAX_WINDOW = timedelta(days=400)

NO_SUCH_SLOT = "Fant ikke timen. Velg en annen ledig time."
SLOT_TAKEN = "Timen ble nettopp bestilt av noen andre. Velg en annen ledig time."
UNAVAILABLE = "Timebestillingen svarer ikke akkurat nå. Prøv igjen om litt."

log = structlog.get_logger(__name__)

LIVE = text("released_at IS NULL")
metadata = MetaData()
hours_table = Table(
    "builtin_schedule_hours",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("clinic_id", Uuid, nullable=False),
    Column("clinician_id", Uuid, nullable=False),
    Column("weekday", Integer, nullable=False),
    Column("opens", Time, nullable=False),
    Column("closes", Time, nullable=False),
    Column("slot_minutes", Integer, nullable=False),
    Column("appointment_types", Text, nullable=False),  # a JSON list of codes
    CheckConstraint("weekday BETWEEN 1 AND 7", name="ck_builtin_schedule_hours_weekday"),
    CheckConstraint("opens < closes", name="ck_builtin_schedule_hours_period"),
    CheckConstraint("slot_minutes BETWEEN 5 AND 240", name="ck_builtin_schedule_hours_slot_minutes"),
    Index("ix_builtin_schedule_hours_clinic", "clinic_id"),
)
bookings_table = Table(
    "builtin_schedule_booking",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("clinic_id", Uuid, nullable=False),
    Column("clinician_id", Uuid, nullable=False),
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("ends_at", UTCDateTime(), nullable=False),
    Column("appointment_type", String(MAX_TYPE_LENGTH), nullable=False),
    Column("reference", String(MAX_REFERENCE_LENGTH), nullable=False),
    Column("booked_at", UTCDateTime(), nullable=False),
    Column("released_at", UTCDateTime()),
    # Exactly one live booking per slot: of concurrent INSERTs of one slot, one commits.
    Index(
        "uq_builtin_schedule_booking_live_slot",
        "clinic_id",
        "clinician_id",
        "starts_at",
        unique=True,
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    ),
    # Exactly one live booking per reference (the idempotency key).
    Index(
        "uq_builtin_schedule_booking_live_reference",
        "reference",
        unique=True,
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    ),
    Index("ix_builtin_schedule_booking_clinic_starts", "clinic_id", "starts_at"),
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SlotIdentity:
    """What a slot id says: a slot's place in the hours, checked against them again when booked."""

    clinic_id: uuid.UUID
    clinician_id: uuid.UUID
    starts_at: datetime
    minutes: int
    appointment_type: str

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.minutes)


class SlotIds:
    """Encodes and verifies slot ids: ``<base64url payload>.<HMAC-SHA256, 128 bits, hex>``."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, slot: SlotIdentity) -> str:
        payload = "|".join(
            (
                slot.clinic_id.hex,
                slot.clinician_id.hex,
                str(int(slot.starts_at.timestamp())),
                str(slot.minutes),
                slot.appointment_type,
            )
        ).encode()
        body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
        return f"{body}.{self._mac(body)}"

    def decode(self, slot_id: str) -> SlotIdentity:
        """The slot an id names; ``NotFound`` for anything this provider did not issue."""
        body, dot, mac = slot_id.partition(".")
        if not dot or not hmac.compare_digest(mac, self._mac(body)):
            raise NotFound(NO_SUCH_SLOT, field="slot_id")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
            clinic, clinician, epoch, minutes, kind = payload.split("|", 4)
            return SlotIdentity(
                clinic_id=uuid.UUID(hex=clinic),
                clinician_id=uuid.UUID(hex=clinician),
                starts_at=datetime.fromtimestamp(int(epoch), UTC),
                minutes=int(minutes),
                appointment_type=kind,
            )
        except ValueError as error:  # our own MAC over a payload we did not write: a changed format
            raise NotFound(NO_SUCH_SLOT, field="slot_id") from error

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]


class BuiltinScheduling:
    """Opening hours and bookings in the platform's database. Implements ``legetime.sdk.SchedulingProvider``.

    ``now`` is the clock seam: tests pass their own to look at a given week (DST changes) without waiting.
    """

    name = NAME
    management = ScheduleManagement(
        opening_hours=True,
        notes=["Åpningstider og ledige timer føres i Legetime (Europe/Oslo lokal tid)."],
    )

    def __init__(
        self, database: PluginDatabase, slot_key: bytes, *, now: Callable[[], datetime] = _utcnow
    ) -> None:
        self._db = database
        self._ids = SlotIds(slot_key)
        self._clock = now

    # --- SchedulingProvider ------------------------------------------------------------------------

    async def find_slots(self, query: SlotQuery) -> list[Slot]:
        not_before, not_after = _check_query(query)
        not_before = max(not_before, self._now())
        if not_before >= not_after:
            return []

        async def load(session: AsyncSession) -> tuple[list[OpeningHours], set[tuple[uuid.UUID, datetime]]]:
            hours = await _load_hours(session, query.clinic_id, query.clinician_id)
            booked = select(bookings_table.c.clinician_id, bookings_table.c.starts_at).where(
                bookings_table.c.clinic_id == query.clinic_id,
                bookings_table.c.released_at.is_(None),
                bookings_table.c.starts_at >= not_before,
                bookings_table.c.starts_at < not_after,
            )
            return hours, {(row.clinician_id, row.starts_at) for row in await session.execute(booked)}

        hours, booked = await self._run(load)
        hours = [period for period in hours if query.appointment_type in period.appointment_types]
        found: list[Slot] = []
        day = not_before.astimezone(OSLO).date()
        last = not_after.astimezone(OSLO).date()
        while day <= last and len(found) < query.limit:
            for slot in sorted(_slots_on(day, hours, query.appointment_type), key=_slot_order):
                free = (slot.clinician_id, slot.starts_at) not in booked
                if free and not_before <= slot.starts_at < not_after:
                    found.append(self._slot(slot))
            day += timedelta(days=1)
        return found[: query.limit]

    async def book(self, slot_id: str, reference: str) -> Booking:
        if not reference or len(reference) > MAX_REFERENCE_LENGTH:
            raise ValidationError(f"Referansen må ha 1–{MAX_REFERENCE_LENGTH} tegn.", field="reference")
        wanted = self._ids.decode(slot_id)
        now = self._now()

        async def work(session: AsyncSession) -> Booking:
            held = await _live_booking(session, bookings_table.c.reference == reference)
            if held is not None:
                return self._held(held, wanted)
            if wanted.starts_at <= now or not _offered(
                wanted, await _load_hours(session, wanted.clinic_id, wanted.clinician_id)
            ):
                raise NotFound(NO_SUCH_SLOT, field="slot_id")
            booking_id = uuid.uuid4()
            await session.execute(
                insert(bookings_table).values(
                    id=booking_id,
                    clinic_id=wanted.clinic_id,
                    clinician_id=wanted.clinician_id,
                    starts_at=wanted.starts_at,
                    ends_at=wanted.ends_at,
                    appointment_type=wanted.appointment_type,
                    reference=reference,
                    booked_at=now,
                )
            )
            return Booking(provider_id=str(booking_id), slot=self._slot(wanted), reference=reference)

        try:
            booking = await self._run(work)
        except exc.IntegrityError:
            # Another transaction committed a live booking of this slot or of this reference first (its
            # INSERT won the unique index; ours was rolled back whole). Look at what it booked.
            booking = await self._run(lambda session: self._after_race(session, wanted, reference))
        log.info(
            "scheduling.booked",
            provider=NAME,
            booking_id=booking.provider_id,
            clinic_id=str(wanted.clinic_id),
        )
        return booking

    async def release(self, booking_id: str) -> None:
        key = _booking_key(booking_id)
        now = self._now()

        async def work(session: AsyncSession) -> bool:
            result = await session.execute(
                update(bookings_table)
                .where(bookings_table.c.id == key, bookings_table.c.released_at.is_(None))
                .values(released_at=now)
            )
            if getattr(result, "rowcount", 0):
                return True
            if await session.scalar(select(bookings_table.c.id).where(bookings_table.c.id == key)) is None:
                raise NotFound("Fant ikke bestillingen.", field="booking_id")
            return False  # released before: nothing to do

        if await self._run(work):
            log.info("scheduling.released", provider=NAME, booking_id=booking_id)

    async def opening_hours(self, clinic_id: uuid.UUID) -> list[OpeningHours]:
        return await self._run(lambda session: _load_hours(session, clinic_id, None))

    async def set_opening_hours(self, clinic_id: uuid.UUID, hours: list[OpeningHours]) -> None:
        rows = check_hours(clinic_id, hours)

        async def work(session: AsyncSession) -> None:
            if session.get_bind().dialect.name == "postgresql":
                # Two operators saving one clinic's hours at once: the second waits for the first, then
                # replaces its rows (a READ COMMITTED DELETE would not see the first one's new rows).
                lock = _advisory_key(clinic_id)
                await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock})
            await session.execute(delete(hours_table).where(hours_table.c.clinic_id == clinic_id))
            if rows:
                await session.execute(insert(hours_table), rows)

        await self._run(work)
        log.info("scheduling.hours_set", provider=NAME, clinic_id=str(clinic_id), periods=len(rows))

    async def check(self) -> ProviderCheck:
        """The tables answer (read only)."""
        try:
            async with self._db.transaction() as session:
                await session.execute(select(hours_table.c.id).limit(1))
                await session.execute(select(bookings_table.c.id).limit(1))
        except (exc.DBAPIError, OSError):  # asyncpg raises OSError when the server cannot be reached
            return ProviderCheck(False, "The database of the built-in scheduling is unreachable.")
        return ProviderCheck(True, "The built-in scheduling's opening hours and bookings are reachable.")

    # --- Internals ---------------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        return now if now.tzinfo is not None else now.replace(tzinfo=UTC)

    def _slot(self, slot: SlotIdentity) -> Slot:
        return Slot(
            provider_id=self._ids.encode(slot),
            clinic_id=slot.clinic_id,
            clinician_id=slot.clinician_id,
            appointment_type=slot.appointment_type,
            starts_at=slot.starts_at,
            ends_at=slot.ends_at,
        )

    def _booking(self, row: Row[Any]) -> Booking:
        slot = SlotIdentity(
            clinic_id=row.clinic_id,
            clinician_id=row.clinician_id,
            starts_at=row.starts_at,
            minutes=int((row.ends_at - row.starts_at).total_seconds() // 60),
            appointment_type=row.appointment_type,
        )
        return Booking(provider_id=str(row.id), slot=self._slot(slot), reference=row.reference)

    def _held(self, row: Row[Any], wanted: SlotIdentity) -> Booking:
        """The live booking a reference holds: the replay when it is of the wanted slot, else a conflict."""
        booking = self._booking(row)
        if (row.clinic_id, row.clinician_id, row.starts_at, booking.slot.appointment_type) != (
            wanted.clinic_id,
            wanted.clinician_id,
            wanted.starts_at,
            wanted.appointment_type,
        ):
            raise IdempotencyConflict(
                "Referansen har allerede en annen time. Avbestill den før en ny bestilles.",
                field="reference",
            )
        return booking

    async def _after_race(self, session: AsyncSession, wanted: SlotIdentity, reference: str) -> Booking:
        held = await _live_booking(session, bookings_table.c.reference == reference)
        if held is not None:
            return self._held(held, wanted)
        log.info("scheduling.slot_taken", provider=NAME, clinic_id=str(wanted.clinic_id))
        raise SlotTaken(SLOT_TAKEN, field="slot_id")

    async def _run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        try:
            async with self._db.transaction() as session:
                return await work(session)
        except exc.IntegrityError:
            raise  # a unique index refused a second live booking: for the caller to judge
        except (exc.DBAPIError, OSError) as error:  # unreachable, gone, locked for too long
            log.warning("scheduling.store_unavailable", provider=NAME, error=type(error).__name__)
            raise ProviderUnavailable(UNAVAILABLE) from error


# --- Hours -----------------------------------------------------------------------------------------


def check_hours(clinic_id: uuid.UUID, hours: Sequence[OpeningHours]) -> list[dict[str, Any]]:
    """The rows to store for a clinic's hours, or ``ValidationError`` naming the first bad field
    (``hours.<index>.<field>``)."""
    rows: list[dict[str, Any]] = []
    for index, period in enumerate(hours):
        where = f"hours.{index}"
        if period.clinic_id != clinic_id:
            raise ValidationError("Åpningstiden gjelder en annen klinikk.", field=f"{where}.clinic_id")
        try:
            weekday = Weekday(period.weekday)
        except ValueError as error:
            message = "Ukedagen må være 1 (mandag) til 7 (søndag)."
            raise ValidationError(message, field=f"{where}.weekday") from error
        for name, moment in (("opens", period.opens), ("closes", period.closes)):
            if moment.tzinfo is not None or moment.second or moment.microsecond:
                raise ValidationError(
                    "Klokkeslettet oppgis i hele minutter, lokal tid uten tidssone.", field=f"{where}.{name}"
                )
        if period.opens >= period.closes:
            raise ValidationError("Åpningstiden må slutte etter at den begynner.", field=f"{where}.closes")
        if not MIN_SLOT_MINUTES <= period.slot_minutes <= MAX_SLOT_MINUTES:
            raise ValidationError(
                f"En time må vare {MIN_SLOT_MINUTES}–{MAX_SLOT_MINUTES} minutter.",
                field=f"{where}.slot_minutes",
            )
        if _minutes(period.closes) - _minutes(period.opens) < period.slot_minutes:
            raise ValidationError("Åpningstiden er kortere enn én time.", field=f"{where}.slot_minutes")
        types = tuple(period.appointment_types)
        if not types:
            raise ValidationError("Velg minst én timetype.", field=f"{where}.appointment_types")
        if any(not code or len(code) > MAX_TYPE_LENGTH or "|" in code for code in types):
            raise ValidationError("Ugyldig kode for timetype.", field=f"{where}.appointment_types")
        for other_index, other in enumerate(hours[:index]):
            if (
                other.clinician_id == period.clinician_id
                and other.weekday == weekday
                and other.opens < period.closes
                and period.opens < other.closes
            ):
                raise ValidationError(
                    f"Overlapper åpningstid nummer {other_index + 1} for samme behandler og ukedag.",
                    field=f"{where}.opens",
                )
        rows.append(
            {
                "clinic_id": clinic_id,
                "clinician_id": period.clinician_id,
                "weekday": int(weekday),
                "opens": period.opens,
                "closes": period.closes,
                "slot_minutes": period.slot_minutes,
                "appointment_types": json.dumps(list(dict.fromkeys(types))),
            }
        )
    return rows


async def _load_hours(
    session: AsyncSession, clinic_id: uuid.UUID, clinician_id: uuid.UUID | None
) -> list[OpeningHours]:
    query = select(hours_table).where(hours_table.c.clinic_id == clinic_id)
    if clinician_id is not None:
        query = query.where(hours_table.c.clinician_id == clinician_id)
    order = (hours_table.c.clinician_id, hours_table.c.weekday, hours_table.c.opens)
    return [
        OpeningHours(
            clinic_id=row.clinic_id,
            clinician_id=row.clinician_id,
            weekday=Weekday(row.weekday),
            opens=row.opens,
            closes=row.closes,
            slot_minutes=row.slot_minutes,
            appointment_types=tuple(json.loads(row.appointment_types)),
        )
        for row in await session.execute(query.order_by(*order))
    ]


def _slots_on(day: date, hours: Iterable[OpeningHours], appointment_type: str) -> Iterator[SlotIdentity]:
    """The slots of one local date, from the periods of its weekday."""
    for period in hours:
        if period.weekday != day.isoweekday():
            continue
        start, end = _minutes(period.opens), _minutes(period.closes)
        for minute in range(start, end - period.slot_minutes + 1, period.slot_minutes):
            starts_at = _instant(day, minute)
            if starts_at is not None:
                yield SlotIdentity(
                    clinic_id=period.clinic_id,
                    clinician_id=period.clinician_id,
                    starts_at=starts_at,
                    minutes=period.slot_minutes,
                    appointment_type=appointment_type,
                )


def _offered(slot: SlotIdentity, hours: Iterable[OpeningHours]) -> bool:
    """Whether the current hours still make this slot, of its type and length."""
    periods = [
        period
        for period in hours
        if period.slot_minutes == slot.minutes and slot.appointment_type in period.appointment_types
    ]
    day = slot.starts_at.astimezone(OSLO).date()
    return any(candidate == slot for candidate in _slots_on(day, periods, slot.appointment_type))


def _instant(day: date, minute: int) -> datetime | None:
    """A local wall-clock time on a date as a UTC instant; None when the clock skips it (spring)."""
    local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=OSLO)  # fold=0: the first
    instant = local.astimezone(UTC)
    if instant.astimezone(OSLO).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None
    return instant


def _minutes(moment: time) -> int:
    return moment.hour * 60 + moment.minute


def _slot_order(slot: SlotIdentity) -> tuple[datetime, str]:
    return slot.starts_at, slot.clinician_id.hex


def _check_query(query: SlotQuery) -> tuple[datetime, datetime]:
    for name in ("not_before", "not_after"):
        if getattr(query, name).tzinfo is None:
            raise ValidationError("Tidspunktet må ha tidssone.", field=name)
    if query.not_after <= query.not_before:
        raise ValidationError("Perioden må slutte etter at den begynner.", field="not_after")
    if query.not_after - query.not_before > MAX_WINDOW:
        raise ValidationError(f"Søk i høyst {MAX_WINDOW.days} dager om gangen.", field="not_after")
    if not 1 <= query.limit <= MAX_LIMIT:
        raise ValidationError(f"Antallet må være 1–{MAX_LIMIT}.", field="limit")
    if not query.appointment_type:
        raise ValidationError("Velg en timetype.", field="appointment_type")
    return query.not_before.astimezone(UTC), query.not_after.astimezone(UTC)


async def _live_booking(session: AsyncSession, condition: Any) -> Row[Any] | None:
    query = select(bookings_table).where(condition, bookings_table.c.released_at.is_(None))
    return (await session.execute(query)).first()


def _booking_key(booking_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(booking_id)
    except ValueError as error:
        raise NotFound("Fant ikke bestillingen.", field="booking_id") from error


def _advisory_key(clinic_id: uuid.UUID) -> int:
    """A signed 64-bit key for ``pg_advisory_xact_lock``, per clinic."""
    digest = hashlib.sha256(b"builtin_schedule:" + clinic_id.bytes).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# --- Plugin ----------------------------------------------------------------------------------------


def create_provider(
    settings: ProviderSettings, context: ProviderContext, *, now: Callable[[], datetime] = _utcnow
) -> BuiltinScheduling:
    """The ``ProviderSpec`` factory. ``now`` is for tests (the platform never passes it)."""
    return BuiltinScheduling(context.database, context.derive_key(SLOT_KEY_PURPOSE), now=now)


@hookimpl
def register_providers() -> Iterable[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.SCHEDULING,
            name=NAME,
            factory=create_provider,
            description="Opening hours and bookable slots kept in Legetime and managed by operators.",
        )
    ]


@hookimpl
def register_tables() -> PluginTables:
    migrations = Path(__file__).parent / "migrations" / "builtin_schedule"
    return PluginTables("builtin_schedule", metadata, migrations)


@hookimpl
def plugin_info() -> Mapping[str, str]:
    return {"description": "Built-in scheduling: clinics' opening hours and bookable slots."}
