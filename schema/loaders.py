"""DataLoaders, made per request (``Context.loader``): each relation of a page of cases costs one
query, whatever the page size."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from legetime.core.platform.db.models import Attachment, JournalNote, Message, PaymentReservation, Person
from legetime.schema.context import Context


def _by_key(context: Context, model: Any, column: Any, order: Any) -> DataLoader[uuid.UUID, list[Any]]:
    async def load(keys: Sequence[uuid.UUID]) -> list[list[Any]]:
        ctx = await context.read()
        rows = (await ctx.session.scalars(select(model).where(column.in_(keys)).order_by(order))).all()
        grouped: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for row in rows:
            grouped[getattr(row, column.key)].append(row)
        return [grouped.get(key, []) for key in keys]

    return DataLoader(load_fn=load)


def messages(context: Context) -> DataLoader[uuid.UUID, list[Message]]:
    return _by_key(context, Message, Message.case_id, Message.created_at)


def attachments(context: Context) -> DataLoader[uuid.UUID, list[Attachment]]:
    return _by_key(context, Attachment, Attachment.case_id, Attachment.created_at)


def journal_notes(context: Context) -> DataLoader[uuid.UUID, list[JournalNote]]:
    return _by_key(context, JournalNote, JournalNote.case_id, JournalNote.created_at)


def reservations(context: Context) -> DataLoader[uuid.UUID, list[PaymentReservation]]:
    return _by_key(context, PaymentReservation, PaymentReservation.case_id, PaymentReservation.created_at)


def persons(context: Context) -> DataLoader[uuid.UUID, Person | None]:
    async def load(keys: Sequence[uuid.UUID]) -> list[Person | None]:
        ctx = await context.read()
        rows = {p.id: p for p in (await ctx.session.scalars(select(Person).where(Person.id.in_(keys)))).all()}
        return [rows.get(key) for key in keys]

    return DataLoader(load_fn=load)
