"""The plugin system: defaults from the tuple, third-party plugins from the entry point, and the contract
enforced at start-up (unknown hooks, bad arguments, duplicate names, routes outside /plugins/)."""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import strawberry
from starlette.routing import Route

from legetime.core.hookspecs import hookimpl
from legetime.core.platform.config import Settings
from legetime.core.platform.errors import ConfigError, PluginError
from legetime.core.platform.jobs.types import PeriodicJob
from legetime.core.platform.plugins import DEFAULT_PLUGINS
from legetime.core.platform.providers import Capability, ProviderSettings, ProviderSpec
from legetime.core.platform.runtime import Platform
from tests.cli import run_cli

DEFAULT_PROVIDERS = {"bankid-test", "fake", "outbox", "local", "template", "builtin", "pdf", "video-test"}
"""Enabled by default: the simulations and local providers."""
REAL_PROVIDERS = {"bankid-se", "bankid-oidc", "vipps", "stripe", "swedbank-pay", "livekit"}
"""Offered by the built-in plugins and listed, enabled by configuration only."""


@pytest.fixture
def hello_installed(install: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = install("legetime-hello")
    monkeypatch.syspath_prepend(str(target))
    importlib.invalidate_caches()
    return target


# --- the CLI ---------------------------------------------------------------------------------------


def test_legetime_plugins_lists_the_default_providers_and_their_hooks() -> None:
    result = run_cli("plugins")
    assert result.returncode == 0, result.stderr
    for module in DEFAULT_PLUGINS:
        assert module in result.stdout
    for provider in DEFAULT_PROVIDERS | REAL_PROVIDERS:
        assert f" {provider} " in result.stdout
    assert "register_providers" in result.stdout
    assert "enabled, default" in result.stdout
    assert "simulation: refused in production" in result.stdout


def test_third_party_plugin_is_found_through_the_entry_point(install: Any) -> None:
    result = run_cli("plugins", pythonpath=[install("legetime-hello")])
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if " hello " in line)
    assert "1.2.3" in line and "entry point" in line
    assert "register_graphql_queries" in line and "register_routes" in line


def test_misspelled_hookimpl_fails_startup_with_a_clear_message(install: Any) -> None:
    result = run_cli("plugins", pythonpath=[install("legetime-typo")])
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "unknown hook 'register_provider'" in message
    assert "did you mean 'register_providers'?" in message
    assert "'typo'" in message


def test_a_disabled_third_party_plugin_is_not_loaded(install: Any) -> None:
    result = run_cli(
        "plugins", pythonpath=[install("legetime-typo")], env={"LEGETIME_DISABLED_PLUGINS": "typo"}
    )
    assert result.returncode == 0, result.stderr


# --- the contract at start-up ----------------------------------------------------------------------


def _create(settings: Settings, *plugins: object) -> Platform:
    return Platform.create(settings, extra_plugins=plugins, load_entry_points=False)


def test_misspelled_hook_in_a_registered_plugin(settings: Settings) -> None:
    class Typo:
        @hookimpl
        def register_route(self) -> list[Any]:
            return []

    with pytest.raises(
        PluginError, match=r"unknown hook 'register_route' \(did you mean 'register_routes'\?\)"
    ):
        _create(settings, Typo())


def test_hookimpl_with_an_argument_the_hook_does_not_have(settings: Settings) -> None:
    class BadArguments:
        @hookimpl
        def startup(self, platform: Any, request: Any) -> None: ...

    with pytest.raises(PluginError, match="request"):
        _create(settings, BadArguments())


