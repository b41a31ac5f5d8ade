"""Provider Protocols: what a plugin implements for each capability.

Providers are objects with ``async`` methods. Plugins *register* them through the ``register_providers``
hook with a :class:`ProviderSpec`; configuration decides which are enabled and which is the default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Final, Generic, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator
from pydantic_settings import BaseSettings, SettingsConfigDict

from legetime.core.platform.providers.identity import IdentityProvider
from legetime.core.platform.providers.invoicing import InvoicingProvider
from legetime.core.platform.providers.journal import JournalProvider
from legetime.core.platform.providers.payment import PaymentProvider
from legetime.core.platform.providers.scheduling import SchedulingProvider
from legetime.core.platform.providers.sms import SmsProvider
from legetime.core.platform.providers.storage import StorageProvider
from legetime.core.platform.providers.video import VideoProvider

if TYPE_CHECKING:
    from legetime.core.platform.config import Settings
    from legetime.core.platform.db.plugin_tables import PluginDatabase


class Capability(StrEnum):
    IDENTITY = "identity"
    PAYMENT = "payment"
    SMS = "sms"
    STORAGE = "storage"
    JOURNAL = "journal"
    SCHEDULING = "scheduling"
    VIDEO = "video"
    INVOICING = "invoicing"


P = TypeVar("P")


@dataclass(frozen=True)
class CapabilityDescription(Generic[P]):
    """Everything the platform knows of one capability, in one place: the Protocol its providers
    implement, the setting that enables them and how it is titled for integrators. ``P`` is the Protocol,
    so ``platform.providers.get(PAYMENT)`` is typed ``PaymentProvider``."""

    capability: Capability
    protocol: type
    """The (runtime-checkable) Protocol of ``P``, checked against every enabled provider at start-up."""
    setting: str
    """The field of ``Settings`` naming the enabled providers (``LEGETIME_<SETTING>``)."""
    several: bool
    """Whether several providers may be enabled at once (the first is the default)."""
    title: str
    optional: bool = False
    """Whether the platform runs without it (an empty setting): a clinic that offers no video."""

    @property
    def variable(self) -> str:
        return f"LEGETIME_{self.setting.upper()}"


IDENTITY: Final[CapabilityDescription[IdentityProvider]] = CapabilityDescription(
    Capability.IDENTITY, IdentityProvider, "identity_providers", several=True, title="Identity"
)
PAYMENT: Final[CapabilityDescription[PaymentProvider]] = CapabilityDescription(
    Capability.PAYMENT, PaymentProvider, "payment_providers", several=True, title="Payment"
)
SMS: Final[CapabilityDescription[SmsProvider]] = CapabilityDescription(
    Capability.SMS, SmsProvider, "sms_providers", several=True, title="SMS"
)
STORAGE: Final[CapabilityDescription[StorageProvider]] = CapabilityDescription(
    Capability.STORAGE, StorageProvider, "storage_provider", several=False, title="Storage"
)
JOURNAL: Final[CapabilityDescription[JournalProvider]] = CapabilityDescription(
    Capability.JOURNAL, JournalProvider, "journal_provider", several=False, title="Journal drafting"
)
SCHEDULING: Final[CapabilityDescription[SchedulingProvider]] = CapabilityDescription(
    Capability.SCHEDULING, SchedulingProvider, "scheduling_provider", several=False, title="Scheduling"
)
VIDEO: Final[CapabilityDescription[VideoProvider]] = CapabilityDescription(
    Capability.VIDEO,
    VideoProvider,
    "video_provider",
    several=False,
    title="Video consultations",
    optional=True,
)
INVOICING: Final[CapabilityDescription[InvoicingProvider]] = CapabilityDescription(
    Capability.INVOICING, InvoicingProvider, "invoicing_provider", several=False, title="Invoicing"
)
CAPABILITIES: Final[dict[Capability, CapabilityDescription[Any]]] = {
    description.capability: description
    for description in (IDENTITY, PAYMENT, SMS, STORAGE, JOURNAL, SCHEDULING, VIDEO, INVOICING)
}


class ProviderSettings(BaseSettings):
    """Base of a provider's settings model. Subclasses set ``env_prefix`` (``LEGETIME_<NAME>_``); secrets
    are ``SecretStr`` so they are masked when read back.

    Validators are built when a model is first used (``defer_build``): every plugin's models are
    defined at start-up, and only the enabled providers' are ever validated."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True, defer_build=True)


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
    database: PluginDatabase
    """The platform's database, for the plugin's own tables (``register_tables``):
    ``async with context.database.transaction() as session``."""


@dataclass(frozen=True)
class ProviderCheck:
    """What a provider's optional ``async def check(self) -> ProviderCheck`` reports: whether its
    configuration works (credentials accepted, service reachable), found without side effects — no text
    sent, no money reserved. ``message`` is for operators: no secrets."""

    ok: bool
    message: str


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
    plugin: str = ""
    """The plugin that offered it (filled in by the core)."""


__all__ = [
    "CAPABILITIES",
    "IDENTITY",
    "INVOICING",
    "JOURNAL",
    "PAYMENT",
    "SCHEDULING",
    "SMS",
    "STORAGE",
    "VIDEO",
    "Capability",
    "CapabilityDescription",
    "IdentityProvider",
    "JournalProvider",
    "NoSettings",
    "PaymentProvider",
    "ProviderCheck",
    "ProviderContext",
    "ProviderSettings",
    "ProviderSpec",
    "SmsProvider",
    "StorageProvider",
]
