"""The platform as clients see it: version, price, enabled providers, loaded plugins."""

from __future__ import annotations

from collections.abc import Iterable

import strawberry
from strawberry import relay

from legetime import __version__
from legetime.core.platform.plugins import describe_plugins
from legetime.core.platform.providers import Capability as CoreCapability
from legetime.schema.context import Info
from legetime.schema.pagination import CappedConnection
from legetime.schema.permissions import OperatorOrDevelopment

Capability = strawberry.enum(CoreCapability, name="Capability")


@strawberry.type(description="An amount in minor units (øre) and its ISO 4217 currency.")
class Money:
    amount: int
    currency: str

    @strawberry.field(description="The amount formatted for people, e.g. `kr 350,00`.")
    def formatted(self) -> str:
        major, minor = divmod(self.amount, 100)
        return f"kr {major},{minor:02d}" if self.currency == "NOK" else f"{self.currency} {major}.{minor:02d}"


@strawberry.type(description="An enabled provider of a capability.")
class Provider:
    capability: Capability  # type: ignore[valid-type]
    name: str
    description: str
    is_default: bool


@strawberry.type(description="A loaded plugin.")
class Plugin(relay.Node):
    plugin_name: relay.NodeID[str]  # the Relay ID is made of the name; not a field of its own
    name: str
    version: str
    source: str
    hooks: list[str]

    @classmethod
    def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Plugin | None]:
        # Whoever may not list the plugins finds none by id either (not even whether a name is loaded).
        allowed = OperatorOrDevelopment().has_permission(None, info)
        by_name = {p.name: p for p in _plugins(info)} if allowed else {}
        return [by_name.get(node_id) for node_id in node_ids]


def _plugins(info: Info) -> list[Plugin]:
    return [
        Plugin(plugin_name=d.name, name=d.name, version=d.version, source=d.source, hooks=list(d.hooks))
        for d in describe_plugins(info.context.platform.pm)
    ]


@strawberry.type(description="The running platform.")
class PlatformInfo:
    @strawberry.field
    def version(self) -> str:
        return __version__

    @strawberry.field
    def environment(self, info: Info) -> str:
        return info.context.platform.settings.environment.value

    @strawberry.field(description="The fee reserved when a case is submitted.")
    def price(self, info: Info) -> Money:
        settings = info.context.platform.settings
        return Money(amount=settings.price_minor, currency=settings.currency)

    @strawberry.field(description="Enabled providers; the first of each capability is the default.")
    def providers(self, info: Info, capability: Capability | None = None) -> list[Provider]:  # type: ignore[valid-type]
        out = []
        for cap, enabled in info.context.platform.providers.enabled.items():
            if capability is not None and cap != capability:
                continue
            for index, provider in enumerate(enabled):
                spec = provider.spec
                out.append(
                    Provider(
                        capability=cap, name=spec.name, description=spec.description, is_default=index == 0
                    )
                )
        return out

    @relay.connection(CappedConnection[Plugin], permission_classes=[OperatorOrDevelopment])
    def plugins(self, info: Info) -> list[Plugin]:
        return _plugins(info)


@strawberry.type
class PlatformQuery:
    @strawberry.field(description="The running platform: version, price, providers, plugins.")
    def platform(self) -> PlatformInfo:
        return PlatformInfo()


def node_query() -> type:
    """The Relay ``node`` field. Made anew for each schema: strawberry applies its resolver extension to
    the field object once, so two schemas cannot share it."""

    @strawberry.type(name="NodeQuery")
    class NodeQuery:
        node: relay.Node | None = relay.node(description="Fetch any object by its global ID.")

    return NodeQuery
