"""Provider Protocols: what a plugin implements for each capability.

Providers are objects with ``async`` methods. Plugins *register* them through the ``register_providers``
hook with a :class:`ProviderSpec`; configuration decides which are enabled and which is the default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator
from pydantic_settings import BaseSettings, SettingsConfigDict

from legetime.core.platform.providers.identity import IdentityProvider
from legetime.core.platform.providers.journal import JournalProvider
from legetime.core.platform.providers.payment import PaymentProvider
from legetime.core.platform.providers.sms import SmsProvider
from legetime.core.platform.providers.storage import StorageProvider

if TYPE_CHECKING:
    from legetime.core.platform.config import Settings


class Capability(StrEnum):
    IDENTITY = "identity"
    PAYMENT = "payment"
    SMS = "sms"
    STORAGE = "storage"
    JOURNAL = "journal"


PROTOCOLS: dict[Capability, type] = {
    Capability.IDENTITY: IdentityProvider,
    Capability.PAYMENT: PaymentProvider,
    Capability.SMS: SmsProvider,
    Capability.STORAGE: StorageProvider,
    Capability.JOURNAL: JournalProvider,
}


class ProviderSettings(BaseSettings):
    """Base of a provider's settings model. Subclasses set ``env_prefix`` (``LEGETIME_<NAME>_``); secrets
    are ``SecretStr`` so they are masked when read back."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)


def https_url(value: str) -> str:
    """A provider's address: https (plain http only on the loopback, where tests run local fakes), without a
    trailing slash."""
    parts = urlsplit(value)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError(f"must be an https URL (plain http only on localhost): {value!r}")
    return value.rstrip("/")


HttpsUrl = Annotated[str, AfterValidator(https_url)]
"""A settings field holding a provider's address (see ``https_url``)."""


class NoSettings(ProviderSettings):
    """For providers that need no configuration."""


@dataclass(frozen=True)
class ProviderContext:
    """What a provider factory gets besides its own settings."""

    settings: Settings
    derive_key: Callable[[str], bytes]
    """A key derived from the master secret for a purpose string (HKDF); stable across restarts."""


@dataclass(frozen=True)
class ProviderSpec:
    """One provider a plugin offers. ``factory(settings, context)`` builds the provider object."""

    capability: Capability
    name: str
    factory: Callable[[Any, ProviderContext], object]
    settings_model: type[ProviderSettings] = NoSettings
    description: str = ""
    test_only: bool = False
    """True for simulations (test BankID, fake payments, SMS outbox): production refuses them."""
    extra: dict[str, Any] = field(default_factory=dict)
    plugin: str = ""
    """The plugin that offered it (filled in by the core)."""


__all__ = [
    "PROTOCOLS",
    "Capability",
    "IdentityProvider",
    "JournalProvider",
    "NoSettings",
    "PaymentProvider",
    "ProviderContext",
    "ProviderSettings",
    "ProviderSpec",
    "SmsProvider",
    "StorageProvider",
]
