"""Meta-tests of the extension contract (after datasette): every hook is documented and tested."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from legetime.core import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(name for name, obj in vars(hookspecs).items() if hasattr(obj, "legetime_spec"))


def test_there_are_hooks() -> None:
    assert "register_providers" in HOOKS and len(HOOKS) >= 5


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook: str) -> None:
    doc = (ROOT / "docs" / "hooks.md").read_text()
    assert f"### `{hook}`" in doc, f"docs/hooks.md has no section for {hook}"
    assert inspect.getdoc(getattr(hookspecs, hook)), f"hookspec {hook} has no docstring"


def documented_signature(hook: str) -> str:
    """The signature line under the hook's heading in docs/hooks.md."""
    section = (ROOT / "docs" / "hooks.md").read_text().split(f"### `{hook}`\n", 1)[1]
    return section.splitlines()[0].strip("`")


def specced_signature(hook: str) -> str:
    """The hookspec's signature as written (annotations are not evaluated: ``from __future__``)."""
    signature = inspect.signature(getattr(hookspecs, hook))
    arguments = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
    return f"{hook}({arguments}) -> {signature.return_annotation}"


@pytest.mark.parametrize("hook", HOOKS)
def test_documented_signature_is_the_hookspec(hook: str) -> None:
    assert documented_signature(hook) == specced_signature(hook)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook: str) -> None:
    tests = "\n".join(path.read_text() for path in (ROOT / "tests").rglob("test_*.py"))
    assert re.search(rf"def test_hook_{hook}\b", tests), f"no test_hook_{hook} in tests/"


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_arguments_have_no_defaults(hook: str) -> None:
    signature = inspect.signature(getattr(hookspecs, hook))
    assert all(p.default is inspect.Parameter.empty for p in signature.parameters.values())
