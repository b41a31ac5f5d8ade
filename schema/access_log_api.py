"""A patient's own access log: who read or changed her data, and when (Normen). Nobody else's."""

from __future__ import annotations

from datetime import datetime

import strawberry
from sqlalchemy import select

from legetime.core.consultation.access import require_person
from legetime.core.platform.db.models import Person
from legetime.core.platform.errors import LegetimeError
from legetime.core.protection import audit
from legetime.schema.context import Info
from legetime.schema.pagination import check_page_size


@strawberry.type(description="One access to your data.")
class AccessLogEntry:
    id: strawberry.ID
    occurred_at: datetime
    actor_name: str | None = strawberry.field(description="Who (null: the platform itself).")
    actor_role: str
    object_type: str
    action: str
    reason: str | None


@strawberry.type
class AccessLogQuery:
    @strawberry.field(description="Who accessed your data, newest first. Page on with `before` = last id.")
    async def my_access_log(
        self, info: Info, first: int = 50, before: strawberry.ID | None = None
    ) -> list[AccessLogEntry]:
        ctx = await info.context.read()
        person_id = require_person(ctx.actor)
        check_page_size(first, None, ctx.platform.settings.max_page_size)
        before_id = _entry_id(before)
        rows = await audit.access_log_for(ctx.session, person_id, limit=first, before_id=before_id)
        actor_ids = {row.actor_id for row in rows if row.actor_id is not None}
        names = {
            p.id: f"{p.given_name} {p.family_name}".strip()
            for p in (await ctx.session.scalars(select(Person).where(Person.id.in_(actor_ids)))).all()
        }
        return [
            AccessLogEntry(
                id=strawberry.ID(str(row.id)),
                occurred_at=row.occurred_at,
                actor_name=names.get(row.actor_id) if row.actor_id else None,
                actor_role=row.actor_role,
                object_type=row.object_type,
                action=row.action,
                reason=row.reason,
            )
            for row in rows
        ]


def _entry_id(before: str | None) -> int | None:
    """The id to page on from; anything that is not one (or does not fit the column) is a typed error."""
    if before is None:
        return None
    text = str(before)
    if not (text.isascii() and text.isdigit()) or int(text) >= 2**63:
        raise LegetimeError("Ugyldig `before`: bruk id-en til den siste oppføringen du fikk.", field="before")
    return int(text)
