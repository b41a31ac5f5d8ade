"""Invoicing: an invoice for a visit not paid by its payment link within 48 hours.

The default provider makes the invoice document itself (a PDF with the fee and a KID); a provider for an
invoicing service hands the invoice over to it. The invoice carries only what payment needs: the
recipient's name and postal address when known, the lines (no diagnosis: "Konsultasjon", "Fakturagebyr"),
amounts, dates and the payment reference. ``reference`` is the idempotency key.

Who issues the invoice (name, bank account, address, organisation number) is the provider's configuration,
not part of the request: an invoicing service has its own account, and the account the KID is paid to
belongs with the provider that makes the KID.

Errors: an invalid request raises ``ValidationError`` (``field`` names the request field); a reference
issued before with other content raises ``IdempotencyConflict``; an unknown ``provider_id`` raises
``ProviderError`` with ``ErrorCode.NOT_FOUND``; a transition the invoice's status does not allow raises
``PaymentStateError``; a provider that cannot be reached raises ``ProviderUnavailable`` (retry later).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from legetime.core.platform.money import Money


@dataclass(frozen=True)
class InvoiceLine:
    description: str
    """Without health content: what a bank statement or an insurer may show."""
    amount: Money


@dataclass(frozen=True)
class InvoiceRequest:
    reference: str
    """The idempotency key (the appointment's id): issuing again with it returns the same invoice."""
    number: str
    """The platform's invoice number (``F-2026-000123``); its digits make the KID."""
    recipient_name: str
    lines: tuple[InvoiceLine, ...]
    """At least one; all in one currency. The fee is one of them."""
    issued_on: date
    due_on: date
    """On or after ``issued_on``."""
    recipient_address: str | None = None
    """Postal address, lines separated by newlines, when known."""


class InvoiceStatus(StrEnum):
    ISSUED = "issued"
    SETTLED = "settled"
    """Paid (by the invoice's KID, or the payment link after all). Final: it cannot be cancelled."""
    CANCELLED = "cancelled"
    """Withdrawn before payment. Final: a payment that still arrives is an overpayment to pay back, so
    ``settle`` refuses it (``PaymentStateError``) rather than hide it."""


@dataclass(frozen=True)
class IssuedInvoice:
    provider_id: str
    number: str
    kid: str
    """The payment reference (KID, with its MOD10 check digit)."""
    total: Money
    """The sum of the lines."""
    due_on: date
    status: InvoiceStatus
    document: bytes | None = None
    """The invoice as PDF when the provider makes it (the default does); None when the service keeps it."""
    content_type: str = "application/pdf"
    settled_at: datetime | None = None
    """When the payment that settled it was made (the first ``settle``), for SETTLED."""


@runtime_checkable
class InvoicingProvider(Protocol):
    name: str

    async def issue(self, request: InvoiceRequest) -> IssuedInvoice:
        """Issue the invoice (idempotent by ``request.reference``; other content with the same reference
        raises ``IdempotencyConflict``)."""
        ...

    async def get(self, provider_id: str) -> IssuedInvoice:
        """The invoice as it is now, with its document: for showing it to operators and the patient again
        without the platform keeping a copy."""
        ...

    async def settle(self, provider_id: str, paid_at: datetime) -> IssuedInvoice:
        """Mark it paid (a payment arrived by another way, e.g. the payment link after all). Idempotent: the
        first ``paid_at`` stays. A cancelled invoice cannot be settled (``PaymentStateError``)."""
        ...

    async def cancel(self, provider_id: str) -> IssuedInvoice:
        """Withdraw an unpaid invoice. Idempotent. A settled invoice cannot be cancelled
        (``PaymentStateError``)."""
        ...