def test_hook_register_providers(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin's provider is enabled by configuration only, with its settings validated."""

    class EchoSettings(ProviderSettings):
        model_config = ProviderSettings.model_config | {"env_prefix": "LEGETIME_SMS_ECHO_"}
        sender: str = "Legetime"
        retries: int = 3

    outbox = next(
        spec
        for spec in Platform.create(settings, load_entry_points=False).providers.offered
        if spec.name == "outbox"
    )

    class EchoPlugin:
        @hookimpl
        def register_providers(self) -> list[ProviderSpec]:
            return [replace(outbox, name="echo", settings_model=EchoSettings, factory=self.build)]

        def build(self, provider_settings: EchoSettings, context: Any) -> Any:
            self.settings = provider_settings
            return outbox.factory(outbox.settings_model(), context)

    default = _create(settings, EchoPlugin())
    assert {p.spec.name for p in default.providers.all_enabled()} == DEFAULT_PROVIDERS

    plugin = EchoPlugin()
    chosen = _create(settings.model_copy(update={"sms_providers": ["echo"]}), plugin)
    assert chosen.providers.names(Capability.SMS) == ["echo"]
    assert plugin.settings.sender == "Legetime"

    monkeypatch.setenv("LEGETIME_SMS_ECHO_RETRIES", "many")
    with pytest.raises(ConfigError) as error:
        _create(settings.model_copy(update={"sms_providers": ["echo"]}), EchoPlugin())
    assert error.value.setting == "LEGETIME_SMS_ECHO_RETRIES"


def test_a_provider_that_does_not_implement_the_protocol_is_refused(settings: Settings) -> None:
    class NotAnSmsProvider:
        name = "broken"

    class Broken:
        @hookimpl
        def register_providers(self) -> list[ProviderSpec]:
            return [ProviderSpec(Capability.SMS, "broken", factory=lambda s, c: NotAnSmsProvider())]

    with pytest.raises(PluginError, match="does not implement SmsProvider"):
        _create(settings.model_copy(update={"sms_providers": ["broken"]}), Broken())


def test_two_plugins_offering_the_same_provider_name(settings: Settings) -> None:
    class Twin:
        @hookimpl
        def register_providers(self) -> list[ProviderSpec]:
            return [ProviderSpec(Capability.SMS, "outbox", factory=lambda s, c: None)]

    with pytest.raises(PluginError, match="two plugins offer a sms provider named 'outbox'"):
        _create(settings, Twin())


def test_register_providers_must_return_provider_specs(settings: Settings) -> None:
    class Wrong:
        @hookimpl
        def register_providers(self) -> list[Any]:
            return ["outbox"]

    with pytest.raises(PluginError, match="not a ProviderSpec"):
        _create(settings, Wrong())


def test_duplicate_graphql_field_names_are_refused(settings: Settings) -> None:
    from legetime.schema.build import build_schema

    @strawberry.type
    class Platform2:
        @strawberry.field
        def platform(self) -> str:
            return "mine"

    class Clash:
        @hookimpl
        def register_graphql_queries(self) -> list[type]:
            return [Platform2]

    with pytest.raises(
        PluginError, match=r"Query\.platform is defined twice: by PlatformQuery and .*Platform2"
    ):
        build_schema(_create(settings, Clash()))


def test_plugin_routes_must_live_under_plugins(settings: Settings) -> None:
    from legetime.schema.app import create_app

    class Squatter:
        @hookimpl
        def register_routes(self) -> list[Route]:
            return [Route("/graphql", lambda request: None)]

    with pytest.raises(PluginError, match="must live under /plugins/"):
        create_app(_create(settings, Squatter()))


def test_job_names_are_unique(settings: Settings) -> None:
    async def handler(ctx: Any, payload: dict[str, Any]) -> None: ...

    class One:
        @hookimpl
        def register_jobs(self) -> dict[str, Any]:
            return {"sms.send": handler}

    class Two:
        @hookimpl
        def register_jobs(self) -> dict[str, Any]:
            return {"sms.send": handler}

    with pytest.raises(PluginError, match=r"job 'sms\.send' registered twice"):
        _create(settings, One(), Two())


# --- each hook, through the public surfaces ---------------------------------------------------------


def _client(hello_installed: Path, settings: Settings) -> Any:
    from starlette.testclient import TestClient

    from legetime.schema.app import create_app

    platform = Platform.create(settings)  # entry points: finds the installed hello plugin
    return TestClient(create_app(platform, run_jobs_in_process=False)), platform


def test_hook_register_graphql_queries(hello_installed: Path, settings: Settings) -> None:
    client, _ = _client(hello_installed, settings)
    with client:
        response = client.post("/graphql", json={"query": '{ hello(name: "Kari") }'})
    assert response.json() == {"data": {"hello": "Hei, Kari!"}}


def test_hook_register_graphql_mutations(hello_installed: Path, settings: Settings) -> None:
    client, _ = _client(hello_installed, settings)
    with client:
        response = client.post("/graphql", json={"query": "mutation { wave }"})
    assert response.json() == {"data": {"wave": True}}


def test_hook_register_routes(hello_installed: Path, settings: Settings) -> None:
    client, _ = _client(hello_installed, settings)
    with client:
        assert client.get("/plugins/hello/ping").text == "pong"


def test_hook_startup(hello_installed: Path, settings: Settings) -> None:
    import legetime_hello  # type: ignore[import-not-found]

    client, platform = _client(hello_installed, settings)
    assert platform not in legetime_hello.STARTED
    with client:
        assert platform in legetime_hello.STARTED


def test_hook_plugin_info(hello_installed: Path, settings: Settings) -> None:
    platform = Platform.create(settings)
    assert platform.hooks.plugin_info()["hello"] == {"description": "Says hello."}


def test_hook_register_jobs(hello_installed: Path, settings: Settings) -> None:
    platform = Platform.create(settings)
    assert "hello.greet" in platform.jobs


async def test_hook_register_periodic_jobs(hello_installed: Path, settings: Settings) -> None:
    import legetime_hello  # type: ignore[import-not-found]

    from legetime.core.platform.jobs.runner import JobRunner

    platform = Platform.create(settings)
    every = {job.name: job.every(settings) for job in platform.periodic_jobs}
    assert every["hello.tick"] == timedelta(seconds=0.05)
    # The core's own periodic work comes through the same hook, on the configured schedule.
    assert every["payments.reconcile"] == timedelta(minutes=settings.payment_reconcile_minutes)
    assert every["privacy.retention"] == timedelta(minutes=settings.purge_interval_minutes)
    assert every["identity.purge_logins"] == timedelta(minutes=5)
    assert "cases.close_answered" in every
    runner = JobRunner(platform)
    runner.start_scheduler()
    try:
        for _ in range(100):
            if platform in legetime_hello.TICKS:
                break
            await asyncio.sleep(0.02)
    finally:
        await runner.stop_scheduler()
        runner.stop()
        await platform.close()
    assert platform in legetime_hello.TICKS


def test_periodic_jobs_are_async_and_uniquely_named(settings: Settings) -> None:
    async def run(platform: Any) -> None: ...

    def blocking(platform: Any) -> None: ...

    class One:
        @hookimpl
        def register_periodic_jobs(self) -> list[PeriodicJob]:
            return [PeriodicJob("payments.reconcile", run, lambda settings: timedelta(minutes=1))]

    class Blocking:
        @hookimpl
        def register_periodic_jobs(self) -> list[PeriodicJob]:
            return [PeriodicJob("blocking.run", blocking, lambda settings: timedelta(minutes=1))]  # type: ignore[arg-type]

    with pytest.raises(PluginError, match=r"periodic job 'payments\.reconcile' registered twice"):
        _create(settings, One())
    with pytest.raises(PluginError, match=r"periodic job 'blocking\.run' .* must be async"):
        _create(settings, Blocking())
