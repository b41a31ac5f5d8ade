"""Cursor connections with a page-size cap: asking for more than the cap is a typed error, not a
silently shortened page."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import strawberry
from strawberry import relay

from core.errors import ErrorCode, LegetimeError

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
