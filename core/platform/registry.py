"""The enabled providers, built from what plugins offer and what configuration asks for."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from pydantic import ValidationError

from legetime.core.platform.config import Settings, describe_validation_error
from legetime.core.platform.db.plugin_tables import PluginDatabase
from legetime.core.platform.errors import ConfigError, PluginError
from legetime.core.platform.providers import (
    CAPABILITIES,
    Capability,
    CapabilityDescription,
    ProviderContext,
    ProviderSpec,
)

P = TypeVar("P")


@dataclass
class EnabledProvider:
    spec: ProviderSpec
    settings: Any
    instance: object


@dataclass
class ProviderRegistry:
    enabled: dict[Capability, list[EnabledProvider]] = field(default_factory=dict)
    offered: list[ProviderSpec] = field(default_factory=list)

    def get(self, capability: CapabilityDescription[P], name: str | None = None) -> P:
        """The enabled provider of ``name``, or the default (the first enabled) without a name. An
        optional capability may have none: ask ``names`` first."""
        for provider in self.enabled.get(capability.capability, []):
            if name is None or provider.spec.name == name:
                return cast(P, provider.instance)
        raise LookupError(f"no enabled {capability.capability} provider named {name!r}")

    def names(self, capability: Capability) -> list[str]:
        return [p.spec.name for p in self.enabled.get(capability, [])]

    def all_enabled(self) -> list[EnabledProvider]:
        return [p for providers in self.enabled.values() for p in providers]


def build_registry(
    specs: Iterable[ProviderSpec],
    settings: Settings,
    derive_key: Callable[[str], bytes],
    database: PluginDatabase,
    stored_values: Callable[[ProviderSpec], dict[str, Any]] | None = None,
) -> ProviderRegistry:
    """The registry ``settings`` ask for; ``stored_values`` gives each provider's settings operators stored
    (``runtime_settings``; the environment's win), on top of its environment."""
    by_capability: dict[Capability, dict[str, ProviderSpec]] = defaultdict(dict)
    for spec in specs:
        if spec.name in by_capability[spec.capability]:
            raise PluginError(f"two plugins offer a {spec.capability} provider named {spec.name!r}")
        by_capability[spec.capability][spec.name] = spec

    context = ProviderContext(settings=settings, derive_key=derive_key, database=database)
    registry = ProviderRegistry(offered=[s for d in by_capability.values() for s in d.values()])
    for capability, description in CAPABILITIES.items():
        value = getattr(settings, description.setting)
        wanted: list[str] = list(value) if description.several else [value] if value else []
        variable = description.variable
        if not wanted and description.optional:
            registry.enabled[capability] = []
            continue
        if not wanted:
            raise ConfigError(variable, f"enable at least one {capability} provider")
        if len(set(wanted)) != len(wanted):
            raise ConfigError(variable, f"a {capability} provider is named twice: {', '.join(wanted)}")
        offered = by_capability[capability]
        registry.enabled[capability] = []
        for name in wanted:
            chosen = offered.get(name)
            if chosen is None:
                choices = ", ".join(sorted(offered)) or "none"
                raise ConfigError(variable, f"unknown {capability} provider {name!r} (available: {choices})")
            if chosen.test_only and settings.is_production:
                raise ConfigError(
                    variable,
                    f"{capability} provider {name!r} is a simulation and is refused in production",
                )
            values = stored_values(chosen) if stored_values is not None else {}
            registry.enabled[capability].append(instantiate(chosen, context, values))
    return registry


def instantiate(
    spec: ProviderSpec, context: ProviderContext, values: dict[str, Any] | None = None
) -> EnabledProvider:
    """Build one provider from its own settings (the environment's, and ``values`` for the fields it does
    not give) and check its Protocol."""
    prefix = str(spec.settings_model.model_config.get("env_prefix", ""))
    try:
        provider_settings = spec.settings_model(**(values or {}))
    except ValidationError as exc:
        raise describe_validation_error(exc, prefix) from None
    instance = spec.factory(provider_settings, context)
    protocol = CAPABILITIES[spec.capability].protocol
    if not isinstance(instance, protocol):
        raise PluginError(
            f"{spec.capability} provider {spec.name!r} does not implement {protocol.__name__} "
            f"(needs: name and the methods of legetime.sdk.{protocol.__name__})"
        )
    if spec.capability is Capability.VIDEO and getattr(instance, "records", None) is not False:
        raise PluginError(
            f"video provider {spec.name!r} does not say records = False: Legetime never records video"
        )
    return EnabledProvider(spec=spec, settings=provider_settings, instance=instance)
