"""Images on local disk with signed URLs.

Every object is one file under the root. The content type travels *inside* that file (a one-line JSON
header before the bytes) rather than in a sidecar: one ``os.replace`` then swaps data and content type
together, and no key can collide with another key's sidecar. The core encrypts health content before it
gets here, so the files are not meant to be served raw by a web server anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from legetime.sdk import (
    Capability,
    ErrorCode,
    ProviderCheck,
    ProviderContext,
    ProviderSettings,
    ProviderSpec,
    StorageNotFound,
    StoredObject,
    ValidationError,
    hookimpl,
)

NAME = "local"
ROUTE_PREFIX = "/plugins/storage-local/objects/"
URL_KEY_PURPOSE = "storage-local-url"
# Patterns are used with fullmatch: "$" would let a trailing newline through.
KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.-]{0,254}")
# type/subtype with optional parameters, ASCII only: it becomes a response header.
CONTENT_TYPE_PATTERN = re.compile(
    r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*( ?; ?[\w.+-]+=[\w.+\"-]+)*", re.ASCII
)
EXPIRES_PATTERN = re.compile(r"[0-9]{1,12}")
MAGIC = b"LEGETIME-OBJECT-1\n"
RESPONSE_HEADERS = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}


class LocalStorageSettings(ProviderSettings):
    """Settings of local disk storage (``LEGETIME_STORAGE_LOCAL_*``)."""

    model_config = SettingsConfigDict(env_prefix="LEGETIME_STORAGE_LOCAL_")

    root: Path | None = Field(
        default=None, description="Directory of the objects; default: <data_dir>/objects."
    )
    signing_key: SecretStr | None = Field(
        default=None, description="HMAC key of the signed URLs; default: derived from the master secret."
    )
    public_base_url: str = Field(
        default="", description="Prefix of the signed URLs (e.g. https://api.example.no); empty: path only."
    )


def _validate_key(key: str) -> str:
    # Segments may not be empty or start with "." — that rules out "." and ".." and keeps the names of
    # temporary files (".<name>.<random>.tmp") out of the key space.
    if not KEY_PATTERN.fullmatch(key) or any(not part or part.startswith(".") for part in key.split("/")):
        raise ValidationError(
            "Invalid storage key: only [A-Za-z0-9/_.-], no empty segments, none starting with a dot.",
            field="key",
        )
    return key


def _encode(data: bytes, content_type: str) -> bytes:
    return MAGIC + json.dumps({"content_type": content_type}).encode() + b"\n" + data


def _decode(raw: bytes) -> tuple[str, bytes]:
    if not raw.startswith(MAGIC):
        raise ValueError("not a stored object")
    header, _, data = raw[len(MAGIC) :].partition(b"\n")
    return str(json.loads(header)["content_type"]), data


class LocalStorageProvider:
    """A ``StorageProvider`` on the local file system. It keeps no state in memory but its settings."""

    name = NAME

    def __init__(
        self,
        root: Path,
        signing_key: bytes,
        *,
        public_base_url: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root.resolve()
        self._signing_key = signing_key
        self.public_base_url = public_base_url.rstrip("/")
        self.clock = clock
        """Seconds since the epoch; replaceable so tests can move time forward."""

    def _path(self, key: str) -> Path:
        path = (self.root / _validate_key(key)).resolve()
        # resolve() follows symlinks too: a link inside the root cannot lead out of it.
        if not path.is_relative_to(self.root) or path == self.root:
            raise ValidationError("Invalid storage key: outside the storage root.", field="key")
        return path

    # --- blocking parts, run in a thread -----------------------------------------------------------

    def _make_dirs(self, directory: Path) -> None:
        """Create the root and the key's folders 0o700 each (``mkdir(parents=True)`` would leave the
        intermediate ones to the umask)."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        current = self.root
        for part in directory.relative_to(self.root).parts:
            current = current / part
            current.mkdir(mode=0o700, exist_ok=True)

    def _write(self, path: Path, payload: bytes) -> None:
        try:
            self._make_dirs(path.parent)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0o600
        except (FileExistsError, NotADirectoryError):
            raise ValidationError(
                "Storage key collides with an existing object.", field="key", code=ErrorCode.CONFLICT
            ) from None
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(payload)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except IsADirectoryError:
            raise ValidationError(
                "Storage key collides with an existing object.", field="key", code=ErrorCode.CONFLICT
            ) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        # Make the rename itself durable.
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _read(self, path: Path, key: str) -> tuple[str, bytes]:
        try:
            return _decode(path.read_bytes())
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, ValueError):
            raise StorageNotFound(f"No stored object {key!r}.", field="key") from None

    # --- StorageProvider ---------------------------------------------------------------------------

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Write atomically (temp file in the same directory, fsync, rename); replaces an existing key."""
        path = self._path(key)
        if not CONTENT_TYPE_PATTERN.fullmatch(content_type):
            raise ValidationError("Invalid content type.", field="content_type")
        await asyncio.to_thread(self._write, path, _encode(data, content_type))
        return StoredObject(
            key=key, size=len(data), content_type=content_type, sha256=hashlib.sha256(data).hexdigest()
        )

    async def open(self, key: str) -> bytes:
        return (await self.read(key))[1]

    async def read(self, key: str) -> tuple[str, bytes]:
        """Content type and bytes of an object (the download route needs both)."""
        return await asyncio.to_thread(self._read, self._path(key), key)

    async def delete(self, key: str) -> None:
        path = self._path(key)
        # Not there, or only a directory of other keys there: nothing to delete.
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
            await asyncio.to_thread(path.unlink)

    async def url(self, key: str, expires: timedelta) -> str:
        """A path (or URL with ``public_base_url``) served by this plugin's route until ``expires``."""
        _validate_key(key)
        if expires.total_seconds() <= 0:
            raise ValidationError("expires must be positive.", field="expires")
        expires_at = math.ceil(self.clock() + expires.total_seconds())
        signature = self.signature(key, expires_at)
        return (
            f"{self.public_base_url}{ROUTE_PREFIX}{quote(key, safe='/')}"
            f"?expires={expires_at}&signature={signature}"
        )

    # --- operators ---------------------------------------------------------------------------------

    async def check(self) -> ProviderCheck:
        """The root is a directory this process may write: a temporary file is made in it and removed at
        once (a side effect inside the storage directory only; its name starts with ".", which no key's
        file can). A root that does not exist yet is made at the first upload: then the nearest existing
        parent must be writable."""
        return await asyncio.to_thread(self._check)

    def _check(self) -> ProviderCheck:
        if not self.root.exists():
            parent = next((p for p in self.root.parents if p.exists()), None)
            if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
                return ProviderCheck(False, "The storage directory does not exist and cannot be created.")
            return ProviderCheck(True, "The storage directory will be created at the first upload.")
        if not self.root.is_dir():
            return ProviderCheck(False, "The storage root is not a directory.")
        try:
            descriptor, name = tempfile.mkstemp(prefix=".check-", dir=self.root)
        except OSError as exc:
            return ProviderCheck(False, f"The storage directory is not writable ({type(exc).__name__}).")
        os.close(descriptor)
        os.unlink(name)
        return ProviderCheck(True, "The storage directory exists and is writable.")

    # --- signed URLs -------------------------------------------------------------------------------

    def signature(self, key: str, expires_at: int) -> str:
        message = f"{key}\n{expires_at}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    def verify(self, key: str, expires: str, signature: str) -> bool:
        """Constant-time check of the signature, then the expiry."""
        if not EXPIRES_PATTERN.fullmatch(expires):
            return False
        valid = hmac.compare_digest(signature.encode(), self.signature(key, int(expires)).encode())
        return valid and int(expires) >= self.clock()


