"""The contract every invoicing provider keeps.

Its driver builds the provider and says how to read the text of its documents. The suite checks what the
platform relies on: ``issue`` is idempotent by reference and refuses other content under a reference
already used; the total is the sum of the lines; the KID carries a valid MOD10 check digit; ``settle`` and
``cancel`` are idempotent, final, and exclude each other; the document, when the provider makes one, is a
PDF that shows the invoice's number, KID and total.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from legetime.sdk import (
    ErrorCode,
    IdempotencyConflict,
    InvoiceLine,
    InvoiceRequest,
    InvoiceStatus,
    InvoicingProvider,
    IssuedInvoice,
    Money,
    PaymentStateError,
    ProviderError,
    ProviderSpec,
    ValidationError,
)
from legetime.testing._common import BuildProvider, build_default, in_event_loop

FEE = Money(35000, "NOK")
INVOICE_FEE = Money(6500, "NOK")
ISSUED_ON = date(2026, 3, 2)


def luhn_valid(kid: str) -> bool:
    """Whether ``kid`` is 2 to 25 digits whose last is the MOD10 (Luhn) check digit of the others."""
    if not re.fullmatch(r"[0-9]{2,25}", kid):
        return False
    total = 0
    for position, char in enumerate(reversed(kid)):
        value = int(char) * (2 if position % 2 == 1 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.DOTALL)
_SHOWN = re.compile(rb"\[((?:[^\]\\]|\\.)*)\]\s*TJ|(\((?:[^()\\]|\\.)*\))\s*(?:Tj|'|\")", re.DOTALL)
_LITERAL = re.compile(rb"\((?:[^()\\]|\\.)*\)", re.DOTALL)
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _unescape(literal: bytes) -> bytes:
    """A PDF literal string's bytes, its escapes resolved (``\\(``, ``\\\\``, ``\\n``, octal ``\\ddd``)."""
    out, body, i = bytearray(), literal[1:-1], 0
    while i < len(body):
        byte = body[i : i + 1]
        if byte != b"\\":
            out += byte
            i += 1
            continue
        following = body[i + 1 : i + 2]
        octal = re.match(rb"[0-7]{1,3}", body[i + 1 : i + 4])
        if octal:
            out.append(int(octal.group(), 8) & 0xFF)
            i += 1 + len(octal.group())
        elif following in (b"\n", b"\r"):
            i += 2  # a line continuation
        else:
            out += _ESCAPES.get(following, following)
            i += 2
    return bytes(out)


def pdf_text(document: bytes) -> str:
    """The text a PDF shows with its standard fonts: the literal strings of ``Tj``/``TJ`` in its content
    streams (deflated or not), decoded as WinAnsi. Enough to find a number or an amount in a document made
    without embedded fonts; a driver whose provider embeds fonts gives its own ``document_text``."""
    shown: list[str] = []
    for match in _STREAM.finditer(document):
        raw = match.group(1)
        try:
            content = zlib.decompress(raw)
        except zlib.error:
            content = raw
        for text in _SHOWN.finditer(content):
            literals = _LITERAL.findall(text.group(1)) if text.group(1) is not None else [text.group(2)]
            shown.append("".join(_unescape(literal).decode("cp1252", "replace") for literal in literals))
    return "\n".join(shown)


@dataclass(frozen=True)
class InvoicingDriver:
    """How the suite makes one invoicing provider do what the contract needs."""

    build: BuildProvider = build_default
    """Builds the provider (and starts whatever fake it talks to) for one test."""
    document_text: Callable[[bytes], str] | None = pdf_text
    """The text a document shows, to find its number, KID and total in it; None to check only that it is
    a PDF."""


