"""Encryption at rest: AES-256-GCM data keys per case, wrapped by master keys (envelope encryption).

* A **data key** (32 random bytes) encrypts content; it is stored only *wrapped* (AES key wrap, RFC 3394)
  by a **master key**, together with that master key's id.
* **Master keys** come from configuration (``LEGETIME_MASTER_KEYS``: ``id=<base64url of 32 bytes>``, the
  first one wraps new data keys). The embedded default derives one from the master secret (id ``local``).
  Rotation rewraps data keys under the new master key; content is never re-encrypted.
* **Crypto-shredding**: forgetting a data key makes every copy of what it encrypted unreadable. Copies of the
  *wrapped* key in backups stay unreadable once the master key that wrapped them is retired.

A sealed value is ``b"\\x01" + nonce(12) + ciphertext+tag``; the associated data binds it to where it is
stored (case, table, column), so a ciphertext moved to another row or case does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

FORMAT_V1 = b"\x01"
NONCE_BYTES = 12
KEY_BYTES = 32
LOCAL_KEY_ID = "local"


class KeyUnavailable(Exception):
    """The data key is gone (shredded) or wrapped by a master key that is no longer configured."""


class Tampered(Exception):
    """A sealed value failed authentication: altered, truncated, or moved to another place."""


def bound_to(owner: uuid.UUID, what: str) -> bytes:
    """The associated data that binds a sealed value to its owner and purpose: a sealed value moved to
    another row or field fails to open."""
    return f"legetime:{owner}:{what}".encode()


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return FORMAT_V1 + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if sealed[:1] != FORMAT_V1 or len(sealed) < 1 + NONCE_BYTES + 16:
        raise Tampered("not a sealed value")
    nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, aad)
    except InvalidTag:
        raise Tampered("sealed value failed authentication") from None


@dataclass(frozen=True)
class WrappedKey:
    key_id: str
    wrapped: bytes


class KeyRing:
    """The configured master keys. The first wraps new data keys; the others only unwrap (rotation)."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one master key")
        for key_id, key in keys:
            if len(key) != KEY_BYTES:
                raise ValueError(f"master key {key_id!r} must be {KEY_BYTES} bytes")
        self._keys = dict(keys)
        self.active_id = keys[0][0]

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def new_data_key(self) -> tuple[bytes, WrappedKey]:
        key = os.urandom(KEY_BYTES)
        return key, self.wrap(key)

    def wrap(self, key: bytes) -> WrappedKey:
        return WrappedKey(self.active_id, aes_key_wrap(self._keys[self.active_id], key))

    def unwrap(self, wrapped: WrappedKey | None) -> bytes:
        if wrapped is None:
            raise KeyUnavailable("the data key has been deleted")
        master = self._keys.get(wrapped.key_id)
        if master is None:
            raise KeyUnavailable(f"master key {wrapped.key_id!r} is not configured")
        try:
            return aes_key_unwrap(master, wrapped.wrapped)
        except InvalidUnwrap:
            raise Tampered("wrapped data key failed to unwrap") from None

    def rewrap(self, wrapped: WrappedKey) -> WrappedKey:
        """The same data key under the active master key (rotation)."""
        if wrapped.key_id == self.active_id:
            return wrapped
        return self.wrap(self.unwrap(wrapped))


def parse_master_keys(entries: list[str], local_key: bytes) -> list[tuple[str, bytes]]:
    """``["k2=<base64url>", "local"]`` → [(id, key)]; ``local`` stands for the key derived from the master
    secret. Raises ValueError naming the bad entry."""
    keys: list[tuple[str, bytes]] = []
    for entry in entries:
        key_id, sep, encoded = entry.strip().partition("=")
        key_id = key_id.strip()
        if not key_id:
            raise ValueError("an entry has no key id")
        if key_id == LOCAL_KEY_ID and not sep:
            keys.append((LOCAL_KEY_ID, local_key))
            continue
        try:
            key = base64.urlsafe_b64decode(encoded.strip() + "=" * (-len(encoded.strip()) % 4))
        except (binascii.Error, ValueError):
            raise ValueError(f"master key {key_id!r} is not base64url") from None
        if len(key) != KEY_BYTES:
            raise ValueError(f"master key {key_id!r} must be {KEY_BYTES} bytes (got {len(key)})")
        if any(existing == key_id for existing, _ in keys):
            raise ValueError(f"master key id {key_id!r} appears twice")
        keys.append((key_id, key))
    return keys


def generate_master_key_entry(key_id: str) -> str:
    return f"{key_id}={base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode().rstrip('=')}"


def keyed_hash(key: bytes, value: str) -> str:
    """A keyed hash for look-ups (national IDs): equal inputs match, nothing can be guessed offline."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
