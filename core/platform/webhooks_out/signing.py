"""An endpoint's signing secrets (Standard Webhooks ``whsec_<base64>``) and the headers of a delivery.

A secret is shown once, when made; at rest it is sealed with the endpoint's own data key, wrapped by the
platform's master keys (as a person's national ID is), so master key rotation covers it. After a rotation
the previous secret signs too, until it expires: a delivery then carries both signatures.
"""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from legetime.core.platform.crypto import KeyRing, WrappedKey, bound_to, seal, unseal
from legetime.core.platform.db.models import WebhookEndpoint

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
_CURRENT, _PREVIOUS = "webhook_secret", "webhook_secret_previous"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def give_key(ring: KeyRing, endpoint: WebhookEndpoint) -> None:
    """A new endpoint's data key."""
    _, wrapped = ring.new_data_key()
    endpoint.key_id, endpoint.wrapped_key = wrapped.key_id, wrapped.wrapped


def _key(ring: KeyRing, endpoint: WebhookEndpoint) -> bytes:
    return ring.unwrap(WrappedKey(endpoint.key_id, endpoint.wrapped_key))


def store_secret(ring: KeyRing, endpoint: WebhookEndpoint, secret: str) -> None:
    endpoint.secret_sealed = seal(_key(ring, endpoint), secret.encode(), bound_to(endpoint.id, _CURRENT))


def rotate_secret(ring: KeyRing, endpoint: WebhookEndpoint, new: str, keep_until: datetime) -> None:
    """``new`` becomes the secret; the current one keeps signing until ``keep_until``."""
    key = _key(ring, endpoint)
    old = unseal(key, endpoint.secret_sealed, bound_to(endpoint.id, _CURRENT))
    endpoint.previous_secret_sealed = seal(key, old, bound_to(endpoint.id, _PREVIOUS))
    endpoint.previous_secret_expires_at = keep_until
    endpoint.secret_sealed = seal(key, new.encode(), bound_to(endpoint.id, _CURRENT))


def signing_secrets(ring: KeyRing, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign a delivery now: the current one, and the previous one in its grace period."""
    key = _key(ring, endpoint)
    secrets = [unseal(key, endpoint.secret_sealed, bound_to(endpoint.id, _CURRENT)).decode()]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_sealed is not None and expires is not None and now < expires:
        secrets.append(
            unseal(key, endpoint.previous_secret_sealed, bound_to(endpoint.id, _PREVIOUS)).decode()
        )
    return secrets


def headers(secrets: list[str], message_id: str, body: str, at: datetime) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (one ``v1,…`` per secret,
    space-separated) as the Standard Webhooks specification has them."""
    at = at.astimezone(UTC)
    signatures = " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }
