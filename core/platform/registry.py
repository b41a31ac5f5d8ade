"""The enabled providers, built from what plugins offer and what configuration asks for."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from pydantic import ValidationError

from legetime.core.platform.config import Settings, describe_validation_error
from legetime.core.platform.errors import ConfigError, PluginError
from legetime.core.platform.providers import (
    PROTOCOLS,
    Capability,
    IdentityProvider,
    JournalProvider,
    PaymentProvider,
    ProviderContext,
    ProviderSpec,
    SmsProvider,
    StorageProvider,
)

P = TypeVar("P")

# Which setting enables which capability, and whether it takes several names.
CAPABILITY_SETTINGS: dict[Capability, tuple[str, bool]] = {
    Capability.IDENTITY: ("identity_providers", True),
    Capability.PAYMENT: ("payment_providers", True),
    Capability.SMS: ("sms_provider", False),
    Capability.STORAGE: ("storage_provider", False),
    Capability.JOURNAL: ("journal_provider", False),
}


def _env(setting: str) -> str:
    return f"LEGETIME_{setting.upper()}"


@dataclass
class EnabledProvider:
    spec: ProviderSpec
    settings: Any
    instance: object


@dataclass
class ProviderRegistry:
    enabled: dict[Capability, list[EnabledProvider]] = field(default_factory=dict)
    offered: list[ProviderSpec] = field(default_factory=list)

    def _get(self, capability: Capability, name: str | None, kind: type[P]) -> P:
        providers = self.enabled.get(capability, [])
        for provider in providers:
            if name is None or provider.spec.name == name:
                return cast(P, provider.instance)
        raise LookupError(f"no enabled {capability} provider named {name!r}")

    def identity(self, name: str | None = None) -> IdentityProvider:
        return self._get(Capability.IDENTITY, name, IdentityProvider)  # type: ignore[type-abstract]

    def payment(self, name: str | None = None) -> PaymentProvider:
        return self._get(Capability.PAYMENT, name, PaymentProvider)  # type: ignore[type-abstract]

    def sms(self) -> SmsProvider:
        return self._get(Capability.SMS, None, SmsProvider)  # type: ignore[type-abstract]

    def storage(self) -> StorageProvider:
        return self._get(Capability.STORAGE, None, StorageProvider)  # type: ignore[type-abstract]

    def journal(self) -> JournalProvider:
        return self._get(Capability.JOURNAL, None, JournalProvider)  # type: ignore[type-abstract]

    def names(self, capability: Capability) -> list[str]:
        return [p.spec.name for p in self.enabled.get(capability, [])]

    def all_enabled(self) -> list[EnabledProvider]:
        return [p for providers in self.enabled.values() for p in providers]


def build_registry(
    specs: Iterable[ProviderSpec], settings: Settings, derive_key: Callable[[str], bytes]
) -> ProviderRegistry:
    by_capability: dict[Capability, dict[str, ProviderSpec]] = defaultdict(dict)
    for spec in specs:
        if spec.name in by_capability[spec.capability]:
            raise PluginError(f"two plugins offer a {spec.capability} provider named {spec.name!r}")
        by_capability[spec.capability][spec.name] = spec

    context = ProviderContext(settings=settings, derive_key=derive_key)
    registry = ProviderRegistry(offered=[s for d in by_capability.values() for s in d.values()])
    for capability, (setting, many) in CAPABILITY_SETTINGS.items():
        value = getattr(settings, setting)
        wanted: list[str] = list(value) if many else [value]
        if not wanted:
            raise ConfigError(_env(setting), f"enable at least one {capability} provider")
        offered = by_capability[capability]
        registry.enabled[capability] = []
        for name in wanted:
            chosen = offered.get(name)
            if chosen is None:
                choices = ", ".join(sorted(offered)) or "none"
                raise ConfigError(
                    _env(setting), f"unknown {capability} provider {name!r} (available: {choices})"
                )
            if chosen.test_only and settings.is_production:
                raise ConfigError(
                    _env(setting),
                    f"{capability} provider {name!r} is a simulation and is refused in production",
                )
            registry.enabled[capability].append(_instantiate(chosen, context))
    return registry


def _instantiate(spec: ProviderSpec, context: ProviderContext) -> EnabledProvider:
    prefix = str(spec.settings_model.model_config.get("env_prefix", ""))
    try:
        provider_settings = spec.settings_model()
    except ValidationError as exc:
        raise describe_validation_error(exc, prefix) from None
    instance = spec.factory(provider_settings, context)
    protocol = PROTOCOLS[spec.capability]
    if not isinstance(instance, protocol):
        raise PluginError(
            f"{spec.capability} provider {spec.name!r} does not implement {protocol.__name__} "
            f"(needs: name and the methods of core.providers.{spec.capability})"
        )
    return EnabledProvider(spec=spec, settings=provider_settings, instance=instance)