class Invoices:
    """Fresh references and invoice numbers per test, so a provider with shared state (a sandbox) is not
    confused and no two tests' invoices share a number or KID."""

    def __init__(self, tmp_path: Path) -> None:
        digest = hashlib.sha256(str(tmp_path).encode()).hexdigest()
        self._prefix = digest[:12]
        self._serial = int(digest[:8], 16) % 10**9
        self._count = 0

    def request(self, **changes: Any) -> InvoiceRequest:
        self._count += 1
        values: dict[str, Any] = {
            "reference": f"contract-{self._prefix}-{self._count}",
            "number": f"F-{self._serial:09d}-{self._count:03d}",
            "recipient_name": "Kari Nordmann",
            "recipient_address": "Eksempelgata 2\n0150 Oslo",
            "lines": (InvoiceLine("Konsultasjon", FEE), InvoiceLine("Fakturagebyr", INVOICE_FEE)),
            "issued_on": ISSUED_ON,
            "due_on": ISSUED_ON + timedelta(days=14),
        }
        values.update(changes)
        return InvoiceRequest(**values)


def _norwegian(money: Money) -> str:
    """``41500`` as an invoice writes it after "kr": ``415,00`` (the suite's totals stay under 1000)."""
    kroner, ore = divmod(money.amount, 100)
    return f"{kroner},{ore:02d}"


PAID_AT = datetime(2026, 3, 5, 12, 30, tzinfo=UTC)


