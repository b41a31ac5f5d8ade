"""Operators' view and changes of the settings that can change while the service runs: the editable
platform settings and every provider's settings model (``core.platform.runtime_settings``).

- **Secrets are write-only**: shown as set or not, never returned.
- **The environment wins**: a setting an environment variable gives is shown as locked, and a change to
  it is refused.
- **Validated by the same model**, with its messages, before anything is stored; a change that would
  leave an enabled provider unbuildable is refused.
- Stored sealed, with who and when; the access log names the fields changed, never their values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
from pydantic_core import PydanticUndefined

from legetime.core.identity.actors import require_operator
from legetime.core.identity.ctx import Ctx
from legetime.core.platform import runtime_settings
from legetime.core.platform.config import ENV_PREFIX, Settings
from legetime.core.platform.errors import (
    ConfigError,
    NotFound,
    PluginError,
    ValidationError,
)
from legetime.core.platform.providers import CAPABILITIES, Capability, ProviderCheck, ProviderSpec
from legetime.core.platform.providers.settings_rows import kind_of, setting_rows
from legetime.core.platform.runtime_settings import PLATFORM, Stored, provider_scope
from legetime.core.protection import audit

CHECK_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class SettingView:
    name: str
    variable: str
    kind: str
    description: str
    secret: bool
    source: str
    """``environment`` (locked), ``stored`` (an operator's) or ``default``."""
    value: Any
    """JSON; None for a secret (see ``is_set``)."""
    is_set: bool

    @property
    def locked(self) -> bool:
        return self.source == "environment"


@dataclass(frozen=True)
class ProviderView:
    spec: ProviderSpec
    enabled: bool
    default: bool
    settings: list[SettingView]


async def _stored(ctx: Ctx) -> Stored:
    return await runtime_settings.load(ctx.session, ctx.platform.keyring)


async def platform_settings(ctx: Ctx) -> list[SettingView]:
    require_operator(ctx.actor)
    base = _base(ctx)
    stored = (await _stored(ctx)).of(PLATFORM)
    locked = runtime_settings.platform_locked(base)
    current = ctx.platform.settings
    views = []
    for name in runtime_settings.EDITABLE:
        info = Settings.model_fields[name]
        source = "environment" if name in locked else "stored" if name in stored else "default"
        value = runtime_settings.plain(getattr(current, name))
        views.append(
            SettingView(
                name=name,
                variable=f"{ENV_PREFIX}{name.upper()}",
                kind=kind_of(info.annotation),
                description=" ".join((info.description or "").split()),
                secret=False,
                source=source,
                value=value,
                is_set=value not in (None, "", []),
            )
        )
    return views


async def providers(ctx: Ctx, capability: Capability | None = None) -> list[ProviderView]:
    require_operator(ctx.actor)
    stored = await _stored(ctx)
    views = []
    for spec in sorted(ctx.platform.providers.offered, key=lambda s: (s.capability.value, s.name)):
        if capability is not None and spec.capability is not capability:
            continue
        enabled = ctx.platform.providers.names(spec.capability)
        views.append(
            ProviderView(
                spec=spec,
                enabled=spec.name in enabled,
                default=bool(enabled) and enabled[0] == spec.name,
                settings=_provider_settings(spec, stored),
            )
        )
    return views


def _provider_settings(spec: ProviderSpec, stored: Stored) -> list[SettingView]:
    environment = runtime_settings.provider_environment(spec)
    locked = environment.keys()
    saved = stored.of(provider_scope(spec))
    views = []
    for row, (name, info) in zip(setting_rows(spec), spec.settings_model.model_fields.items(), strict=True):
        if name in locked:
            source, value = "environment", environment.get(name)
        elif name in saved:
            source, value = "stored", saved[name]
        else:
            default = info.get_default(call_default_factory=True)
            source, value = (
                "default",
                None if default is PydanticUndefined else runtime_settings.plain(default),
            )
        is_set = value not in (None, "", [])
        views.append(
            SettingView(
                name=name,
                variable=row.variable,
                kind=row.kind,
                description=row.description,
                secret=row.secret,
                source=source,
                value=None if row.secret else value,
                is_set=is_set,
            )
        )
    return views


async def change_platform(ctx: Ctx, values: dict[str, Any], clear: Sequence[str]) -> list[str]:
    """Store platform settings (``clear``: back to the environment's or the default); returns the names
    changed. Raises ``ValidationError`` with the setting's name as ``field``."""
    require_operator(ctx.actor)
    names = _names(values, clear, runtime_settings.EDITABLE, runtime_settings.platform_locked(_base(ctx)))
    stored = await _stored(ctx)
    merged = {k: v for k, v in {**stored.of(PLATFORM), **values}.items() if k not in clear}
    candidate = Stored({**stored.values, PLATFORM: merged}, stored.version)
    _validate(ctx, candidate, None)
    await _save(ctx, PLATFORM, merged, names)
    return names


async def change_provider(
    ctx: Ctx, capability: Capability, name: str, values: dict[str, Any], clear: Sequence[str]
) -> list[str]:
    """Store a provider's settings (``clear``: back to its environment's or the default)."""
    require_operator(ctx.actor)
    spec = _spec(ctx, capability, name)
    fields = tuple(spec.settings_model.model_fields)
    names = _names(values, clear, fields, runtime_settings.provider_locked(spec))
    stored = await _stored(ctx)
    scope = provider_scope(spec)
    merged = {k: v for k, v in {**stored.of(scope), **values}.items() if k not in clear}
    candidate = Stored({**stored.values, scope: merged}, stored.version)
    _validate(ctx, candidate, spec)
    await _save(ctx, scope, merged, names)
    return names


async def provider_to_check(ctx: Ctx, capability: Capability, name: str) -> object:
    """The enabled provider an operator asks to test itself (the asking is in the access log)."""
    require_operator(ctx.actor)
    _spec(ctx, capability, name)
    if name not in ctx.platform.providers.names(capability):
        raise NotFound("Leverandøren er ikke slått på.", field="provider")
    target = f"{capability.value}:{name}"
    await audit.log(ctx, person_id=None, object_type="provider", object_id=target, action="check")
    return ctx.platform.providers.get(CAPABILITIES[capability], name)


async def check(provider: object) -> ProviderCheck | None:
    """Ask a provider to test its configuration without side effects (outside any transaction: it may
    wait on the network); None when it cannot."""
    probe = getattr(provider, "check", None)
    if probe is None:
        return None
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            result = await probe()
    except TimeoutError:
        return ProviderCheck(ok=False, message=f"No answer within {CHECK_TIMEOUT_SECONDS:g} seconds.")
    except Exception as exc:  # the provider's own error; its text may name a secret, its type does not
        return ProviderCheck(ok=False, message=f"The check failed: {type(exc).__name__}.")
    if not isinstance(result, ProviderCheck):
        return ProviderCheck(ok=False, message="The provider's check did not answer with a result.")
    return result


def _base(ctx: Ctx) -> Settings:
    return ctx.platform.base_settings or ctx.platform.settings


def _spec(ctx: Ctx, capability: Capability, name: str) -> ProviderSpec:
    for spec in ctx.platform.providers.offered:
        if spec.capability is capability and spec.name == name:
            return spec
    raise NotFound("Fant ikke leverandøren.", field="provider")


def _names(
    values: dict[str, Any], clear: Sequence[str], fields: Sequence[str], locked: frozenset[str]
) -> list[str]:
    names = [*values, *clear]
    if not names:
        raise ValidationError("Ingen innstillinger å endre.", field="values")
    for name in names:
        if name not in fields:
            raise ValidationError(f"Ukjent innstilling: {name}.", field=name)
        if name in locked:
            raise ValidationError("Gitt av en miljøvariabel, og kan ikke endres her.", field=name)
    if len(set(names)) != len(names):
        raise ValidationError("En innstilling er nevnt to ganger.", field="values")
    return sorted(names)


def _validate(ctx: Ctx, candidate: Stored, spec: ProviderSpec | None) -> None:
    """What ``candidate`` would make of the platform can be built; the first error, as the model words it."""
    try:
        _, registry = ctx.platform.configured(candidate)
        if spec is not None and spec.name not in registry.names(spec.capability):
            # Not enabled: its model checks what is given (what it still needs comes before enabling it).
            try:
                spec.settings_model(**runtime_settings.provider_values(spec, candidate))
            except pydantic.ValidationError as exc:
                given = [e for e in exc.errors() if e.get("type") != "missing"]
                if given:
                    raise _invalid(given[0]) from None
    except pydantic.ValidationError as exc:
        raise _invalid(exc.errors()[0]) from None
    except ConfigError as exc:
        raise ValidationError(str(exc), field=_setting_name(exc.setting)) from None
    except PluginError as exc:
        raise ValidationError(str(exc)) from None


def _invalid(error: Any) -> ValidationError:
    loc = [str(part) for part in error.get("loc", ()) if not isinstance(part, int)]
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return ValidationError(message, field=loc[0] if loc else None)


def _setting_name(variable: str) -> str | None:
    name = variable.removeprefix(ENV_PREFIX).lower()
    return name if name in Settings.model_fields else None


async def _save(ctx: Ctx, scope: str, values: dict[str, Any], names: list[str]) -> None:
    await runtime_settings.store(
        ctx.session,
        ctx.platform.keyring,
        scope,
        {k: runtime_settings.plain(v) for k, v in values.items()},
        changed_by=ctx.actor.person_id,
        at=ctx.now,
    )
    await audit.log(
        ctx,
        person_id=None,
        object_type="settings",
        object_id=scope,
        action="change_settings",
        reason=", ".join(names),
    )
