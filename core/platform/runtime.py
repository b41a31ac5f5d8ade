"""The running platform: settings, plugins, providers, database and jobs, built once at start-up.

Start-up fails fast: invalid settings, unknown hooks, unknown or unsafe providers and invalid plugin
settings all raise before anything is served.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

import pluggy
import structlog
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from legetime.core.platform.config import Settings, load_settings
from legetime.core.platform.crypto import KeyRing, parse_master_keys
from legetime.core.platform.db.engine import Database
from legetime.core.platform.db.plugin_tables import PluginDatabase
from legetime.core.platform.hooks import Hooks
from legetime.core.platform.plugins import DEFAULT_PLUGINS, create_plugin_manager
from legetime.core.platform.rate_limits import RateLimits
from legetime.core.platform.registry import ProviderRegistry, build_registry

log = structlog.get_logger(__name__)

if TYPE_CHECKING:
    from legetime.core.platform.jobs.types import JobHandler, PeriodicJob
    from legetime.core.platform.live import LiveEvents
    from legetime.core.platform.runtime_settings import Stored


@dataclass
class Platform:
    settings: Settings
    pm: pluggy.PluginManager
    hooks: Hooks
    providers: ProviderRegistry
    plugin_db: PluginDatabase
    """The database handle of the plugins' own tables (``ProviderContext.database``)."""
    jobs: dict[str, JobHandler] = field(default_factory=dict)
    periodic_jobs: list[PeriodicJob] = field(default_factory=list)
    base_settings: Settings | None = None
    """The settings the process started with (the environment's); ``settings`` adds what operators
    changed since (``runtime_settings``)."""
    _derived_keys: dict[str, bytes] = field(default_factory=dict, repr=False)
    _settings_version: datetime | None = field(default=None, repr=False)

    @classmethod
    def create(
        cls,
        settings: Settings | None = None,
        *,
        extra_plugins: Iterable[object] = (),
        default_plugins: Iterable[str] = DEFAULT_PLUGINS,
        load_entry_points: bool = True,
    ) -> Platform:
        settings = settings or load_settings()
        pm = create_plugin_manager(
            default_plugins=default_plugins,
            extra_plugins=extra_plugins,
            disabled=settings.disabled_plugins,
            load_entry_points=load_entry_points,
        )
        hooks = Hooks(pm)
        hooks.tables()  # a plugin's table contract is checked at start-up, not first at `legetime migrate`
        plugin_db = PluginDatabase(settings.resolved_database_url)
        providers = build_registry(
            hooks.providers(), settings, lambda purpose: derive_key(settings, purpose), plugin_db
        )
        return cls(
            settings=settings,
            base_settings=settings,
            pm=pm,
            hooks=hooks,
            providers=providers,
            plugin_db=plugin_db,
            jobs=hooks.jobs(),
            periodic_jobs=hooks.periodic_jobs(),
        )

    @cached_property
    def db(self) -> Database:
        # Lazily: a worker creates it inside its own event loop (asyncpg connections are loop-bound).
        return self.open_database()

    def open_database(self) -> Database:
        """A handle on the platform's database whose commits hand their domain events to ``live``."""
        from legetime.core.platform.events import publish_after_commit

        database = Database(self.settings.resolved_database_url)
        publish_after_commit(database, self.live.committed)
        return database

    def derive_key(self, purpose: str) -> bytes:
        """The key for ``purpose`` (see ``derive_key``), derived once per process: requests ask for the
        session-token key every time, and deriving it means HKDF and, by default, reading the secret file."""
        key = self._derived_keys.get(purpose)
        if key is None:
            key = self._derived_keys[purpose] = derive_key(self.settings, purpose)
        return key

    @cached_property
    def live(self) -> LiveEvents:
        """Committed domain events for this process's GraphQL subscriptions (``live``)."""
        from legetime.core.platform.live import LiveEvents

        return LiveEvents(self.settings)

    @cached_property
    def rate_limits(self) -> RateLimits:
        return RateLimits(self.settings)

    @cached_property
    def keyring(self) -> KeyRing:
        """The master keys that wrap every data key (``LEGETIME_MASTER_KEYS``)."""
        local = derive_key(self.settings, "master-key:local")
        return KeyRing(parse_master_keys(self.settings.master_key_entries(), local))

    async def start(self) -> None:
        try:
            await self.apply_runtime_settings()
        except Exception as exc:  # a database not migrated yet (``/readyz`` says so), a broken stored value:
            # the process starts on the environment's settings; following changes tries again.
            log.error("settings.apply_failed", error=type(exc).__name__)
        await self.hooks.startup(self)

    def configured(self, stored: Stored) -> tuple[Settings, ProviderRegistry]:
        """The settings and providers ``stored`` asks for, on top of the environment's (raises
        ``ConfigError``/``PluginError``/pydantic's ``ValidationError`` for what cannot be built)."""
        from legetime.core.platform import runtime_settings

        base = self.base_settings or self.settings
        settings = runtime_settings.effective_settings(base, stored)
        registry = build_registry(
            self.hooks.providers(),
            settings,
            self.derive_key,
            self.plugin_db,
            lambda spec: runtime_settings.provider_values(spec, stored),
        )
        return settings, registry

    async def apply_runtime_settings(self) -> bool:
        """Use what operators stored, if it changed since this process last looked; True if it did."""
        from legetime.core.platform import runtime_settings

        async with self.db.read_sessions() as session:
            newest = await runtime_settings.version(session)
            if newest == self._settings_version:
                return False
            stored = await runtime_settings.load(session, self.keyring)
        self.settings, self.providers = self.configured(stored)
        self._settings_version = stored.version
        return True

    async def close(self) -> None:
        if "db" in self.__dict__:
            await self.db.dispose()
        await self.plugin_db.dispose()
        if "live" in self.__dict__:
            await self.live.close()
        if "rate_limits" in self.__dict__:
            await self.rate_limits.close()


def derive_key(settings: Settings, purpose: str) -> bytes:
    """A 32-byte key for one purpose, derived from the master secret (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"legetime", info=purpose.encode()).derive(
        settings.master_secret()
    )
