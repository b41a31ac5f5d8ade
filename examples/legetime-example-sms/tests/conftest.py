"""Fixtures of the example plugin's tests: the fake gateway, and what the contract kit needs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import legetime_example_sms
import pytest
from gateway_fake import GatewayFake

from legetime.sdk import ProviderSpec
from legetime.testing import SmsDriver, build_provider


@pytest.fixture
def gateway() -> Iterator[GatewayFake]:
    with GatewayFake().serve() as fake:
        yield fake


@pytest.fixture
def legetime_spec() -> ProviderSpec:
    """The provider under test, as the plugin offers it to the platform."""
    [spec] = legetime_example_sms.register_providers()
    return spec


@pytest.fixture
def legetime_driver(gateway: GatewayFake) -> SmsDriver:
    """How the kit's SMS suite drives the provider: pointed at the fake gateway, which tells what it sent
    and signs delivery reports as the real one does."""

    @contextmanager
    def build(spec: ProviderSpec, data_dir: Path) -> Iterator[Any]:
        yield build_provider(spec, data_dir, gateway.settings())

    async def sent_count(provider: Any, reference: str) -> int:
        return gateway.sent_count(reference)

    return SmsDriver(sent_count=sent_count, delivery_report=gateway.delivery_report, build=build)