# The download route needs the provider (root and signing key), but ``register_routes()`` takes no
# arguments and routes are built before or apart from providers. So the factory records the instance it
# builds in this one slot and the route reads it. A process configures at most one "local" storage
# provider, and the provider holds no state in memory (objects are on disk, the key is derived from the
# shared master secret), so every API process can serve a URL signed by any other. Where several
# instances are built in one process (tests), the most recently built one is served.
_active: LocalStorageProvider | None = None


async def serve_object(request: Request) -> Response:
    """GET a stored object through a signed URL: 403 when the signature is bad or expired, 404 if gone."""
    provider = _active
    if provider is None:
        return PlainTextResponse("Local storage is not configured.", status_code=404)
    key = request.path_params["key"]
    expires = request.query_params.get("expires", "")
    signature = request.query_params.get("signature", "")
    if not provider.verify(key, expires, signature):
        return PlainTextResponse("Invalid or expired link.", status_code=403, headers=RESPONSE_HEADERS)
    try:
        content_type, data = await provider.read(key)
    except (StorageNotFound, ValidationError):
        return PlainTextResponse("Not found.", status_code=404, headers=RESPONSE_HEADERS)
    return Response(data, headers={**RESPONSE_HEADERS, "Content-Type": content_type})


def _factory(settings: LocalStorageSettings, context: ProviderContext) -> LocalStorageProvider:
    global _active
    if settings.signing_key is not None:
        key = settings.signing_key.get_secret_value().encode()
    else:
        key = context.derive_key(URL_KEY_PURPOSE)
    provider = LocalStorageProvider(
        settings.root or context.settings.data_dir / "objects",
        key,
        public_base_url=settings.public_base_url,
    )
    _active = provider
    return provider


@hookimpl
def register_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.STORAGE,
            name=NAME,
            factory=_factory,
            settings_model=LocalStorageSettings,
            description="Objects on local disk, served through signed, expiring URLs.",
        )
    ]


@hookimpl
def register_routes() -> list[Route]:
    return [Route(ROUTE_PREFIX + "{key:path}", serve_object, methods=["GET"])]


@hookimpl
def plugin_info() -> dict[str, str]:
    return {"description": "Local disk storage of images with signed, expiring download URLs."}
