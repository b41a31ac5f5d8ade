"""Typed mutation errors (``errors { field code message }``) and what the client may see of failures."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import strawberry
import structlog
from graphql import GraphQLError, OperationDefinitionNode
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.extensions import SchemaExtension

from legetime.core.platform.db.engine import is_unavailable
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


CLIENT_ERRORS = frozenset(
    {
        CoreErrorCode.BAD_REQUEST,
        CoreErrorCode.GRAPHQL_PARSE_FAILED,
        CoreErrorCode.GRAPHQL_VALIDATION_FAILED,
        CoreErrorCode.BAD_USER_INPUT,
    }
)
"""Top-level codes that mean the request itself was wrong: the operation did not run (HTTP 400 for a
client that accepts ``application/graphql-response+json``)."""

MASKED_MESSAGE = "Uventet feil."
UNAVAILABLE_MESSAGE = "Tjenesten er midlertidig utilgjengelig. Prøv igjen om litt."


def code_of(error: GraphQLError) -> CoreErrorCode | None:
    code = (error.extensions or {}).get("code")
    try:
        return CoreErrorCode(code) if code else None
    except ValueError:
        return None


def _classify(error: GraphQLError) -> tuple[CoreErrorCode, str | None]:
    """The code of an error raised while running the operation (the phase before ran clean)."""
    original = error.original_error
    if isinstance(original, LegetimeError):
        return original.code, original.field
    if original is None or isinstance(original, GraphQLError | StrawberryInputCoercionError):
        # Variable coercion ("Variable '$n' has invalid value …"), a scalar that cannot hold the value,
        # a global ID that is not one: what the client sent does not fit the schema.
        return CoreErrorCode.BAD_USER_INPUT, None
    if is_unavailable(original):
        return CoreErrorCode.UNAVAILABLE, None
    return CoreErrorCode.INTERNAL, None


class ErrorCodes(SchemaExtension):
    """Every top-level error carries ``extensions.code`` from ``ErrorCode`` (and ``field`` where one input
    is at fault), whichever phase refused it: parsing, validation, or running. An unexpected error is
    masked in production (its message says nothing of the cause); the client's own mistakes never are.

    Also refuses a document of several operations without ``operationName``: the GraphQL spec requires
    the name then, and guessing which one to run could run the wrong mutation."""

    def __init__(self, *, mask: bool = False) -> None:
        self.mask = mask

    def on_parse(self) -> Iterator[None]:
        yield
        self._tag_pre_execution(CoreErrorCode.GRAPHQL_PARSE_FAILED)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        # ``operation_name`` falls back to the first operation's name; what the client sent is kept apart.
        provided = getattr(context, "_provided_operation_name", None)
        if document is not None and not provided:
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            if len(operations) > 1:
                context.pre_execution_errors = [
                    GraphQLError(
                        "Dokumentet har flere operasjoner: oppgi operationName.",
                        extensions={"code": CoreErrorCode.GRAPHQL_VALIDATION_FAILED.value, "field": None},
                    )
                ]
        yield
        self._tag_pre_execution(CoreErrorCode.GRAPHQL_VALIDATION_FAILED)

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None) or []
        for index, error in enumerate(errors):
            if code_of(error) is not None:
                continue
            code, field = _classify(error)
            message = {CoreErrorCode.UNAVAILABLE: UNAVAILABLE_MESSAGE}.get(code)
            if code is CoreErrorCode.INTERNAL and self.mask:
                message = MASKED_MESSAGE
            if message is not None:  # the driver's or the bug's own words stay in the server
                error = errors[index] = GraphQLError(
                    message,
                    nodes=error.nodes,
                    source=error.source,
                    positions=error.positions,
                    path=error.path,
                )
            error.extensions = {**(error.extensions or {}), "code": code.value, "field": field}

    def _tag_pre_execution(self, code: CoreErrorCode) -> None:
        for error in self.execution_context.pre_execution_errors or ():
            if code_of(error) is None:
                error.extensions = {**(error.extensions or {}), "code": code.value, "field": None}


_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")

log = structlog.get_logger("legetime.graphql")


def log_errors(errors: list[GraphQLError], execution_context: Any = None) -> None:
    """What the server log gets of a request's errors: the code, the path and the operation's name —
    never the message (it can quote a variable's value: a national ID, an answer), never the document.
    A traceback only for the unexpected; the client's mistakes and expected refusals are one line."""
    provided = getattr(execution_context, "_provided_operation_name", None)
    operation = provided if isinstance(provided, str) and _NAME.fullmatch(provided) else None
    for error in errors:
        code = code_of(error) or _classify(error)[0]
        path = ".".join(str(part) for part in error.path) if error.path else None
        if code is CoreErrorCode.INTERNAL:
            original = error.original_error
            log.error(
                "graphql.error",
                code=code.value,
                path=path,
                operation=operation,
                error=type(original).__name__ if original else None,
                exc_info=original,
            )
        elif code is CoreErrorCode.UNAVAILABLE:
            log.warning("graphql.unavailable", code=code.value, path=path, operation=operation)
        else:
            log.info("graphql.refused", code=code.value, path=path, operation=operation)
