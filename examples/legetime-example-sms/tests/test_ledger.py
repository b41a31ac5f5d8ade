"""The plugin's own table: a repeated send is answered from it, without a call to the gateway."""

from __future__ import annotations

import asyncio
from pathlib import Path

import legetime_example_sms
import pytest
from gateway_fake import GatewayFake

from legetime.sdk import IdempotencyConflict, SmsMessage
from legetime.testing import build_provider

MESSAGE = SmsMessage(to="+4791234567", body="Legen har svart deg.", sender="Legetime", reference="ref-1")


def test_a_repeat_is_answered_from_the_ledger_even_with_the_gateway_down(tmp_path: Path) -> None:
    [spec] = legetime_example_sms.register_providers()
    with GatewayFake().serve() as gateway:
        provider = build_provider(spec, tmp_path, gateway.settings())
        first = asyncio.run(provider.send(MESSAGE))
    # The gateway is gone; another instance (another process) on the same database answers all the same.
    again = build_provider(spec, tmp_path, gateway.settings())
    assert asyncio.run(again.send(MESSAGE)) == first
    other_body = SmsMessage(to=MESSAGE.to, body="Noe annet.", sender=MESSAGE.sender, reference="ref-1")
    with pytest.raises(IdempotencyConflict):
        asyncio.run(again.send(other_body))
