"""Every string a client sends is checked once, at the boundary, before any resolver sees it: no control
characters (a NUL byte reaches PostgreSQL as "invalid byte sequence", others hide text or break an SMS),
and no string longer than any field of ours takes. Rules of one field (its own length, format) stay with
the field in the core; this is the floor under all of them, plugins' fields included."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any

from strawberry.extensions import SchemaExtension

from legetime.core.platform.errors import ErrorCode, LegetimeError

CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""C0 controls and DEL, but tab, line feed and carriage return: those belong in a message."""
MAX_STRING_LENGTH = 20_000


class BadInput(LegetimeError):
    code = ErrorCode.BAD_USER_INPUT


def check_text(value: str, field: str) -> None:
    if CONTROL_CHARACTERS.search(value):
        raise BadInput("Teksten inneholder kontrolltegn som ikke er tillatt.", field=field)
    if len(value) > MAX_STRING_LENGTH:
        raise BadInput(f"Teksten er for lang (høyst {MAX_STRING_LENGTH} tegn).", field=field)


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield value, path
    elif isinstance(value, Enum | bool | int | float) or value is None:
        return
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key, path)
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}.{index}")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):  # strawberry input objects
        for field in dataclasses.fields(value):
            yield from _strings(getattr(value, field.name), f"{path}.{_camel(field.name)}")


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


class InputGuard(SchemaExtension):
    def resolve(self, _next: Callable[..., Any], root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        for name, value in kwargs.items():
            for text, path in _strings(value, _camel(name)):
                check_text(text, path.removeprefix("input."))
        return _next(root, info, *args, **kwargs)
