"""The storage contract (``legetime.testing.StorageContract``), run against each provider the plugins
offer.

A driver per provider name knows how to build it and how to fetch one of its signed URLs (the local
provider through its own Starlette route; an S3 provider would fetch from its test server).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.testclient import TestClient

from legetime.core.platform.providers import Capability, ProviderSpec
from legetime.plugins.storage import local
from legetime.testing import Fetched, StorageContract, StorageDriver, build_default
from tests.contracts.builtin import check_against_driver, fixtures_for
from tests.fakes import s3 as s3_fake


def _local_fetch(provider: Any, url: str, later: timedelta) -> Fetched:
    real_clock = provider.clock
    provider.clock = lambda: real_clock() + later.total_seconds()
    try:
        with TestClient(Starlette(routes=local.register_routes())) as client:
            response = client.get(url)
    finally:
        provider.clock = real_clock
    return Fetched(response.status_code, response.headers.get("content-type", ""), response.content)


def _local_tampered(url: str) -> list[str]:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))

    def with_query(**changes: str) -> str:
        return urlunsplit(parts._replace(query=urlencode({**query, **changes})))

    flipped = query["signature"][:-1] + ("0" if query["signature"][-1] != "0" else "1")
    return [
        with_query(signature=flipped),
        with_query(expires=str(int(query["expires"]) + 3600)),
        with_query(signature=""),
        urlunsplit(parts._replace(query=f"expires={query['expires']}")),
        urlunsplit(parts._replace(path=parts.path + "x")),  # another key, same signature
    ]


DRIVERS: dict[str, StorageDriver] = {
    "local": StorageDriver(fetch=_local_fetch, tampered=_local_tampered, build=build_default),
    "s3": s3_fake.contract_driver(),  # against moto's S3 server (tests/fakes/s3.py)
}

legetime_spec, legetime_driver = fixtures_for(Capability.STORAGE, DRIVERS, __file__)


class TestStorageContract(StorageContract):
    pass


async def test_the_check_is_ok_against_the_driver(
    legetime_spec: ProviderSpec, legetime_driver: Any, tmp_path: Path
) -> None:
    await check_against_driver(legetime_spec, legetime_driver, tmp_path)
