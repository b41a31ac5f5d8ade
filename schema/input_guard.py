"""Every string a client sends is checked once per request, before anything runs: no control characters
(a NUL byte reaches PostgreSQL as "invalid byte sequence", others hide text or break an SMS), and no
string longer than any field of ours takes. Rules of one field (its own length, format) stay with the
field in the core; this is the floor under all of them, plugins' fields included.

What is checked is what the client sent: the document's string literals and the variables, walked once
when the request is validated — not every resolver's arguments, which would put a wrapper around every
field of every response. A document sent again is the same parsed document (``legetime.schema.documents``):
its literals are collected once, and checked, with the variables, on every request.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from graphql import ArgumentNode, DocumentNode, GraphQLError, ObjectFieldNode, StringValueNode, Visitor, visit
from strawberry.extensions import SchemaExtension

from legetime.core.platform.errors import ErrorCode

CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""C0 controls and DEL, but tab, line feed and carriage return: those belong in a message."""
MAX_STRING_LENGTH = 20_000


def problem_with(text: str) -> str | None:
    if CONTROL_CHARACTERS.search(text):
        return "Teksten inneholder kontrolltegn som ikke er tillatt."
    if len(text) > MAX_STRING_LENGTH:
        return f"Teksten er for lang (høyst {MAX_STRING_LENGTH} tegn)."
    return None


def _variables(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield value, path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _variables(key, path)
            yield from _variables(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _variables(item, f"{path}.{index}")


class _Literals(Visitor):
    """The document's string literals, each with the argument and input fields it stands in."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def enter_string_value(
        self, node: StringValueNode, key: Any, parent: Any, path: Any, ancestors: list[Any]
    ) -> None:
        nodes = [*ancestors, parent]  # the nearest one, the field the literal is the value of, is the parent
        names = [a.name.value for a in nodes if isinstance(a, ArgumentNode | ObjectFieldNode)]
        self.found.append((node.value, ".".join(names)))


_LITERALS: OrderedDict[int, tuple[DocumentNode, list[tuple[str, str]]]] = OrderedDict()
"""The literals of recent documents, by identity (the document is held, so its ``id`` is not reused)."""
_MAX_DOCUMENTS = 500


def _literals(document: DocumentNode) -> list[tuple[str, str]]:
    known = _LITERALS.get(id(document))
    if known is not None and known[0] is document:
        _LITERALS.move_to_end(id(document))
        return known[1]
    literals = _Literals()
    visit(document, literals)
    _LITERALS[id(document)] = (document, literals.found)
    while len(_LITERALS) > _MAX_DOCUMENTS:
        _LITERALS.popitem(last=False)
    return literals.found


def _strings(document: DocumentNode | None, variables: dict[str, Any]) -> Iterator[tuple[str, str]]:
    if document is not None:
        yield from _literals(document)
    for name, value in variables.items():
        yield from _variables(value, name)


class InputGuard(SchemaExtension):
    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if not context.pre_execution_errors:
            for text, path in _strings(context.graphql_document, context.variables or {}):
                message = problem_with(text)
                if message is not None:
                    field = path.removeprefix("input.")
                    code = {"code": ErrorCode.BAD_USER_INPUT.value, "field": field}
                    context.pre_execution_errors = [GraphQLError(message, extensions=code)]
                    break
        yield
