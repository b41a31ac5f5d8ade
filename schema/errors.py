"""Typed mutation errors (``errors { field code message }``) and what the client may see of failures."""

from __future__ import annotations

from collections.abc import Iterator

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from legetime.core.platform.errors import ErrorCode as CoreErrorCode
from legetime.core.platform.errors import LegetimeError

ErrorCode = strawberry.enum(CoreErrorCode, name="ErrorCode", description="Why an operation was refused.")


@strawberry.type(description="A problem with the input or the state; `field` names the input it concerns.")
class Error:
    field: str | None
    code: ErrorCode  # type: ignore[valid-type]
    message: str

    @classmethod
    def from_exception(cls, exc: LegetimeError) -> Error:
        return cls(field=exc.field, code=exc.code, message=exc.message)


def should_mask_error(error: GraphQLError) -> bool:
    """In production, mask everything unexpected; our own errors and GraphQL validation are safe to show."""
    original = error.original_error
    return original is not None and not isinstance(original, LegetimeError)


class DomainErrorExtensions(SchemaExtension):
    """Top-level errors caused by a domain error carry its ``code`` and ``field`` in ``extensions``."""

    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        for error in getattr(result, "errors", None) or ():
            original = error.original_error
            if isinstance(original, LegetimeError):
                error.extensions = {
                    **(error.extensions or {}),
                    "code": original.code.value,
                    "field": original.field,
                }
