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


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook: str) -> None:
    tests = "\n".join(path.read_text() for path in (ROOT / "tests").rglob("test_*.py"))
    assert re.search(rf"def test_hook_{hook}\b", tests), f"no test_hook_{hook} in tests/"


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_arguments_have_no_defaults(hook: str) -> None:
    signature = inspect.signature(getattr(hookspecs, hook))
    assert all(p.default is inspect.Parameter.empty for p in signature.parameters.values())
