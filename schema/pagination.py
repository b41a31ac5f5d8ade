"""Cursor connections with a page-size cap: asking for more than the cap is a typed error, not a
silently shortened page."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

import strawberry
from sqlalchemy import Integer, Select, bindparam, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from legetime.core.platform.errors import ErrorCode, LegetimeError
from legetime.schema.input_guard import CONTROL_CHARACTERS

NodeType = TypeVar("NodeType", bound=relay.Node)


class PageSizeTooLarge(LegetimeError):
    code = ErrorCode.PAGE_SIZE_TOO_LARGE


def check_page_size(first: int | None, last: int | None, maximum: int) -> None:
    for name, value in (("first", first), ("last", last)):
        if value is not None and value < 0:
            raise LegetimeError(f"`{name}` must not be negative", field=name)
        if value is not None and value > maximum:
            raise PageSizeTooLarge(f"`{name}` may be at most {maximum}", field=name)


@strawberry.type(name="Connection")
class CappedConnection(relay.ListConnection[NodeType], Generic[NodeType]):
    """A ListConnection that refuses pages larger than ``LEGETIME_MAX_PAGE_SIZE``."""

    @classmethod
    def resolve_connection(cls, nodes: Any, *, info: Any, **kwargs: Any) -> Any:
        settings = info.context.platform.settings
        check_page_size(kwargs.get("first"), kwargs.get("last"), settings.max_page_size)
        if kwargs.get("first") is None and kwargs.get("last") is None:
            kwargs["first"] = settings.default_page_size
        return super().resolve_connection(nodes, info=info, **kwargs)


_CURSOR_ENCODER = json.JSONEncoder(default=str)
"""``json.dumps(values, default=str)``'s encoder, made once: ``dumps`` makes a new one on every call that
passes ``default`` (a page encodes one cursor per row)."""


_QUOTED_AS_IS = (datetime, uuid.UUID)
"""Types whose ``str`` has nothing JSON escapes (asyncpg's UUID is a subclass): a list of them is written
without the encoder."""


def encode_cursor(values: list[Any]) -> str:
    if all(isinstance(value, _QUOTED_AS_IS) for value in values):  # the same text, a page's cursors cheaper
        text = "[" + ", ".join(f'"{value}"' for value in values) + "]"
    else:
        text = _CURSOR_ENCODER.encode(values)
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_cursor(cursor: str) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error):
        raise LegetimeError("Ugyldig cursor.", field="after") from None
    if not isinstance(values, list):
        raise LegetimeError("Ugyldig cursor.", field="after")
    return values


def _storable(value: Any) -> bool:
    """A cursor value the database can compare: a 64-bit integer, a string without control characters."""
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**63
    if isinstance(value, str):
        return CONTROL_CHARACTERS.search(value) is None
    return True


def _page_statement(
    query: Select[Any],
    keys: tuple[Any, ...],
    descending: bool,
    after: bool,
    logged: Callable[[Select[Any], tuple[Any, ...], bool], Select[Any]] | None,
) -> Select[Any]:
    """``query`` in the order of ``keys``, limited, after a cursor: with the limit and the cursor's values as
    parameters (``page_limit``, ``after_0`` …), so that one statement serves every page; ``logged`` makes
    it a statement that logs the rows it shows (``page_size`` of them) too."""
    if after:
        cursor = tuple_(*(bindparam(f"after_{i}", type_=key.type) for i, key in enumerate(keys)))
        query = query.where(tuple_(*keys) < cursor if descending else tuple_(*keys) > cursor)
    order = [key.desc() if descending else key.asc() for key in keys]
    page = query.order_by(*order).limit(bindparam("page_limit", type_=Integer))
    return page if logged is None else logged(page, keys, descending)


_STATEMENTS: dict[tuple[Any, ...], Select[Any]] = {}
"""Page statements of queries made once (``reusable``): a statement reused keeps its cache key, which
SQLAlchemy would otherwise compute again over the whole statement on every execution."""


async def keyset_page(
    session: AsyncSession,
    query: Select[Any],
    keys: tuple[Any, ...],
    *,
    descending: bool,
    first: int | None,
    after: str | None,
    settings: Any,
    parse: tuple[Any, ...],
    scalars: bool = True,
    parameters: Mapping[str, Any] | None = None,
    reusable: bool = False,
    row_type: Callable[[Sequence[Any]], Any] | None = None,
    every_cursor: bool = True,
    logged: Callable[[Select[Any], tuple[Any, ...], bool], Select[Any]] | None = None,
) -> tuple[list[Any], bool, list[str]]:
    """A page by keyset (no OFFSET): rows after the cursor in the order of ``keys``; one query.

    ``parse`` turns each cursor value back into the column's type. ``parameters`` are the query's own bound
    parameters; a ``reusable`` query is one made once (a module's constant), whose page statements are kept.
    Returns rows (each row's first column, or with ``scalars=False`` the rows themselves, their columns by
    name: as ``row_type`` made of the row's values, when given), has-next, cursors. Without
    ``every_cursor`` (no edge's cursor is asked for) only the first and last row get theirs, for the page
    info; the others are empty. ``logged`` (the page statement, the keys, descending) makes the statement
    one that also logs the rows shown (``page_size``: the look-ahead row is not shown)."""
    check_page_size(first, None, settings.max_page_size)
    size = settings.default_page_size if first is None else first
    values = dict(parameters or {}, page_limit=size + 1, page_size=size)
    if after:
        cursor = decode_cursor(after)
        if len(cursor) != len(keys):
            raise LegetimeError("Ugyldig cursor.", field="after")
        try:
            typed = [convert(value) for convert, value in zip(parse, cursor, strict=True)]
        except (TypeError, ValueError):
            raise LegetimeError("Ugyldig cursor.", field="after") from None
        if not all(_storable(value) for value in typed):
            raise LegetimeError("Ugyldig cursor.", field="after")
        values.update((f"after_{i}", value) for i, value in enumerate(typed))
    shape = (query, keys, descending, bool(after), logged)
    statement = _STATEMENTS.get(shape) if reusable else None
    if statement is None:
        statement = _page_statement(*shape)
        if reusable:
            _STATEMENTS[shape] = statement
    if scalars:
        rows = list((await session.scalars(statement, values)).all())
    else:
        result = await session.execute(statement, values)
        rows = list(result.all() if row_type is None else map(row_type, result))
    has_next = len(rows) > size
    rows = rows[:size]
    names = [key.key for key in keys]
    if every_cursor or len(rows) <= 2:
        cursors = [encode_cursor([getattr(row, name) for name in names]) for row in rows]
    else:
        cursors = [""] * len(rows)
        for index in (0, -1):
            cursors[index] = encode_cursor([getattr(rows[index], name) for name in names])
    return rows, has_next, cursors
