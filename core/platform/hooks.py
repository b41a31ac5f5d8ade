"""A typed facade over the hook calls: the rest of the code calls these, never ``pm.hook.x`` directly."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import pluggy

from legetime.core.platform.errors import PluginError
from legetime.core.platform.jobs.types import JobHandler
from legetime.core.platform.providers import ProviderSpec

if TYPE_CHECKING:
    from legetime.core.platform.runtime import Platform


def _flatten(results: Iterable[Iterable[Any] | None]) -> list[Any]:
    return [item for result in results if result for item in result]


class Hooks:
    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm

    def providers(self) -> list[ProviderSpec]:
        specs = []
        for impl in self.pm.hook.register_providers.get_hookimpls():
            for spec in cast(Iterable[object], impl.function() or ()):
                if not isinstance(spec, ProviderSpec):
                    raise PluginError(f"plugin {impl.plugin_name!r} offered {spec!r}, not a ProviderSpec")
                specs.append(replace(spec, plugin=impl.plugin_name))
        return specs

    def jobs(self) -> dict[str, JobHandler]:
        handlers: dict[str, JobHandler] = {}
        for impl in self.pm.hook.register_jobs.get_hookimpls():
            offered = cast(Mapping[str, JobHandler], impl.function() or {})
            for name, handler in offered.items():
                if name in handlers:
                    raise PluginError(f"job {name!r} registered twice (again by plugin {impl.plugin_name!r})")
                if not inspect.iscoroutinefunction(handler):
                    raise PluginError(
                        f"job {name!r} of plugin {impl.plugin_name!r} must be an async function"
                    )
                handlers[name] = handler
        return handlers

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

    async def startup(self, platform: Platform) -> None:
        for result in self.pm.hook.startup(platform=platform):
            if inspect.isawaitable(result):
                await result

    def plugin_info(self) -> dict[str, dict[str, str]]:
        return {
            impl.plugin_name: dict(cast(Mapping[str, str], impl.function() or {}))
            for impl in self.pm.hook.plugin_info.get_hookimpls()
        }
