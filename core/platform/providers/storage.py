"""Storage of binary objects (images). Keys are opaque, chosen by the core, ``[A-Za-z0-9/_.-]`` only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    content_type: str
    sha256: str


@runtime_checkable
class StorageProvider(Protocol):
    name: str

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Store atomically; putting the same key again replaces the object."""
        ...

    async def open(self, key: str) -> bytes:
        """Read the whole object. Raises ``StorageNotFound``."""
        ...

    async def delete(self, key: str) -> None:
        """Delete; deleting what is not there is not an error (idempotent)."""
        ...

    async def url(self, key: str, expires: timedelta) -> str:
        """A URL that gives read access until ``expires`` from now (signed)."""
        ...
