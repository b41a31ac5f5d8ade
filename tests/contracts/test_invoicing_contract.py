"""The invoicing contract (``legetime.testing.InvoicingContract``), run against every provider the plugins
offer, on SQLite and on PostgreSQL (the default provider keeps its invoices in the platform's database:
its idempotency and its state rest on the database's unique keys and row locks).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from legetime.core.platform.providers import Capability, ProviderSpec
from legetime.testing import InvoicingContract, InvoicingDriver, build_default, build_provider
from tests.contracts.builtin import check_against_driver, fixtures_for
from tests.support import offered_specs

DRIVERS: dict[str, InvoicingDriver] = {
    "pdf": InvoicingDriver(build=build_default),
}

SPECS = offered_specs(Capability.INVOICING)

legetime_spec, legetime_driver = fixtures_for(Capability.INVOICING, DRIVERS, __file__)


def test_the_suite_has_providers_to_check() -> None:
    # An empty parameter set would silently skip the whole contract.
    assert SPECS, "no invoicing provider is offered by the default plugins"


class TestInvoicingContract(InvoicingContract):
    pass


class TestInvoicingContractOnPostgreSQL(InvoicingContract):
    """The same suite with the platform's database on PostgreSQL."""

    @pytest.fixture
    def legetime_driver(self, legetime_spec: ProviderSpec, fresh_postgres_url: str) -> InvoicingDriver:
        driver = DRIVERS[legetime_spec.name]

        @contextmanager
        def on_postgres(spec: ProviderSpec, data_dir: Path) -> Iterator[Any]:
            yield build_provider(spec, data_dir, database_url=fresh_postgres_url)

        return replace(driver, build=on_postgres)


async def test_the_check_is_ok_against_the_driver(
    legetime_spec: ProviderSpec, legetime_driver: Any, tmp_path: Path
) -> None:
    await check_against_driver(legetime_spec, legetime_driver, tmp_path)
