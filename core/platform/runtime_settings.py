"""Settings operators change while the service runs (through GraphQL), on top of the environment.

Two kinds of scope, a row each in ``runtime_settings``, its values sealed with a data key of its own:

- ``platform``: the platform settings in ``EDITABLE`` (which providers of each capability are enabled, and
  in which order — the first is the default —, the SMS sender name, when answered cases close, the SLA
  alert thresholds);
- ``provider:<capability>:<name>``: any field of that provider's settings model.

**The environment wins.** A setting given by an environment variable (or, for the platform, passed to
``Settings`` explicitly) is *locked*: a stored value for it is ignored, and operators cannot store one.
A value is validated by the same model that validates the environment, with its messages.

**Every process follows.** A change is applied by the process that made it at once, then announced on
the live channel (``LiveEvents.settings_changed``, through Redis to every API process and worker); each
process also compares the newest ``changed_at`` every ``CHECK_SECONDS``, in case an announcement was
lost (and for ``serve --workers`` without Redis). Applying means building the effective ``Settings`` and
the provider registry anew and swapping them in: the next request or job uses them; one in flight keeps
what it took.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import SecretStr
from pydantic_settings import EnvSettingsSource
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.platform.crypto import KeyRing, WrappedKey, bound_to, seal, unseal
from legetime.core.platform.db.models import RuntimeSettings
from legetime.core.platform.providers import ProviderSpec

if TYPE_CHECKING:
    from legetime.core.platform.config import Settings
    from legetime.core.platform.runtime import Platform

log = structlog.get_logger(__name__)

PLATFORM = "platform"
EDITABLE = (
    "identity_providers",
    "payment_providers",
    "sms_providers",
    "storage_provider",
    "journal_provider",
    "scheduling_provider",
    "video_provider",
    "invoicing_provider",
    "sms_sender",
    "auto_close_hours",
    "sla_alert_minutes",
    "appointment_change_hours",
    "invoice_fee_minor",
    "invoice_due_days",
)
"""The platform settings operators may change; the rest (database, keys, limits …) only by deployment."""
CHECK_SECONDS = 30.0
_OWNER = uuid.UUID(int=0)  # the AAD binds a row's values to its scope (below), not to a uuid


def provider_scope(spec: ProviderSpec) -> str:
    return f"provider:{spec.capability.value}:{spec.name}"


@dataclass(frozen=True)
class Stored:
    """What operators stored, by scope, and the newest change (the version every process compares)."""

    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: datetime | None = None

    def of(self, scope: str) -> dict[str, Any]:
        return self.values.get(scope, {})


def _aad(scope: str) -> bytes:
    return bound_to(_OWNER, f"runtime-settings:{scope}")


async def version(session: AsyncSession) -> datetime | None:
    return await session.scalar(select(func.max(RuntimeSettings.changed_at)))


async def load(session: AsyncSession, ring: KeyRing) -> Stored:
    values: dict[str, dict[str, Any]] = {}
    newest: datetime | None = None
    for row in await session.scalars(select(RuntimeSettings)):
        key = ring.unwrap(WrappedKey(row.key_id, row.wrapped_key))
        values[row.scope] = json.loads(unseal(key, row.values_sealed, _aad(row.scope)))
        newest = row.changed_at if newest is None or row.changed_at > newest else newest
    return Stored(values, newest)


async def store(
    session: AsyncSession,
    ring: KeyRing,
    scope: str,
    values: dict[str, Any],
    *,
    changed_by: uuid.UUID | None,
    at: datetime,
) -> None:
    """Replace the stored values of ``scope`` (an empty dict: back to the environment and defaults)."""
    row = await session.get(RuntimeSettings, scope, with_for_update=True)
    if row is None:
        key, wrapped = ring.new_data_key()
        row = RuntimeSettings(scope=scope, key_id=wrapped.key_id, wrapped_key=wrapped.wrapped)
        session.add(row)
    else:
        key = ring.unwrap(WrappedKey(row.key_id, row.wrapped_key))
    row.values_sealed = seal(key, json.dumps(values, sort_keys=True).encode(), _aad(scope))
    row.changed_by_id, row.changed_at = changed_by, at


def platform_locked(base: Settings) -> frozenset[str]:
    """The editable platform settings the environment (or the code that made ``base``) fixed."""
    return frozenset(name for name in EDITABLE if name in base.model_fields_set)


def provider_environment(spec: ProviderSpec) -> dict[str, Any]:
    """What a provider's environment variables give, by field (as JSON values)."""
    return {name: plain(value) for name, value in EnvSettingsSource(spec.settings_model)().items()}


def provider_locked(spec: ProviderSpec) -> frozenset[str]:
    """The fields of a provider's settings model its environment variables give."""
    return frozenset(provider_environment(spec))


def effective_settings(base: Settings, stored: Stored) -> Settings:
    """``base`` with the stored platform values that are not locked (validated by ``Settings``; raises
    pydantic's ``ValidationError``)."""
    locked = platform_locked(base)
    updates = {k: v for k, v in stored.of(PLATFORM).items() if k in EDITABLE and k not in locked}
    if not updates:
        return base
    return type(base).model_validate({**base.model_dump(), **updates})


def provider_values(spec: ProviderSpec, stored: Stored) -> dict[str, Any]:
    """The stored values of a provider that its environment does not lock (for its settings model)."""
    locked = provider_locked(spec)
    fields = spec.settings_model.model_fields
    return {k: v for k, v in stored.of(provider_scope(spec)).items() if k in fields and k not in locked}


def plain(value: Any) -> Any:
    """A settings value as JSON (a secret's value included: it is sealed where it is stored)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


async def follow_changes(platform: Platform) -> Callable[[], None]:
    """Apply what operators change, in this process, from now on (see the module). Returns the function
    that stops following (in the same loop)."""

    async def check() -> None:
        try:
            await platform.apply_runtime_settings()
        except Exception as exc:  # a broken stored value must not stop the process: it keeps what it has
            log.error("settings.apply_failed", error=type(exc).__name__)

    def announced() -> None:
        asyncio.get_running_loop().create_task(check())

    async def every_now_and_then() -> None:
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            await check()

    stop_watching = platform.live.watch_settings(announced)
    task = asyncio.get_running_loop().create_task(every_now_and_then())

    def stop() -> None:
        stop_watching()
        task.cancel()

    return stop
