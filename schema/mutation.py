"""Running a mutation: one transaction, typed errors in the payload, nothing half-stored on failure."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.orm.exc import StaleDataError
from strawberry import relay

from legetime.core.consultation.questionnaire import AnswersInvalid
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.errors import ErrorCode, LegetimeError, NotFound
from legetime.schema.context import Info
from legetime.schema.errors import Error

T = TypeVar("T")


async def mutate(info: Info, work: Callable[[Ctx], Awaitable[T]]) -> tuple[T | None, list[Error]]:
    platform = info.context.platform
    try:
        async with platform.db.transaction() as session:
            result = await work(Ctx(session=session, platform=platform, actor=info.context.actor))
        return result, []
    except AnswersInvalid as exc:
        return None, [
            Error(field=f"answers.{e.question_id}", code=e.code, message=e.message) for e in exc.errors
        ]
    except LegetimeError as exc:
        return None, [Error.from_exception(exc)]
    except StaleDataError:
        message = "Saken ble endret samtidig. Prøv igjen."
        return None, [Error(field=None, code=ErrorCode.CONFLICT, message=message)]


def global_uuid(value: str, field: str = "caseId") -> uuid.UUID:
    """The UUID inside a Relay global ID (a bare UUID is accepted too); "not found" when it is neither."""
    try:
        return uuid.UUID(relay.GlobalID.from_id(value).node_id)
    except Exception:
        try:
            return uuid.UUID(value)
        except ValueError:
            raise NotFound("Fant ikke objektet.", field=field) from None
