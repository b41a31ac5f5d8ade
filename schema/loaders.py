"""DataLoaders, made per request (``Context.loader``): each relation of a page of cases costs one
query, whatever the page size. A page that knows all its keys at once (``Case.page``) calls the batch
functions (``rows_by_key``, ``persons_by_id``) itself: the same query, without a future per key.

Their statements are built once per process (``_keyed``), the keys a bound parameter: building a
statement costs more than running it. On PostgreSQL the keys are one array (``= ANY($1)``), so that the
statement's text is the same for any number of keys (one prepared statement; no list rendered into the
SQL on every call); elsewhere an expanding ``IN``."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from legetime.core.platform.db.models import (
    Attachment,
    JournalNote,
    Message,
    PaymentReservation,
    Person,
    StaffMembership,
    StaffRole,
)
from legetime.schema.context import Context

_STATEMENTS: dict[tuple[Any, ...], Select[Any]] = {}


def _keyed(session: AsyncSession, model: Any, column: Any, order: Any | None) -> Select[Any]:
    """``select(model).where(column IN :keys).order_by(order)``, built once per dialect kind."""
    postgresql = session.bind is not None and session.bind.dialect.name == "postgresql"
    cache_key = (model, column, order, postgresql)
    statement = _STATEMENTS.get(cache_key)
    if statement is None:
        if postgresql:
            condition = column == any_(bindparam("keys", type_=ARRAY(column.type)))
        else:
            condition = column.in_(bindparam("keys", expanding=True))
        statement = select(model).where(condition)
        if order is not None:
            statement = statement.order_by(order)
        statement = _STATEMENTS.setdefault(cache_key, statement)
    return statement


async def rows_by_key(
    session: AsyncSession, model: Any, column: Any, order: Any, keys: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[Any]]:
    """The rows whose ``column`` is one of ``keys``, in ``order``, by key (one query)."""
    wanted = list(dict.fromkeys(keys))
    rows = (await session.scalars(_keyed(session, model, column, order), {"keys": wanted})).all()
    grouped: dict[uuid.UUID, list[Any]] = defaultdict(list)
    key = column.key
    for row in rows:
        grouped[getattr(row, key)].append(row)
    return grouped


async def persons_by_id(session: AsyncSession, keys: Iterable[uuid.UUID]) -> dict[uuid.UUID, Person]:
    wanted = list(dict.fromkeys(keys))
    rows = await session.scalars(_keyed(session, Person, Person.id, None), {"keys": wanted})
    return {p.id: p for p in rows.all()}


def _by_key(context: Context, model: Any, column: Any, order: Any) -> DataLoader[uuid.UUID, list[Any]]:
    async def load(keys: Sequence[uuid.UUID]) -> list[list[Any]]:
        ctx = await context.read()
        grouped = await rows_by_key(ctx.session, model, column, order, keys)
        return [grouped.get(key, []) for key in keys]

    return DataLoader(load_fn=load)


def messages(context: Context) -> DataLoader[uuid.UUID, list[Message]]:
    return _by_key(context, Message, Message.case_id, Message.created_at)


def attachments(context: Context) -> DataLoader[uuid.UUID, list[Attachment]]:
    return _by_key(context, Attachment, Attachment.case_id, Attachment.created_at)


def journal_notes(context: Context) -> DataLoader[uuid.UUID, list[JournalNote]]:
    return _by_key(context, JournalNote, JournalNote.case_id, JournalNote.created_at)


def hpr_numbers(context: Context) -> DataLoader[uuid.UUID, str | None]:
    """A clinician's HPR number by person id (kept when her role has ended: it names her notes)."""

    async def load(keys: Sequence[uuid.UUID]) -> list[str | None]:
        ctx = await context.read()
        rows = await ctx.session.execute(
            select(StaffMembership.person_id, StaffMembership.hpr_number).where(
                StaffMembership.person_id.in_(list(dict.fromkeys(keys))),
                StaffMembership.role == StaffRole.CLINICIAN,
            )
        )
        numbers = {person_id: hpr for person_id, hpr in rows.all()}
        return [numbers.get(key) for key in keys]

    return DataLoader(load_fn=load)


RESERVATIONS = (PaymentReservation, PaymentReservation.case_id, PaymentReservation.created_at)


def reservations(context: Context) -> DataLoader[uuid.UUID, list[PaymentReservation]]:
    return _by_key(context, *RESERVATIONS)


def persons(context: Context) -> DataLoader[uuid.UUID, Person | None]:
    async def load(keys: Sequence[uuid.UUID]) -> list[Person | None]:
        ctx = await context.read()
        rows = await persons_by_id(ctx.session, keys)
        return [rows.get(key) for key in keys]

    return DataLoader(load_fn=load)
