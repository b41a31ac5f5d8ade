"""Operators: the settings that change while the service runs — the editable platform settings (which
providers are enabled and the default, the SMS sender …) and every provider's settings; `checkProvider`.
The rules live in ``legetime.core.protection.settings_admin``; docs/operations.md, "Settings in GraphiQL",
describes them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from strawberry.scalars import JSON

from legetime.core.identity.ctx import Ctx
from legetime.core.platform.errors import ValidationError
from legetime.core.protection import settings_admin as admin
from legetime.schema.context import Info
from legetime.schema.errors import Error
from legetime.schema.mutation import mutate
from legetime.schema.platform_types import Capability


@strawberry.type(description="One setting: where its value comes from; a secret's value is never shown.")
class Setting:
    name: str = strawberry.field(description="The name to change it by (`values`, `clear`).")
    variable: str = strawberry.field(description="The environment variable that sets it (and then locks it).")
    kind: str
    description: str
    secret: bool
    locked: bool = strawberry.field(
        description="Given by an environment variable: it cannot be changed here."
    )
    source: str = strawberry.field(description="`environment`, `stored` (changed here) or `default`.")
    value: JSON | None = strawberry.field(description="The value in use; null for a secret (see `isSet`).")
    is_set: bool

    @classmethod
    def of(cls, view: admin.SettingView) -> Setting:
        return cls(
            name=view.name,
            variable=view.variable,
            kind=view.kind,
            description=view.description,
            secret=view.secret,
            locked=view.locked,
            source=view.source,
            value=view.value,
            is_set=view.is_set,
        )


@strawberry.type(description="A provider a plugin offers, whether it is enabled, and its settings.")
class ProviderSettings:
    capability: Capability  # type: ignore[valid-type]
    name: str
    plugin: str
    description: str
    enabled: bool
    is_default: bool
    simulation: bool = strawberry.field(description="A simulation: refused in production.")
    settings: list[Setting]

    @classmethod
    def of(cls, view: admin.ProviderView) -> ProviderSettings:
        spec = view.spec
        return cls(
            capability=spec.capability,
            name=spec.name,
            plugin=spec.plugin,
            description=spec.description,
            enabled=view.enabled,
            is_default=view.default,
            simulation=spec.test_only,
            settings=[Setting.of(s) for s in view.settings],
        )


@strawberry.input
class ChangePlatformSettingsInput:
    # Null rather than {} by default: a default object of the JSON scalar breaks introspection.
    values: JSON | None = strawberry.field(
        default=None,
        description='Names and new values, e.g. `{"sms_sender": "Klinikken", "sms_providers": ["twilio", '
        '"outbox"]}` (the first provider of a capability is the default).',
    )
    clear: list[str] = strawberry.field(
        default_factory=list, description="Names back to the environment's value or the default."
    )


@strawberry.input
class ChangeProviderSettingsInput:
    capability: Capability  # type: ignore[valid-type]
    provider: str
    values: JSON | None = strawberry.field(
        default=None, description="Names and new values; a secret is given here and never shown."
    )
    clear: list[str] = strawberry.field(default_factory=list)


@strawberry.input
class CheckProviderInput:
    capability: Capability  # type: ignore[valid-type]
    provider: str


@strawberry.type
class PlatformSettingsPayload:
    settings: list[Setting] | None = None
    changed: list[str] = strawberry.field(default_factory=list)
    errors: list[Error]


@strawberry.type
class ProviderSettingsPayload:
    provider: ProviderSettings | None = None
    changed: list[str] = strawberry.field(default_factory=list)
    errors: list[Error]


@strawberry.type
class CheckProviderPayload:
    supported: bool = strawberry.field(description="Whether the provider can test itself.")
    ok: bool | None = strawberry.field(default=None, description="Its configuration works.")
    message: str | None = None
    errors: list[Error]


def _object(values: Any) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValidationError("`values` must be an object of names and values.", field="values")
    return values


async def _applied(info: Info, work: Callable[[Ctx], Awaitable[list[str]]]) -> tuple[list[str], list[Error]]:
    """Store the change; once committed, apply it here at once and tell every other process."""
    changed, errors = await mutate(info, work)
    if changed:
        platform = info.context.platform
        await platform.apply_runtime_settings()
        platform.live.settings_changed()
    return changed or [], errors


@strawberry.type
class SettingsQuery:
    @strawberry.field(description="Operators: the platform settings that can change while it runs.")
    async def platform_settings(self, info: Info) -> list[Setting]:
        ctx = await info.context.read()
        return [Setting.of(v) for v in await admin.platform_settings(ctx)]

    @strawberry.field(description="Operators: every provider offered, enabled or not, with its settings.")
    async def provider_settings(
        self,
        info: Info,
        capability: Capability | None = None,  # type: ignore[valid-type]
    ) -> list[ProviderSettings]:
        ctx = await info.context.read()
        return [ProviderSettings.of(v) for v in await admin.providers(ctx, capability)]


@strawberry.type
class SettingsMutation:
    @strawberry.mutation(
        description="Operators: change platform settings (the providers enabled and the default, the SMS "
        "sender …). Validated as the environment is; in effect in every process without a restart."
    )
    async def change_platform_settings(
        self, info: Info, input: ChangePlatformSettingsInput
    ) -> PlatformSettingsPayload:
        changed, errors = await _applied(
            info, lambda ctx: admin.change_platform(ctx, _object(input.values), input.clear)
        )
        if errors:
            return PlatformSettingsPayload(errors=errors)
        ctx = await info.context.read()
        views = await admin.platform_settings(ctx)
        return PlatformSettingsPayload(settings=[Setting.of(v) for v in views], changed=changed, errors=[])

    @strawberry.mutation(
        description="Operators: change a provider's settings; secrets are write-only. In effect in every "
        "process without a restart."
    )
    async def change_provider_settings(
        self, info: Info, input: ChangeProviderSettingsInput
    ) -> ProviderSettingsPayload:
        capability = input.capability

        async def work(ctx: Ctx) -> list[str]:
            return await admin.change_provider(
                ctx, capability, input.provider, _object(input.values), input.clear
            )

        changed, errors = await _applied(info, work)
        if errors:
            return ProviderSettingsPayload(errors=errors)
        ctx = await info.context.read()
        [view] = [v for v in await admin.providers(ctx, capability) if v.spec.name == input.provider]
        return ProviderSettingsPayload(provider=ProviderSettings.of(view), changed=changed, errors=[])

    @strawberry.mutation(
        description="Operators: ask an enabled provider to test its configuration (credentials, "
        "reachability), without side effects: no text sent, no money reserved."
    )
    async def check_provider(self, info: Info, input: CheckProviderInput) -> CheckProviderPayload:
        async def work(ctx: Ctx) -> object:
            return await admin.provider_to_check(ctx, input.capability, input.provider)

        provider, errors = await mutate(info, work)
        if errors or provider is None:
            return CheckProviderPayload(supported=False, errors=errors)
        result = await admin.check(provider)
        if result is None:
            return CheckProviderPayload(
                supported=False, message="Denne leverandøren kan ikke testes.", errors=[]
            )
        return CheckProviderPayload(supported=True, ok=result.ok, message=result.message, errors=[])
