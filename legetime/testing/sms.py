"""The contract every SMS provider keeps.

Its driver knows what differs between providers: how to build one for a test (credentials, a local fake of
the gateway), how to see what was sent and how to sign a delivery report as the provider's network does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from legetime.sdk import (
    DeliveryStatus,
    IdempotencyConflict,
    ProviderError,
    ProviderSpec,
    SmsMessage,
    SmsProvider,
    ValidationError,
    encode_info,
)
from legetime.testing._common import BuildProvider, build_default, in_event_loop


@dataclass(frozen=True)
class SmsDriver:
    """How the suite makes one SMS provider do what the contract needs."""

    sent_count: Callable[[Any, str], Awaitable[int]]
    """``(provider, reference)``: how many messages with this reference went (or would go) to the network."""
    delivery_report: Callable[[str, DeliveryStatus, datetime], tuple[dict[str, str], bytes]]
    """``(provider_id, status, at)``: headers and body of a validly signed delivery report, as the
    provider's network sends it."""
    build: BuildProvider = build_default
    """Builds the provider (and starts whatever fake it talks to) for one test."""
    report_body_signed: bool = True
    """False when the network authenticates its reports but signs nothing over the body (LINK Mobility's
    gates: HTTP Basic only): the suite then checks that reports with missing or wrong credentials are
    refused, not that a body changed under valid credentials is."""
    report_time_is_arrival: bool = False
    """True when the network's delivery reports carry no time of their own (Twilio): the report's ``at`` is
    when it was parsed, so the suite checks that it is recent and carries a time zone instead."""


def message(body: str = "Hei! Legen har svart. Logg inn for å lese svaret.", **changes: str) -> SmsMessage:
    fields = {"to": "+4791234567", "body": body, "sender": "Legetime", "reference": "case-1:answered"}
    return SmsMessage(**{**fields, **changes})


class SmsContract:
    """The SMS contract (see ``legetime.testing`` for how to run it against a provider)."""

    pytestmark = pytest.mark.legetime_contract

    def test_implements_the_protocol(self, legetime_provider: Any, legetime_spec: ProviderSpec) -> None:
        assert isinstance(legetime_provider, SmsProvider)
        assert legetime_provider.name == legetime_spec.name

    @pytest.mark.parametrize(
        "body",
        [
            "Hei",
            "Svar på henvendelsen din er klart. Vennlig hilsen Legetime — æøå ÆØÅ",
            "Pris: 350 kr [betalt] {ok} €",
            "æøå" * 60,
            "Hei 😀",
            "Cześć " * 20,
        ],
        ids=["short", "norwegian", "extension", "two-gsm-segments", "emoji", "ucs2-long"],
    )
    @in_event_loop
    async def test_receipt_counts_like_the_core(self, legetime_provider: Any, body: str) -> None:
        receipt = await legetime_provider.send(message(body))
        assert isinstance(receipt.provider_id, str) and receipt.provider_id
        assert (receipt.encoding, receipt.segments) == encode_info(body)

    @in_event_loop
    async def test_same_reference_sends_once(
        self, legetime_provider: Any, legetime_driver: SmsDriver
    ) -> None:
        first = await legetime_provider.send(message())
        second = await legetime_provider.send(message())
        assert second.provider_id == first.provider_id
        assert second == first
        assert await legetime_driver.sent_count(legetime_provider, "case-1:answered") == 1

    @in_event_loop
    async def test_different_references_send_twice(
        self, legetime_provider: Any, legetime_driver: SmsDriver
    ) -> None:
        first = await legetime_provider.send(message(reference="a"))
        second = await legetime_provider.send(message(reference="b"))
        assert first.provider_id != second.provider_id
        sent_a = await legetime_driver.sent_count(legetime_provider, "a")
        sent_b = await legetime_driver.sent_count(legetime_provider, "b")
        assert sent_a == sent_b == 1

    @pytest.mark.parametrize("changes", [{"body": "Et annet budskap"}, {"to": "+4799999999"}])
    @in_event_loop
    async def test_reused_reference_for_another_message_conflicts(
        self, legetime_provider: Any, legetime_driver: SmsDriver, changes: dict[str, str]
    ) -> None:
        await legetime_provider.send(message())
        with pytest.raises(IdempotencyConflict):
            await legetime_provider.send(message(**changes))
        assert await legetime_driver.sent_count(legetime_provider, "case-1:answered") == 1

    @pytest.mark.parametrize(
        "to",
        [
            "91234567",
            "004791234567",
            "+47 912 34 567",
            "+0791234567",
            "+47",
            "",
            "+4791234567x",
            "+4791234567\n",
            "+47٩١٢٣٤٥٦٧",  # Arabic-Indic digits
            "+4791234567123456",  # longer than E.164 allows
        ],
    )
    @in_event_loop
    async def test_invalid_number_is_rejected(
        self, legetime_provider: Any, legetime_driver: SmsDriver, to: str
    ) -> None:
        with pytest.raises(ValidationError) as info:
            await legetime_provider.send(message(to=to))
        assert info.value.field == "to"
        assert await legetime_driver.sent_count(legetime_provider, "case-1:answered") == 0

    @pytest.mark.parametrize("body", ["", "   "])
    @in_event_loop
    async def test_empty_body_is_rejected(self, legetime_provider: Any, body: str) -> None:
        with pytest.raises(ValidationError) as info:
            await legetime_provider.send(message(body))
        assert info.value.field == "body"

    @pytest.mark.parametrize("status", [DeliveryStatus.DELIVERED, DeliveryStatus.FAILED])
    @in_event_loop
    async def test_delivery_report_round_trip(
        self, legetime_provider: Any, legetime_driver: SmsDriver, status: DeliveryStatus
    ) -> None:
        receipt = await legetime_provider.send(message())
        at = datetime(2025, 3, 5, 14, 30, 12, tzinfo=UTC)
        headers, body = legetime_driver.delivery_report(receipt.provider_id, status, at)
        report = await legetime_provider.parse_delivery_report(headers, body)
        assert report.provider_id == receipt.provider_id
        assert report.status is status
        if legetime_driver.report_time_is_arrival:
            assert report.at.tzinfo is not None
            assert abs(datetime.now(UTC) - report.at) < timedelta(minutes=1)
        else:
            assert report.at == at

    @in_event_loop
    async def test_forged_delivery_reports_are_rejected(
        self, legetime_provider: Any, legetime_driver: SmsDriver
    ) -> None:
        receipt = await legetime_provider.send(message())
        headers, body = legetime_driver.delivery_report(
            receipt.provider_id, DeliveryStatus.FAILED, datetime(2025, 3, 5, 14, 30, tzinfo=UTC)
        )
        forgeries = [
            ({k: v for k, v in headers.items() if k.lower() == "content-type"}, body),  # signature missing
            ({k: ("0" * len(v) if k.lower() != "content-type" else v) for k, v in headers.items()}, body),
        ]
        if legetime_driver.report_body_signed:
            forgeries += [
                (headers, body.replace(b"failed", b"delivered")),  # body changed under a valid signature
                (headers, body + b" "),
            ]
        for forged_headers, forged_body in forgeries:
            with pytest.raises(ProviderError):
                await legetime_provider.parse_delivery_report(forged_headers, forged_body)
