"""The contract every storage provider keeps, run against each one the plugins offer.

A driver per provider name knows how to build it and how to fetch one of its signed URLs (the local
provider through its own Starlette route; an S3 provider would fetch from its test server). A provider
without a driver fails here on purpose.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from legetime.core.platform.errors import StorageNotFound, ValidationError
from legetime.core.platform.providers import Capability, ProviderSpec
from legetime.core.platform.providers.storage import StorageProvider, StoredObject
from legetime.plugins.storage import local
from tests.support import build_provider, offered_specs

BINARY = bytes(range(256)) + b"\x00\x00\xff\x00" + b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Fetched:
    status: int
    content_type: str
    body: bytes


class StorageDriver(Protocol):
    def build(self, spec: ProviderSpec, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any: ...

    def fetch(self, provider: Any, url: str, later: timedelta = timedelta(0)) -> Fetched:
        """GET a URL the provider signed, as a browser would, ``later`` from now."""
        ...

    def tampered(self, url: str) -> list[str]:
        """Variants of a signed URL that must not give access."""
        ...


class LocalDriver:
    def build(self, spec: ProviderSpec, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
        return build_provider(spec, data_dir)

    def fetch(self, provider: Any, url: str, later: timedelta = timedelta(0)) -> Fetched:
        real_clock = provider.clock
        provider.clock = lambda: real_clock() + later.total_seconds()
        try:
            with TestClient(Starlette(routes=local.register_routes())) as client:
                response = client.get(url)
        finally:
            provider.clock = real_clock
        return Fetched(response.status_code, response.headers.get("content-type", ""), response.content)

    def tampered(self, url: str) -> list[str]:
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


DRIVERS: dict[str, StorageDriver] = {"local": LocalDriver()}


@pytest.fixture(params=offered_specs(Capability.STORAGE), ids=lambda spec: spec.name)
def spec(request: pytest.FixtureRequest) -> ProviderSpec:
    spec: ProviderSpec = request.param
    return spec


@pytest.fixture
def driver(spec: ProviderSpec) -> StorageDriver:
    if spec.name not in DRIVERS:
        pytest.fail(f"storage provider {spec.name!r} has no contract driver; add one to DRIVERS")
    return DRIVERS[spec.name]


@pytest.fixture
def provider(
    spec: ProviderSpec, driver: StorageDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    return driver.build(spec, tmp_path, monkeypatch)


def test_implements_the_protocol(provider: Any, spec: ProviderSpec) -> None:
    assert isinstance(provider, StorageProvider)
    assert provider.name == spec.name


@pytest.mark.parametrize("data", [BINARY, b"", b"\x00" * 1000], ids=["binary", "empty", "zeros"])
async def test_put_open_round_trip(provider: Any, data: bytes) -> None:
    stored = await provider.put("cases/c1/images/1.png", data, "image/png")
    assert stored == StoredObject(
        key="cases/c1/images/1.png",
        size=len(data),
        content_type="image/png",
        sha256=hashlib.sha256(data).hexdigest(),
    )
    assert await provider.open("cases/c1/images/1.png") == data


async def test_put_again_replaces(provider: Any, driver: StorageDriver) -> None:
    await provider.put("img", b"first version", "image/png")
    stored = await provider.put("img", b"second", "image/jpeg")
    assert stored.size == 6 and stored.content_type == "image/jpeg"
    assert await provider.open("img") == b"second"
    fetched = driver.fetch(provider, await provider.url("img", timedelta(minutes=5)))
    assert (fetched.content_type, fetched.body) == ("image/jpeg", b"second")


async def test_keys_are_independent(provider: Any) -> None:
    await provider.put("a/1", b"one", "application/octet-stream")
    await provider.put("a/2", b"two", "application/octet-stream")
    await provider.delete("a/1")
    assert await provider.open("a/2") == b"two"


async def test_open_missing_raises_storage_not_found(provider: Any) -> None:
    with pytest.raises(StorageNotFound):
        await provider.open("never/stored")


async def test_delete_is_idempotent(provider: Any) -> None:
    await provider.put("gone", BINARY, "image/png")
    await provider.delete("gone")
    await provider.delete("gone")
    await provider.delete("never/stored")
    with pytest.raises(StorageNotFound):
        await provider.open("gone")


TRAVERSAL_KEYS = [
    "../outside",
    "a/../../outside",
    "a/..",
    "..",
    "/etc/passwd",
    "a/../b",
    "a\\..\\b",
    "",
    "a" * 300,
    "a\n",
]


@pytest.mark.parametrize("key", TRAVERSAL_KEYS)
async def test_path_traversal_keys_are_rejected(provider: Any, key: str, tmp_path: Path) -> None:
    attempts: list[Callable[[], Awaitable[object]]] = [
        lambda: provider.put(key, b"x", "text/plain"),
        lambda: provider.open(key),
        lambda: provider.delete(key),
        lambda: provider.url(key, timedelta(minutes=1)),
    ]
    for attempt in attempts:
        with pytest.raises(ValidationError) as info:
            await attempt()
        assert info.value.field == "key"
    assert not (tmp_path.parent / "outside").exists()


async def test_signed_url_serves_the_object(provider: Any, driver: StorageDriver) -> None:
    await provider.put("cases/c1/images/1.png", BINARY, "image/png")
    url = await provider.url("cases/c1/images/1.png", timedelta(minutes=5))
    assert isinstance(url, str)
    fetched = driver.fetch(provider, url)
    assert fetched == Fetched(200, "image/png", BINARY)


async def test_tampered_urls_are_forbidden(provider: Any, driver: StorageDriver) -> None:
    await provider.put("cases/c1/images/1.png", BINARY, "image/png")
    await provider.put("cases/c1/images/1.pngx", b"other", "image/png")
    url = await provider.url("cases/c1/images/1.png", timedelta(minutes=5))
    for forged in driver.tampered(url):
        fetched = driver.fetch(provider, forged)
        assert fetched.status == 403, forged
        assert fetched.body != BINARY


async def test_expired_url_is_forbidden(provider: Any, driver: StorageDriver) -> None:
    await provider.put("img", BINARY, "image/png")
    url = await provider.url("img", timedelta(minutes=5))
    assert driver.fetch(provider, url, later=timedelta(minutes=4)).status == 200
    assert driver.fetch(provider, url, later=timedelta(minutes=6)).status == 403


async def test_url_of_deleted_object_is_not_found(provider: Any, driver: StorageDriver) -> None:
    await provider.put("img", BINARY, "image/png")
    url = await provider.url("img", timedelta(minutes=5))
    await provider.delete("img")
    assert driver.fetch(provider, url).status == 404
