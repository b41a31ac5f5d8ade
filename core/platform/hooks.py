"""A typed facade over the hook calls: the rest of the code calls these, never ``pm.hook.x`` directly."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import pluggy

from legetime.core.platform.db.plugin_tables import PluginTables, collect_tables
from legetime.core.platform.errors import PluginError
from legetime.core.platform.jobs.types import JobHandler, PeriodicJob
from legetime.core.platform.plugins import answers_by_plugin
from legetime.core.platform.providers import ProviderSpec
from legetime.core.platform.summary_care import SummaryCareRecord

if TYPE_CHECKING:
    from legetime.core.platform.events import Event
    from legetime.core.platform.runtime import Platform


def _flatten(results: Iterable[Iterable[Any] | None]) -> list[Any]:
    return [item for result in results if result for item in result]


class Hooks:
    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm

    def _by_plugin(self, hook_name: str) -> Iterator[tuple[str, Any]]:
        return answers_by_plugin(self.pm, hook_name)

    def providers(self) -> list[ProviderSpec]:
        specs = []
        for plugin, offered in self._by_plugin("register_providers"):
            for spec in cast(Iterable[object], offered or ()):
                if not isinstance(spec, ProviderSpec):
                    raise PluginError(f"plugin {plugin!r} offered {spec!r}, not a ProviderSpec")
                specs.append(replace(spec, plugin=plugin))
        return specs

    def tables(self) -> list[PluginTables]:
        return collect_tables(self._by_plugin("register_tables"))

    def jobs(self) -> dict[str, JobHandler]:
        handlers: dict[str, JobHandler] = {}
        for plugin, offered in self._by_plugin("register_jobs"):
            for name, handler in cast(Mapping[str, JobHandler], offered or {}).items():
                if name in handlers:
                    raise PluginError(f"job {name!r} registered twice (again by plugin {plugin!r})")
                if not inspect.iscoroutinefunction(handler):
                    raise PluginError(f"job {name!r} of plugin {plugin!r} must be an async function")
                handlers[name] = handler
        return handlers

    def periodic_jobs(self) -> list[PeriodicJob]:
        jobs: dict[str, PeriodicJob] = {}
        for plugin, offered in self._by_plugin("register_periodic_jobs"):
            for job in cast(Iterable[object], offered or ()):
                if not isinstance(job, PeriodicJob):
                    raise PluginError(f"plugin {plugin!r} offered {job!r}, not a PeriodicJob")
                if job.name in jobs:
                    raise PluginError(f"periodic job {job.name!r} registered twice (again by {plugin!r})")
                if not inspect.iscoroutinefunction(job.run):
                    raise PluginError(f"periodic job {job.name!r} of plugin {plugin!r} must be async")
                jobs[job.name] = job
        return list(jobs.values())

    def graphql_queries(self) -> list[type]:
        return _flatten(self.pm.hook.register_graphql_queries())

    def graphql_mutations(self) -> list[type]:
        return _flatten(self.pm.hook.register_graphql_mutations())

    def routes(self) -> list[Any]:
        routes = _flatten(self.pm.hook.register_routes())
        for route in routes:
            path = getattr(route, "path", "")
            if not path.startswith("/plugins/"):
                raise PluginError(f"plugin route {path!r} must live under /plugins/<name>/")
        return routes

    async def verify_guardianship(self, guardian_national_id: str, child_national_id: str) -> bool:
        """False if any plugin refuses; True otherwise (no opinion means: as declared)."""
        for result in self.pm.hook.verify_guardianship(
            guardian_national_id=guardian_national_id, child_national_id=child_national_id
        ):
            if inspect.isawaitable(result):
                result = await result
            if result is False:
                return False
        return True

    async def fetch_summary_care_record(
        self, national_id: str, clinician_hpr_number: str | None, platform: Platform
    ) -> SummaryCareRecord | None:
        """The first record a plugin has (the latest registered first, the simulation last); None if none.

        Plugins are called one at a time and each answer awaited before the next is asked: pluggy's own
        ``firstresult`` would stop at an async implementation's coroutine even when it comes to None.
        A simulated record is never shown in production."""
        name = "fetch_summary_care_record"
        plugins = self.pm.get_plugins()
        for impl in reversed(getattr(self.pm.hook, name).get_hookimpls()):  # pluggy's calling order
            others = [plugin for plugin in plugins if plugin is not impl.plugin]
            result = self.pm.subset_hook_caller(name, remove_plugins=others)(
                national_id=national_id, clinician_hpr_number=clinician_hpr_number, platform=platform
            )
            if inspect.isawaitable(result):
                result = await result
            if result is None:
                continue
            if not isinstance(result, SummaryCareRecord):  # named by its type: the value is health data
                kind = type(result).__name__
                raise PluginError(f"plugin {impl.plugin_name!r} returned a {kind}, not a SummaryCareRecord")
            if result.simulated and platform.settings.is_production:
                continue
            return result
        return None

    def event_handlers(self) -> list[str]:
        """The plugins that implement ``handle_event``, by name (each gets its own delivery job)."""
        return [impl.plugin_name for impl in self.pm.hook.handle_event.get_hookimpls()]

    async def handle_event(self, plugin: str, event: Event, platform: Platform) -> None:
        """Deliver ``event`` to one plugin; nothing if it is no longer installed."""
        target = self.pm.get_plugin(plugin)
        if target is None:
            return
        others = [other for other in self.pm.get_plugins() if other is not target]
        for result in self.pm.subset_hook_caller("handle_event", remove_plugins=others)(
            event=event, platform=platform
        ):
            if inspect.isawaitable(result):
                await result

    async def startup(self, platform: Platform) -> None:
        for result in self.pm.hook.startup(platform=platform):
            if inspect.isawaitable(result):
                await result

    def plugin_info(self) -> dict[str, dict[str, str]]:
        return {
            plugin: dict(cast(Mapping[str, str], info or {}))
            for plugin, info in self._by_plugin("plugin_info")
        }
