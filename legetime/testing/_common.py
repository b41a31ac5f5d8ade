"""What the contract suites share: building the provider under test, and running a test's coroutine."""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, ParamSpec

from legetime.sdk import PluginDatabase, ProviderContext, ProviderSpec, Settings, upgrade_plugin_tables

BuildProvider = Callable[[ProviderSpec, Path], AbstractContextManager[Any]]
"""How a driver builds its provider for one test, in a fresh data directory: a context manager, so a driver
can start a local fake of the provider's API first and stop it afterwards."""

_TEST_MASTER_SECRET = b"legetime-testing-master-secret"


def build_provider(
    spec: ProviderSpec, data_dir: Path, provider_settings: Any = None, **platform_settings: Any
) -> Any:
    """Build a provider the way the platform does: ``spec.factory(provider_settings, context)``.

    ``provider_settings`` (an instance of ``spec.settings_model``) defaults to the settings read from the
    environment. The context's platform settings are the defaults with ``data_dir`` and
    ``platform_settings`` on top (the environment is ignored), and its keys derive from a fixed test secret.
    """
    settings = Settings.defaults(data_dir=data_dir, **platform_settings)
    context = ProviderContext(
        settings=settings,
        derive_key=lambda purpose: hashlib.sha256(_TEST_MASTER_SECRET + purpose.encode()).digest(),
        database=plugin_database(settings.resolved_database_url),
    )
    if provider_settings is None:
        provider_settings = spec.settings_model()
    return spec.factory(provider_settings, context)


def plugin_database(database_url: str) -> PluginDatabase:
    """The plugins' database of a test platform, with every installed plugin's tables (once per URL)."""
    if database_url not in _MIGRATED:
        upgrade_plugin_tables(database_url)
        _MIGRATED.add(database_url)
    return PluginDatabase(database_url)


_MIGRATED: set[str] = set()


@contextmanager
def build_default(spec: ProviderSpec, data_dir: Path) -> Iterator[Any]:
    """A provider that needs nothing running, built with the settings read from the environment."""
    yield build_provider(spec, data_dir)


P = ParamSpec("P")


def in_event_loop(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Make an ``async`` test a plain one that runs its coroutine in an event loop of its own.

    The kit then needs no async plugin (pytest-asyncio, anyio), and works the same whatever mode one is in.
    """

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))

    return run
