"""The kit's suites (``legetime.testing``) run against every provider the built-in plugins offer.

Each contract module keeps a ``DRIVERS`` table, keyed by provider name, and gets its ``legetime_spec`` and
``legetime_driver`` fixtures from ``fixtures_for``. A provider without a driver fails the suite on purpose:
a new provider is held to the contract from the day it is registered.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from legetime.core.platform.providers import Capability, ProviderCheck, ProviderSpec
from tests.support import offered_specs


def fixtures_for(capability: Capability, drivers: Mapping[str, Any], module: str) -> tuple[Any, Any]:
    """``legetime_spec`` over every offered provider of ``capability``, and its ``legetime_driver`` from
    ``drivers`` (``module`` is where that table lives, for the message when a driver is missing)."""
    specs = offered_specs(capability)

    @pytest.fixture(params=specs, ids=[spec.name for spec in specs])
    def legetime_spec(request: pytest.FixtureRequest) -> ProviderSpec:
        spec: ProviderSpec = request.param
        return spec

    @pytest.fixture
    def legetime_driver(legetime_spec: ProviderSpec) -> Any:
        if legetime_spec.name not in drivers:
            pytest.fail(
                f"{capability} provider {legetime_spec.name!r} has no contract driver: add one to DRIVERS in "
                f"{module}",
                pytrace=False,
            )
        return drivers[legetime_spec.name]

    return legetime_spec, legetime_driver


async def check_against_driver(spec: ProviderSpec, driver: Any, data_dir: Path) -> None:
    """Every built-in provider answers ``check()`` (the operators' ``checkProvider``), and built as its
    driver builds it (against its fake, with the fake's credentials) its configuration works. That the check
    changes nothing, and what it says with wrong credentials, is in ``tests/test_provider_checks.py``."""
    with driver.build(spec, data_dir) as provider:
        assert callable(getattr(provider, "check", None)), f"{spec.name} has no check()"
        result = await provider.check()
    assert isinstance(result, ProviderCheck), result
    assert result.ok, f"{spec.name}: {result.message}"