class InvoicingContract:
    """The invoicing contract (see ``legetime.testing`` for how to run it against a provider)."""

    pytestmark = pytest.mark.legetime_contract

    @pytest.fixture
    def invoices(self, tmp_path: Path) -> Iterator[Invoices]:
        yield Invoices(tmp_path)

    def test_implements_the_protocol(self, legetime_provider: Any, legetime_spec: ProviderSpec) -> None:
        assert isinstance(legetime_provider, InvoicingProvider)
        assert legetime_provider.name == legetime_spec.name

    @in_event_loop
    async def test_issue_totals_the_lines_with_a_valid_kid(
        self, legetime_provider: Any, invoices: Invoices
    ) -> None:
        request = invoices.request()
        invoice = await legetime_provider.issue(request)
        assert isinstance(invoice, IssuedInvoice)
        assert invoice.number == request.number
        assert invoice.total == Money(FEE.amount + INVOICE_FEE.amount, "NOK")
        assert invoice.due_on == request.due_on
        assert invoice.status is InvoiceStatus.ISSUED
        assert invoice.settled_at is None
        assert luhn_valid(invoice.kid), invoice.kid
        assert invoice.provider_id

    @in_event_loop
    async def test_issue_is_idempotent_by_reference(self, legetime_provider: Any, invoices: Invoices) -> None:
        request = invoices.request()
        first = await legetime_provider.issue(request)
        again = await legetime_provider.issue(request)
        assert again == first
        assert await legetime_provider.get(first.provider_id) == first

    @in_event_loop
    async def test_other_content_under_a_used_reference_is_refused(
        self, legetime_provider: Any, invoices: Invoices
    ) -> None:
        request = invoices.request()
        first = await legetime_provider.issue(request)
        for changed in (
            replace(request, lines=(InvoiceLine("Konsultasjon", FEE),)),
            replace(request, recipient_name="Ola Nordmann"),
            replace(request, due_on=request.due_on + timedelta(days=1)),
        ):
            with pytest.raises(IdempotencyConflict):
                await legetime_provider.issue(changed)
        assert await legetime_provider.get(first.provider_id) == first

    @in_event_loop
    async def test_invoices_with_other_references_are_separate(
        self, legetime_provider: Any, invoices: Invoices
    ) -> None:
        one = await legetime_provider.issue(invoices.request())
        other = await legetime_provider.issue(invoices.request(lines=(InvoiceLine("Konsultasjon", FEE),)))
        assert one.provider_id != other.provider_id
        assert one.kid != other.kid
        assert other.total == FEE

    @in_event_loop
    async def test_the_document_is_a_pdf_showing_number_kid_and_total(
        self, legetime_provider: Any, legetime_driver: InvoicingDriver, invoices: Invoices
    ) -> None:
        invoice = await legetime_provider.issue(invoices.request())
        if invoice.document is None:
            pytest.skip("this provider leaves the document with its service")
        assert invoice.document.startswith(b"%PDF-")
        assert invoice.content_type == "application/pdf"
        if legetime_driver.document_text is None:
            return
        text = legetime_driver.document_text(invoice.document)
        assert invoice.number in text
        assert invoice.kid in text
        assert _norwegian(invoice.total) in text

    @in_event_loop
    async def test_settle_is_idempotent_and_final(self, legetime_provider: Any, invoices: Invoices) -> None:
        request = invoices.request()
        invoice = await legetime_provider.issue(request)
        settled = await legetime_provider.settle(invoice.provider_id, PAID_AT)
        assert settled.status is InvoiceStatus.SETTLED
        assert settled.settled_at == PAID_AT
        assert (settled.provider_id, settled.kid, settled.total) == (
            invoice.provider_id,
            invoice.kid,
            invoice.total,
        )
        again = await legetime_provider.settle(invoice.provider_id, PAID_AT + timedelta(hours=1))
        assert again.status is InvoiceStatus.SETTLED
        assert again.settled_at == PAID_AT  # the first payment's time stays
        assert (await legetime_provider.get(invoice.provider_id)).status is InvoiceStatus.SETTLED
        # Issuing again after settling returns the invoice as it is now: a retry cannot unpay it.
        assert (await legetime_provider.issue(request)).status is InvoiceStatus.SETTLED

    @in_event_loop
    async def test_a_settled_invoice_cannot_be_cancelled(
        self, legetime_provider: Any, invoices: Invoices
    ) -> None:
        invoice = await legetime_provider.issue(invoices.request())
        await legetime_provider.settle(invoice.provider_id, PAID_AT)
        with pytest.raises(PaymentStateError):
            await legetime_provider.cancel(invoice.provider_id)
        assert (await legetime_provider.get(invoice.provider_id)).status is InvoiceStatus.SETTLED

    @in_event_loop
    async def test_cancel_is_idempotent_and_a_cancelled_invoice_cannot_be_settled(
        self, legetime_provider: Any, invoices: Invoices
    ) -> None:
        invoice = await legetime_provider.issue(invoices.request())
        cancelled = await legetime_provider.cancel(invoice.provider_id)
        assert cancelled.status is InvoiceStatus.CANCELLED
        assert (await legetime_provider.cancel(invoice.provider_id)).status is InvoiceStatus.CANCELLED
        with pytest.raises(PaymentStateError):
            await legetime_provider.settle(invoice.provider_id, PAID_AT)
        assert (await legetime_provider.get(invoice.provider_id)).status is InvoiceStatus.CANCELLED

    @in_event_loop
    async def test_an_unknown_invoice_is_not_found(self, legetime_provider: Any) -> None:
        for attempt in (
            lambda: legetime_provider.get("inv_unknown"),
            lambda: legetime_provider.settle("inv_unknown", PAID_AT),
            lambda: legetime_provider.cancel("inv_unknown"),
        ):
            with pytest.raises(ProviderError) as info:
                await attempt()
            assert info.value.code is ErrorCode.NOT_FOUND

    @in_event_loop
    async def test_an_invalid_request_is_refused_and_issues_nothing(
        self, legetime_provider: Any, invoices: Invoices
    ) -> None:
        cases = (
            ("lines", invoices.request(lines=())),
            ("due_on", invoices.request(due_on=ISSUED_ON - timedelta(days=1))),
            ("recipient_name", invoices.request(recipient_name="")),
        )
        for field, request in cases:
            with pytest.raises(ValidationError) as info:
                await legetime_provider.issue(request)
            assert info.value.field == field
            # Nothing was kept under the reference: corrected, the same reference issues.
            corrected = replace(
                request,
                lines=(InvoiceLine("Konsultasjon", FEE),),
                due_on=ISSUED_ON + timedelta(days=14),
                recipient_name="Kari Nordmann",
            )
            assert (await legetime_provider.issue(corrected)).status is InvoiceStatus.ISSUED
