"""An example third-party Legetime plugin, found through the ``legetime`` entry-point group.

It offers one SMS provider (``example-gateway``, in ``gateway.py``), keeps a table of its own in the
platform's database (``ledger.py``) and contributes one GraphQL query field. Like every plugin, it imports
from Legetime only ``legetime.sdk``.
"""

from __future__ import annotations

import strawberry

from legetime.sdk import Capability, PluginTables, ProviderContext, ProviderSpec, encode_info, hookimpl
from legetime_example_sms.gateway import NAME, ExampleGatewaySettings, ExampleGatewaySms
from legetime_example_sms.ledger import TABLES, Ledger


def _factory(settings: ExampleGatewaySettings, context: ProviderContext) -> ExampleGatewaySms:
    return ExampleGatewaySms(settings, Ledger(context.database))


@hookimpl
def register_tables() -> PluginTables:
    return TABLES


@hookimpl
def register_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.SMS,
            name=NAME,
            factory=_factory,
            settings_model=ExampleGatewaySettings,
            description="SMS through the Example SMS gateway.",
        )
    ]


@strawberry.type(description="How an SMS text is sent: its encoding, and how many segments it is billed as.")
class ExampleSmsSegments:
    encoding: str
    segments: int


@strawberry.type
class ExampleSmsQuery:
    @strawberry.field(description="How the Example SMS gateway would send (and bill) this text.")
    def example_sms_segments(self, text: str) -> ExampleSmsSegments:
        encoding, segments = encode_info(text)
        return ExampleSmsSegments(encoding=encoding.value, segments=segments)


@hookimpl
def register_graphql_queries() -> list[type]:
    return [ExampleSmsQuery]


@hookimpl
def plugin_info() -> dict[str, str]:
    return {"description": "SMS through the Example SMS gateway (an example third-party plugin)."}
