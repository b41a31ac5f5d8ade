"""The plugin manager: default plugins from an explicit tuple, third-party ones from the entry points.

core loads plugins by *name* (importlib), so it never imports ``plugins`` or ``schema`` statically.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pluggy

from legetime import __version__
from legetime.core import hookspecs
from legetime.core.platform.errors import PluginError

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME

NAMESPACE = "legetime"
"""Built-in plugins are named by their module under this package: ``plugins.sms.outbox`` is the module
``legetime.plugins.sms.outbox`` (the name is what ``LEGETIME_DISABLED_PLUGINS`` takes)."""

# The core's own hook implementations (its jobs and periodic work): always loaded.
CORE_PLUGINS: tuple[str, ...] = ("core.core_plugin",)

# Built-in features are plugins like any other. Order does not matter; each registers providers.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "plugins.bankid.simulated",
    "plugins.bankid.swedish",
    "plugins.bankid.oidc",
    "plugins.payments.fake",
    "plugins.payments.vipps",
    "plugins.payments.stripe_cards",
    "plugins.payments.swedbank_pay",
    "plugins.sms.outbox",
    "plugins.sms.twilio",
    "plugins.sms.link_mobility",
    "plugins.storage.local",
    "plugins.storage.s3",
    "plugins.journal.template",
    "plugins.journal.openai_chat",
    "plugins.summary_care.simulated",
    "plugins.scheduling.builtin",
    "plugins.video.simulated",
    "plugins.video.livekit",
    "plugins.invoicing.pdf",
)


@dataclass(frozen=True)
class PluginDescription:
    name: str
    version: str
    source: str  # "default" | "entry point" | "registered"
    hooks: tuple[str, ...]


def _hook_names() -> list[str]:
    return [name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "legetime_spec")]


def _explain_unknown_hooks(pm: pluggy.PluginManager) -> PluginError:
    problems = []
    known = _hook_names()
    for name in pm.hook.__dict__:
        caller = getattr(pm.hook, name)
        if isinstance(caller, pluggy.HookCaller) and not caller.has_spec():
            for impl in caller.get_hookimpls():
                hint = difflib.get_close_matches(name, known, n=1)
                did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
                problems.append(f"plugin {impl.plugin_name!r} implements unknown hook {name!r}{did_you_mean}")
    return PluginError("; ".join(problems) + f". Known hooks: {', '.join(sorted(known))}.")


def create_plugin_manager(
    *,
    default_plugins: Iterable[str] = DEFAULT_PLUGINS,
    extra_plugins: Iterable[object] = (),
    disabled: Iterable[str] = (),
    load_entry_points: bool = True,
) -> pluggy.PluginManager:
    """Build the manager: hookspecs, defaults, entry points, extras; then fail fast on unknown hooks."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    disabled = set(disabled)
    for name in CORE_PLUGINS:
        _register(pm, _builtin(name), name)
    for name in default_plugins:
        if name not in disabled:
            _register(pm, _builtin(name), name)
    if load_entry_points:
        for name in disabled:
            pm.set_blocked(name)
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {exc.plugin!r} does not keep the hook contract: {exc}") from None
    for plugin in extra_plugins:
        _register(pm, plugin, None)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError:
        raise _explain_unknown_hooks(pm) from None
    return pm


def answers_by_plugin(pm: pluggy.PluginManager, hook_name: str) -> Iterator[tuple[str, Any]]:
    """Each plugin's answer to a hook, with the plugin's name (to credit or blame it). Called through
    pluggy for one plugin at a time (``subset_hook_caller``), so tracing and call monitoring see it."""
    plugins = pm.get_plugins()
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        others = [plugin for plugin in plugins if plugin is not impl.plugin]
        results = pm.subset_hook_caller(hook_name, remove_plugins=others)()
        yield impl.plugin_name, results[0] if results else None


def _builtin(name: str) -> ModuleType:
    return importlib.import_module(f"{NAMESPACE}.{name}")


def _register(pm: pluggy.PluginManager, plugin: object, name: str | None) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {exc.plugin!r} does not keep the hook contract: {exc}") from None
    except ValueError as exc:  # registered twice
        raise PluginError(str(exc)) from None


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginDescription]:
    dist_versions = {id(plugin): dist.version for plugin, dist in pm.list_plugin_distinfo()}
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # blocked
            continue
        hooks = tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))
        if id(plugin) in dist_versions:
            version, source = dist_versions[id(plugin)], "entry point"
        elif isinstance(plugin, ModuleType) and name in DEFAULT_PLUGINS + CORE_PLUGINS:
            version, source = __version__, "default"
        else:
            version, source = getattr(plugin, "__version__", "-"), "registered"
        out.append(PluginDescription(name=name, version=version, source=source, hooks=hooks))
    return sorted(out, key=lambda d: (d.source != "default", d.name))
