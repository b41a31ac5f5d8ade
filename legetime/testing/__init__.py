"""The contract kit: the suites every provider of a capability must pass, for plugin authors' own tests.

One suite per capability, each a test class to subclass (``IdentityContract``, ``PaymentContract``,
``SmsContract``, ``StorageContract``, ``JournalContract``, ``SchedulingContract``, ``VideoContract``,
``InvoicingContract``), and one driver per suite (``IdentityDriver``…): a dataclass of what differs between
providers (how to build one for a test, what was sent, how its network signs a callback). Point a suite at
your provider with two fixtures, defined in a ``conftest.py``, the test module or the class itself::

    import pytest
    from legetime.testing import SmsContract, SmsDriver

    @pytest.fixture
    def legetime_spec():
        return my_plugin.register_providers()[0]  # the ProviderSpec under test

    @pytest.fixture
    def legetime_driver(my_gateway_fake):
        return SmsDriver(sent_count=..., delivery_report=..., build=...)

    class TestMySms(SmsContract):
        pass

The fixture ``legetime_provider`` (the provider under test) and the marker ``legetime_contract`` come from
the pytest plugin ``legetime.testing.plugin``, which pytest loads through Legetime's ``pytest11`` entry
point. ``build_provider`` builds a provider from its spec the way the platform does, for a driver's
``build``; ``plugin_database`` is the plugins' database of such a test platform, with every installed
plugin's tables (``register_tables``), for a test that looks into a provider's own table.

The suites' ``async`` tests need no async plugin: each runs its coroutine in an event loop of its own
(``asyncio.run``), so they pass the same with or without pytest-asyncio, in any of its modes.

This package imports only ``legetime.sdk`` from Legetime, and only when a name is first used: importing
``legetime.testing.plugin`` (which pytest does in every session) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from legetime.testing._common import BuildProvider, build_default, build_provider, plugin_database
    from legetime.testing.identity import IdentityContract, IdentityDriver
    from legetime.testing.invoicing import InvoicingContract, InvoicingDriver, pdf_text
    from legetime.testing.journal import JournalContract, JournalDriver
    from legetime.testing.payment import WEBHOOK_URL, PaymentContract, PaymentDriver, Webhook
    from legetime.testing.scheduling import Schedule, SchedulingContract, SchedulingDriver
    from legetime.testing.sms import SmsContract, SmsDriver
    from legetime.testing.storage import Fetched, StorageContract, StorageDriver
    from legetime.testing.video import GrantedAccess, VideoContract, VideoDriver

_MODULE_OF = {
    "BuildProvider": "_common",
    "build_default": "_common",
    "build_provider": "_common",
    "plugin_database": "_common",
    "IdentityContract": "identity",
    "IdentityDriver": "identity",
    "InvoicingContract": "invoicing",
    "InvoicingDriver": "invoicing",
    "pdf_text": "invoicing",
    "JournalContract": "journal",
    "JournalDriver": "journal",
    "PaymentContract": "payment",
    "PaymentDriver": "payment",
    "WEBHOOK_URL": "payment",
    "Webhook": "payment",
    "Schedule": "scheduling",
    "SchedulingContract": "scheduling",
    "SchedulingDriver": "scheduling",
    "SmsContract": "sms",
    "SmsDriver": "sms",
    "Fetched": "storage",
    "StorageContract": "storage",
    "StorageDriver": "storage",
    "GrantedAccess": "video",
    "VideoContract": "video",
    "VideoDriver": "video",
}

__all__ = [
    "WEBHOOK_URL",
    "BuildProvider",
    "Fetched",
    "GrantedAccess",
    "IdentityContract",
    "IdentityDriver",
    "InvoicingContract",
    "InvoicingDriver",
    "JournalContract",
    "JournalDriver",
    "PaymentContract",
    "PaymentDriver",
    "Schedule",
    "SchedulingContract",
    "SchedulingDriver",
    "SmsContract",
    "SmsDriver",
    "StorageContract",
    "StorageDriver",
    "VideoContract",
    "VideoDriver",
    "Webhook",
    "build_default",
    "build_provider",
    "pdf_text",
    "plugin_database",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
