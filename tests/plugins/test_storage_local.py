"""What local storage does beyond the storage contract: files on disk, the route, settings."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from legetime.core.platform.config import Settings
from legetime.core.platform.db.plugin_tables import PluginDatabase
from legetime.core.platform.errors import ErrorCode, ValidationError
from legetime.core.platform.providers import Capability, ProviderContext
from legetime.plugins.storage import local
from legetime.plugins.storage.local import LocalStorageProvider, LocalStorageSettings
from tests.support import offered_specs


def derive_key(purpose: str) -> bytes:
    return hashlib.sha256(b"plugin-test-secret:" + purpose.encode()).digest()


def build(data_dir: Path, **settings: object) -> LocalStorageProvider:
    settings_ = Settings(data_dir=data_dir)
    database = PluginDatabase(settings_.resolved_database_url)  # not used: the storage keeps no table
    context = ProviderContext(settings=settings_, derive_key=derive_key, database=database)
    return local._factory(LocalStorageSettings(**settings), context)  # type: ignore[arg-type]


def client() -> TestClient:
    return TestClient(Starlette(routes=local.register_routes()))


def test_registered_with_route_under_plugins() -> None:
    (spec,) = [s for s in offered_specs(Capability.STORAGE) if s.name == "local"]
    assert not spec.test_only
    assert spec.settings_model is LocalStorageSettings
    (route,) = local.register_routes()
    assert route.path == "/plugins/storage-local/objects/{key:path}"
    assert local.plugin_info()["description"]


async def test_objects_live_under_data_dir_objects_and_are_private(tmp_path: Path) -> None:
    provider = build(tmp_path)
    await provider.put("cases/c1/img.png", b"\x89PNG", "image/png")
    path = tmp_path / "objects" / "cases" / "c1" / "img.png"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["img.png"]  # no temp file left


async def test_root_setting(tmp_path: Path) -> None:
    provider = build(tmp_path, root=tmp_path / "bucket")
    await provider.put("a", b"x", "text/plain")
    assert (tmp_path / "bucket" / "a").exists()
    assert not (tmp_path / "objects").exists()


async def test_failed_write_keeps_the_old_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = build(tmp_path)
    await provider.put("img", b"old", "image/png")

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(local.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        await provider.put("img", b"new", "image/png")
    monkeypatch.undo()
    assert await provider.open("img") == b"old"
    assert [p.name for p in (tmp_path / "objects").iterdir()] == ["img"]


async def test_symlink_out_of_the_root_is_rejected(tmp_path: Path) -> None:
    provider = build(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "objects").mkdir()
    (tmp_path / "objects" / "link").symlink_to(outside)
    with pytest.raises(ValidationError) as info:
        await provider.put("link/stolen", b"x", "text/plain")
    assert info.value.field == "key"
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("key", ["a/.hidden", "a//b", "a/", "./a", "a/./b", "a b", "æ", "a?b"])
async def test_other_bad_keys_are_rejected(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValidationError) as info:
        await build(tmp_path).put(key, b"x", "text/plain")
    assert info.value.field == "key"


async def test_key_colliding_with_a_folder_of_keys_is_a_conflict(tmp_path: Path) -> None:
    provider = build(tmp_path)
    await provider.put("a/b", b"x", "text/plain")
    with pytest.raises(ValidationError) as info:
        await provider.put("a", b"y", "text/plain")
    assert info.value.code is ErrorCode.CONFLICT
    with pytest.raises(ValidationError) as info:
        await provider.put("a/b/c", b"y", "text/plain")
    assert info.value.code is ErrorCode.CONFLICT
    await provider.delete("a")  # not an object: nothing to delete
    assert await provider.open("a/b") == b"x"


@pytest.mark.parametrize(
    "content_type", ["", "image", "text/html\r\nX-Evil: 1", "image/png\n", "image/png; charset", "bilde/pñg"]
)
async def test_bad_content_type_is_rejected(tmp_path: Path, content_type: str) -> None:
    with pytest.raises(ValidationError) as info:
        await build(tmp_path).put("img", b"x", content_type)
    assert info.value.field == "content_type"


async def test_route_headers(tmp_path: Path) -> None:
    provider = build(tmp_path)
    await provider.put("doc", b"<script>alert(1)</script>", "text/plain; charset=utf-8")
    response = client().get(await provider.url("doc", timedelta(minutes=1)))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    forbidden = client().get("/plugins/storage-local/objects/doc?expires=1&signature=x")
    assert forbidden.status_code == 403
    assert forbidden.headers["cache-control"] == "private, no-store"


async def test_url_shape_and_default_key(tmp_path: Path) -> None:
    provider = build(tmp_path)
    provider.clock = lambda: 1_700_000_000.2
    url = await provider.url("cases/c1/img.png", timedelta(seconds=60))
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "",
        "",
        "/plugins/storage-local/objects/cases/c1/img.png",
    )
    query = parse_qs(parts.query)
    assert query["expires"] == ["1700000061"]
    expected = hmac.new(
        derive_key("storage-local-url"), b"cases/c1/img.png\n1700000061", hashlib.sha256
    ).hexdigest()
    assert query["signature"] == [expected]


async def test_public_base_url_and_signing_key(tmp_path: Path) -> None:
    provider = build(tmp_path, public_base_url="https://api.legetime.no/", signing_key="k" * 32)
    url = await provider.url("img", timedelta(minutes=1))
    assert url.startswith("https://api.legetime.no/plugins/storage-local/objects/img?expires=")
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    expected = hmac.new(b"k" * 32, f"img\n{expires}".encode(), hashlib.sha256).hexdigest()
    assert url.endswith(f"&signature={expected}")


@pytest.mark.parametrize("expires", [timedelta(0), timedelta(seconds=-5)])
async def test_url_needs_a_positive_lifetime(tmp_path: Path, expires: timedelta) -> None:
    with pytest.raises(ValidationError) as info:
        await build(tmp_path).url("img", expires)
    assert info.value.field == "expires"


async def test_unicode_digits_in_expires_are_forbidden(tmp_path: Path) -> None:
    await build(tmp_path).put("img", b"x", "image/png")
    assert client().get("/plugins/storage-local/objects/img?expires=¹²³&signature=x").status_code == 403


async def test_route_serves_the_most_recently_built_instance(tmp_path: Path) -> None:
    first = build(tmp_path / "one")
    await first.put("img", b"one", "image/png")
    url = await first.url("img", timedelta(minutes=1))
    second = build(tmp_path / "two")
    assert local._active is second
    assert client().get(url).status_code == 404  # same derived key, but the object is not in this root
    await second.put("img", b"two", "image/png")
    assert client().get(url).content == b"two"


def test_route_without_a_provider_is_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "_active", None)
    assert client().get("/plugins/storage-local/objects/img?expires=1&signature=x").status_code == 404


def test_settings_from_environment_mask_the_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LEGETIME_STORAGE_LOCAL_ROOT", str(tmp_path / "r"))
    monkeypatch.setenv("LEGETIME_STORAGE_LOCAL_SIGNING_KEY", "very-secret-value")
    monkeypatch.setenv("LEGETIME_STORAGE_LOCAL_PUBLIC_BASE_URL", "https://x.example")
    settings = LocalStorageSettings()
    assert settings.root == tmp_path / "r"
    assert settings.public_base_url == "https://x.example"
    assert settings.signing_key is not None
    assert settings.signing_key.get_secret_value() == "very-secret-value"
    assert "very-secret-value" not in repr(settings)
    assert "very-secret-value" not in settings.model_dump_json()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
async def test_umask_does_not_widen_permissions(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        await build(tmp_path).put("a/b", b"x", "text/plain")
    finally:
        os.umask(old)
    root = tmp_path / "objects"
    assert stat.S_IMODE((root / "a" / "b").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
