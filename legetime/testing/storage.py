"""The contract every storage provider keeps.

Its driver knows how to build the provider and how to fetch one of its signed URLs as a browser would (the
local provider through its own route; an S3 provider from its test server), and which variants of a signed
URL must not give access.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from legetime.sdk import ProviderSpec, StorageNotFound, StorageProvider, StoredObject, ValidationError
from legetime.testing._common import BuildProvider, build_default, in_event_loop

BINARY = bytes(range(256)) + b"\x00\x00\xff\x00" + b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Fetched:
    """What a browser got for a URL."""

    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True)
class StorageDriver:
    """How the suite makes one storage provider do what the contract needs."""

    fetch: Callable[[Any, str, timedelta], Fetched]
    """``(provider, url, later)``: GET a URL the provider signed, as a browser would, ``later`` from now."""
    tampered: Callable[[str], list[str]]
    """Variants of a signed URL that must not give access."""
    build: BuildProvider = build_default
    """Builds the provider (and starts whatever fake it talks to) for one test."""


NOW = timedelta(0)

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


class StorageContract:
    """The storage contract (see ``legetime.testing`` for how to run it against a provider)."""

    pytestmark = pytest.mark.legetime_contract

    def test_implements_the_protocol(self, legetime_provider: Any, legetime_spec: ProviderSpec) -> None:
        assert isinstance(legetime_provider, StorageProvider)
        assert legetime_provider.name == legetime_spec.name

    @pytest.mark.parametrize("data", [BINARY, b"", b"\x00" * 1000], ids=["binary", "empty", "zeros"])
    @in_event_loop
    async def test_put_open_round_trip(self, legetime_provider: Any, data: bytes) -> None:
        stored = await legetime_provider.put("cases/c1/images/1.png", data, "image/png")
        assert stored == StoredObject(
            key="cases/c1/images/1.png",
            size=len(data),
            content_type="image/png",
            sha256=hashlib.sha256(data).hexdigest(),
        )
        assert await legetime_provider.open("cases/c1/images/1.png") == data

    @in_event_loop
    async def test_put_again_replaces(self, legetime_provider: Any, legetime_driver: StorageDriver) -> None:
        await legetime_provider.put("img", b"first version", "image/png")
        stored = await legetime_provider.put("img", b"second", "image/jpeg")
        assert stored.size == 6 and stored.content_type == "image/jpeg"
        assert await legetime_provider.open("img") == b"second"
        url = await legetime_provider.url("img", timedelta(minutes=5))
        fetched = legetime_driver.fetch(legetime_provider, url, NOW)
        assert (fetched.content_type, fetched.body) == ("image/jpeg", b"second")

    @in_event_loop
    async def test_keys_are_independent(self, legetime_provider: Any) -> None:
        await legetime_provider.put("a/1", b"one", "application/octet-stream")
        await legetime_provider.put("a/2", b"two", "application/octet-stream")
        await legetime_provider.delete("a/1")
        assert await legetime_provider.open("a/2") == b"two"

    @in_event_loop
    async def test_open_missing_raises_storage_not_found(self, legetime_provider: Any) -> None:
        with pytest.raises(StorageNotFound):
            await legetime_provider.open("never/stored")

    @in_event_loop
    async def test_delete_is_idempotent(self, legetime_provider: Any) -> None:
        await legetime_provider.put("gone", BINARY, "image/png")
        await legetime_provider.delete("gone")
        await legetime_provider.delete("gone")
        await legetime_provider.delete("never/stored")
        with pytest.raises(StorageNotFound):
            await legetime_provider.open("gone")

    @pytest.mark.parametrize("key", TRAVERSAL_KEYS)
    @in_event_loop
    async def test_path_traversal_keys_are_rejected(
        self, legetime_provider: Any, key: str, tmp_path: Path
    ) -> None:
        attempts: list[Callable[[], Awaitable[object]]] = [
            lambda: legetime_provider.put(key, b"x", "text/plain"),
            lambda: legetime_provider.open(key),
            lambda: legetime_provider.delete(key),
            lambda: legetime_provider.url(key, timedelta(minutes=1)),
        ]
        for attempt in attempts:
            with pytest.raises(ValidationError) as info:
                await attempt()
            assert info.value.field == "key"
        assert not (tmp_path.parent / "outside").exists()

    @in_event_loop
    async def test_signed_url_serves_the_object(
        self, legetime_provider: Any, legetime_driver: StorageDriver
    ) -> None:
        await legetime_provider.put("cases/c1/images/1.png", BINARY, "image/png")
        url = await legetime_provider.url("cases/c1/images/1.png", timedelta(minutes=5))
        assert isinstance(url, str)
        fetched = legetime_driver.fetch(legetime_provider, url, NOW)
        assert fetched == Fetched(200, "image/png", BINARY)

    @in_event_loop
    async def test_tampered_urls_are_forbidden(
        self, legetime_provider: Any, legetime_driver: StorageDriver
    ) -> None:
        await legetime_provider.put("cases/c1/images/1.png", BINARY, "image/png")
        await legetime_provider.put("cases/c1/images/1.pngx", b"other", "image/png")
        url = await legetime_provider.url("cases/c1/images/1.png", timedelta(minutes=5))
        for forged in legetime_driver.tampered(url):
            fetched = legetime_driver.fetch(legetime_provider, forged, NOW)
            assert fetched.status == 403, forged
            assert fetched.body != BINARY

    @in_event_loop
    async def test_expired_url_is_forbidden(
        self, legetime_provider: Any, legetime_driver: StorageDriver
    ) -> None:
        await legetime_provider.put("img", BINARY, "image/png")
        url = await legetime_provider.url("img", timedelta(minutes=5))
        assert legetime_driver.fetch(legetime_provider, url, timedelta(minutes=4)).status == 200
        assert legetime_driver.fetch(legetime_provider, url, timedelta(minutes=6)).status == 403

    @in_event_loop
    async def test_url_of_deleted_object_is_not_found(
        self, legetime_provider: Any, legetime_driver: StorageDriver
    ) -> None:
        await legetime_provider.put("img", BINARY, "image/png")
        url = await legetime_provider.url("img", timedelta(minutes=5))
        await legetime_provider.delete("img")
        assert legetime_driver.fetch(legetime_provider, url, NOW).status == 404
