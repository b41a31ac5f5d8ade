"""The pytest plugin of the contract kit, loaded through the ``pytest11`` entry point ``legetime``.

pytest loads it in every session of an environment where Legetime is installed, so it does nothing until a
test asks for its fixtures: it imports only pytest, collects no tests and registers one marker.

- ``legetime_provider``: the provider under test, built by ``legetime_driver`` for ``legetime_spec`` in
  the test's ``tmp_path``;
- ``legetime_spec`` and ``legetime_driver``: to be defined by the suite's user (in a ``conftest.py``, the
  test module or the test class); these stand-ins only fail with what to define;
- the marker ``legetime_contract``, which the kit's tests carry (``pytest -m legetime_contract``).

Where plugin autoloading is off (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), load it with
``-p legetime.testing.plugin``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

MARKER = "legetime_contract"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: a test of Legetime's provider contract kit (legetime.testing)"
    )


@pytest.fixture
def legetime_spec() -> Any:
    """The ``ProviderSpec`` under test: define this fixture where you use a contract suite."""
    pytest.fail(
        "define a `legetime_spec` fixture returning the ProviderSpec under test (see legetime.testing)",
        pytrace=False,
    )


@pytest.fixture
def legetime_driver() -> Any:
    """The driver of the provider under test: define this fixture where you use a contract suite."""
    pytest.fail(
        "define a `legetime_driver` fixture returning the contract driver of your provider, e.g. an "
        "SmsDriver (see legetime.testing)",
        pytrace=False,
    )


@pytest.fixture
def legetime_provider(legetime_spec: Any, legetime_driver: Any, tmp_path: Path) -> Iterator[Any]:
    """The provider under test, built by its driver for this test alone."""
    with legetime_driver.build(legetime_spec, tmp_path) as provider:
        yield provider
