"""The default invoicing provider: Legetime makes the invoice itself, as a PDF with a KID.

No service is called: the invoice is a document the platform shows to operators and the patient, and the
payment arrives at the issuer's bank account with the invoice's KID. What it keeps, and why:

* **One row per invoice** in its own table (``pdf_invoices_invoice``): number, KID, total, dates, status.
  ``reference`` is unique, so ``issue`` is idempotent across processes: the same reference with the same
  request returns the stored invoice; with another request it raises ``IdempotencyConflict``. Requests
  are compared by an HMAC of their content (keyed from the master secret), so the table holds no hash of a
  name that could be guessed back. Number and KID are unique too: two invoices never share a KID.
* **The document as issued, sealed** (AES-256-GCM, key derived from the master secret for this purpose,
  bound to the invoice's id as associated data). The PDF carries the patient's name and address, so it is
  never stored in plain text; it is stored rather than made again so that what the patient got stays what
  the platform shows, whatever later versions of the layout do. (It could be made again: the same input
  gives the same bytes.) Nothing else of the request is stored.
* **Status**: ISSUED → SETTLED (``settle``, paid by the KID or the payment link after all) or ISSUED →
  CANCELLED (``cancel``). Both are final. A settled invoice cannot be cancelled, and a cancelled one cannot
  be settled (``PaymentStateError``): money that arrives for a withdrawn invoice is an overpayment to pay
  back, which the platform must see rather than have recorded as a settlement. Repeating a transition
  returns the invoice unchanged (the first ``paid_at`` stays).

Amounts are NOK (a KID and a Norwegian account take no other currency). The issuer (name, address, bank
account, organisation number) comes from ``LEGETIME_INVOICE_*``; the account and organisation number are
checked (MOD11) when the settings are read. The defaults are a demo issuer with the well-known test account
1234.56.78903, enough for development; ``check()`` reports them as not ready in production.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict
from sqlalchemy import (
    CheckConstraint,
    Column,
    Date,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    exc,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.plugins.invoicing.pdf.document import InvoiceDocument, Issuer, render
from legetime.plugins.invoicing.pdf.norwegian import (
    kid_mod10,
    normalize_account,
    normalize_organization_number,
)
from legetime.sdk import (
    Capability,
    ErrorCode,
    IdempotencyConflict,
    InvoiceLine,
    InvoiceRequest,
    InvoiceStatus,
    IssuedInvoice,
    Money,
    PaymentStateError,
    PluginDatabase,
    PluginTables,
    ProviderCheck,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    ProviderSpec,
    ProviderUnavailable,
    UTCDateTime,
    ValidationError,
    hookimpl,
)

T = TypeVar("T")

NAME = "pdf"
CURRENCY = "NOK"
DOCUMENT_KEY_PURPOSE = "invoicing-pdf-document"
REQUEST_KEY_PURPOSE = "invoicing-pdf-request"
DEMO_ACCOUNT = "12345678903"
SEALED_V1 = b"\x01"
NONCE_BYTES = 12
MAX_LINES = 50
MAX_TEXT = 200
MAX_DESCRIPTION = 60
"""A line's description fits its column on one line."""
UNAVAILABLE_MESSAGE = "Fakturaene kan ikke nås akkurat nå. Prøv igjen om litt."

metadata = MetaData()
invoices = Table(
    "pdf_invoices_invoice",
    metadata,
    Column("invoice_id", String(64), primary_key=True),
    Column("reference", String(MAX_TEXT), nullable=False, unique=True),
    Column("fingerprint", String(64), nullable=False),
    Column("number", String(64), nullable=False, unique=True),
    Column("kid", String(25), nullable=False, unique=True),
    Column("currency", String(3), nullable=False),
    Column("total", Integer, nullable=False),
    Column("issued_on", Date, nullable=False),
    Column("due_on", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("settled_at", UTCDateTime()),
    Column("cancelled_at", UTCDateTime()),
    Column("document", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    CheckConstraint("status IN ('issued', 'settled', 'cancelled')", name="ck_pdf_invoices_invoice_status"),
    CheckConstraint("total >= 0 AND due_on >= issued_on", name="ck_pdf_invoices_invoice_amounts"),
)


class PdfInvoiceSettings(ProviderSettings):
    """The issuer printed on the invoices (``LEGETIME_INVOICE_*``)."""

    model_config = SettingsConfigDict(env_prefix="LEGETIME_INVOICE_")

    issuer_name: str = Field(
        default="Legetime demo-legekontor",
        min_length=1,
        max_length=100,
        description="Who the invoice is from (the clinic's name as registered).",
    )
    issuer_address: str = Field(
        default="Eksempelveien 1, 0150 Oslo",
        max_length=MAX_TEXT,
        description="The issuer's postal address; printed one line per comma.",
    )
    issuer_account: str = Field(
        default=DEMO_ACCOUNT,
        description="The bank account payments go to: 11 digits with a valid MOD11 check digit "
        "(1234.56.78903 and 1234 56 78903 are accepted). The default is a demo account.",
    )
    issuer_organization_number: str | None = Field(
        default=None,
        description="The issuer's organisation number (9 digits, MOD11), printed when set.",
    )

    @field_validator("issuer_account")
    @classmethod
    def _account(cls, value: str) -> str:
        return normalize_account(value)

    @field_validator("issuer_organization_number")
    @classmethod
    def _organization_number(cls, value: str | None) -> str | None:
        return normalize_organization_number(value) if value else None

    @field_validator("issuer_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the issuer's name must not be blank")
        return value.strip()

    def issuer(self) -> Issuer:
        return Issuer(
            name=self.issuer_name,
            address=self.issuer_address,
            account=self.issuer_account,
            organization_number=self.issuer_organization_number,
        )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PdfInvoicingProvider:
    """Invoices as PDF documents, kept in the platform's database. Implements
    ``legetime.sdk.InvoicingProvider``."""

    name = NAME

    def __init__(
        self,
        database: PluginDatabase,
        issuer: Issuer,
        *,
        document_key: bytes,
        request_key: bytes,
        production: bool = False,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._db = database
        self._issuer = issuer
        self._aead = AESGCM(document_key)
        self._request_key = request_key
        self._production = production
        self._clock = now

    # --- InvoicingProvider ---------------------------------------------------------------------------

    async def issue(self, request: InvoiceRequest) -> IssuedInvoice:
        """Make and keep the invoice; the same reference again returns it (see the module docstring)."""
        _validate(request)
        kid = kid_mod10("".join(char for char in request.number if char.isdigit()))
        total = Money(sum(line.amount.amount for line in request.lines), CURRENCY)
        fingerprint = self._fingerprint(request)
        invoice_id = f"inv_{secrets.token_hex(12)}"
        document = render(
            InvoiceDocument(
                issuer=self._issuer,
                number=request.number,
                kid=kid,
                recipient_name=request.recipient_name,
                recipient_address=request.recipient_address,
                lines=request.lines,
                total=total,
                issued_on=request.issued_on,
                due_on=request.due_on,
            )
        )

        async def work(session: AsyncSession) -> IssuedInvoice:
            # One statement, so one snapshot: under READ COMMITTED two statements could see a concurrent
            # issue of this very request only in the second, and take it for another invoice's number.
            clashing = or_(
                invoices.c.reference == request.reference,
                invoices.c.number == request.number,
                invoices.c.kid == kid,
            )
            rows = (await session.execute(select(invoices).where(clashing))).all()
            existing = next((row for row in rows if row.reference == request.reference), None)
            if existing is not None:
                if not hmac.compare_digest(existing.fingerprint, fingerprint):
                    raise IdempotencyConflict(
                        "Det er allerede utstedt en annen faktura med denne referansen.", field="reference"
                    )
                return self._invoice(existing)
            if rows:
                raise ProviderError(
                    "Fakturanummeret (eller KID-en det gir) er allerede brukt på en annen faktura.",
                    field="number",
                    code=ErrorCode.CONFLICT,
                )
            row = {
                "invoice_id": invoice_id,
                "reference": request.reference,
                "fingerprint": fingerprint,
                "number": request.number,
                "kid": kid,
                "currency": CURRENCY,
                "total": total.amount,
                "issued_on": request.issued_on,
                "due_on": request.due_on,
                "status": InvoiceStatus.ISSUED.value,
                "document": self._seal(invoice_id, document),
                "created_at": self._now(),
            }
            await session.execute(insert(invoices).values(row))
            return IssuedInvoice(
                provider_id=invoice_id,
                number=request.number,
                kid=kid,
                total=total,
                due_on=request.due_on,
                status=InvoiceStatus.ISSUED,
                document=document,
            )

        try:
            return await self._run(work)
        except exc.IntegrityError:
            # The same reference (or number) issued by another process at the same moment: its transaction
            # won. Run again: now it is this request's replay, its conflict, or a number already taken.
            return await self._run(work)

    async def get(self, provider_id: str) -> IssuedInvoice:
        return await self._run(lambda session: self._load(session, provider_id))

    async def settle(self, provider_id: str, paid_at: datetime) -> IssuedInvoice:
        if paid_at.tzinfo is None:
            raise ValidationError("paid_at må ha tidssone.", field="paid_at")

        async def work(session: AsyncSession) -> IssuedInvoice:
            invoice = await self._load(session, provider_id, lock=True)
            if invoice.status is InvoiceStatus.CANCELLED:
                raise PaymentStateError(
                    "Fakturaen er kansellert og kan ikke gjøres opp: "
                    "en innbetaling til den må betales tilbake."
                )
            if invoice.status is InvoiceStatus.SETTLED:
                return invoice
            await self._change(session, provider_id, status=InvoiceStatus.SETTLED.value, settled_at=paid_at)
            return await self._load(session, provider_id)

        return await self._run(work)

    async def cancel(self, provider_id: str) -> IssuedInvoice:
        async def work(session: AsyncSession) -> IssuedInvoice:
            invoice = await self._load(session, provider_id, lock=True)
            if invoice.status is InvoiceStatus.SETTLED:
                raise PaymentStateError("Fakturaen er betalt og kan ikke kanselleres.")
            if invoice.status is InvoiceStatus.CANCELLED:
                return invoice
            await self._change(
                session, provider_id, status=InvoiceStatus.CANCELLED.value, cancelled_at=self._now()
            )
            return await self._load(session, provider_id)

        return await self._run(work)

    # --- Operators -----------------------------------------------------------------------------------

    async def check(self) -> ProviderCheck:
        """A sample invoice renders and the table answers (a read: nothing is issued). In production the
        demo account is not ok: payments would go to no one's account."""
        if self._production and self._issuer.account == DEMO_ACCOUNT:
            return ProviderCheck(
                False, "The issuer's bank account is the demo account: set LEGETIME_INVOICE_ISSUER_ACCOUNT."
            )
        try:
            sample = render(_sample(self._issuer))
        except Exception as error:  # a layout that cannot be made is what this check is for
            reason = error.__class__.__name__
            return ProviderCheck(False, f"A sample invoice could not be rendered ({reason}).")
        if not sample.startswith(b"%PDF-"):
            return ProviderCheck(False, "A sample invoice did not render as PDF.")
        try:
            async with self._db.transaction() as session:
                await session.execute(select(invoices.c.invoice_id).limit(1))
        except exc.DBAPIError as error:
            return ProviderCheck(False, f"The invoices' table cannot be read ({error.__class__.__name__}).")
        return ProviderCheck(True, "Invoices render as PDF and the invoices' table answers.")

    # --- Internals -----------------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        return now if now.tzinfo is not None else now.replace(tzinfo=UTC)

    def _fingerprint(self, request: InvoiceRequest) -> str:
        """What makes two requests "the same": all their fields, under a key (the request names a person)."""
        canonical = json.dumps(
            {
                "reference": request.reference,
                "number": request.number,
                "recipient_name": request.recipient_name,
                "recipient_address": request.recipient_address,
                "lines": [
                    [line.description, line.amount.amount, line.amount.currency] for line in request.lines
                ],
                "issued_on": request.issued_on.isoformat(),
                "due_on": request.due_on.isoformat(),
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hmac.new(self._request_key, canonical.encode(), hashlib.sha256).hexdigest()

    def _seal(self, invoice_id: str, document: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return SEALED_V1 + nonce + self._aead.encrypt(nonce, document, _aad(invoice_id))

    def _unseal(self, invoice_id: str, sealed: bytes) -> bytes:
        if sealed[:1] != SEALED_V1:
            raise ProviderError(f"Invoice {invoice_id}: its document is in an unknown format.")
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, _aad(invoice_id))
        except InvalidTag:
            # Another master secret, or the row altered or moved: show no document we cannot vouch for.
            raise ProviderError(f"Invoice {invoice_id}: its document failed authentication.") from None

    def _invoice(self, row: Any) -> IssuedInvoice:
        return IssuedInvoice(
            provider_id=row.invoice_id,
            number=row.number,
            kid=row.kid,
            total=Money(row.total, row.currency),
            due_on=row.due_on,
            status=InvoiceStatus(row.status),
            document=self._unseal(row.invoice_id, bytes(row.document)),
            settled_at=row.settled_at,
        )

    async def _load(self, session: AsyncSession, provider_id: str, *, lock: bool = False) -> IssuedInvoice:
        query = select(invoices).where(invoices.c.invoice_id == provider_id)
        row = (await session.execute(query.with_for_update() if lock else query)).first()
        if row is None:
            raise ProviderError(
                f"Fant ingen faktura med id {provider_id!r}.", field="provider_id", code=ErrorCode.NOT_FOUND
            )
        return self._invoice(row)

    async def _change(self, session: AsyncSession, provider_id: str, **values: Any) -> None:
        await session.execute(update(invoices).where(invoices.c.invoice_id == provider_id).values(**values))

    async def _run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``work`` in a transaction of its own; a database that cannot be reached is retryable."""
        try:
            async with self._db.transaction() as session:
                return await work(session)
        except exc.IntegrityError:
            raise  # a concurrent write of the same reference: for ``issue`` to judge
        except exc.DBAPIError as error:
            raise ProviderUnavailable(UNAVAILABLE_MESSAGE) from error


def _aad(invoice_id: str) -> bytes:
    """Binds a sealed document to its invoice: moved to another row, it fails authentication."""
    return f"legetime:invoicing-pdf:{invoice_id}".encode()


def _validate(request: InvoiceRequest) -> None:
    """Refuse what would make a wrong invoice, naming the request's field."""
    if not request.reference.strip() or len(request.reference) > MAX_TEXT:
        raise ValidationError(f"Referansen må ha 1 til {MAX_TEXT} tegn.", field="reference")
    digits = "".join(char for char in request.number if char.isdigit())
    if not request.number.strip() or len(request.number) > 64 or not digits.isascii():
        raise ValidationError("Fakturanummeret må ha 1 til 64 tegn.", field="number")
    if not 1 <= len(digits) <= 24:
        raise ValidationError("Fakturanummeret må ha 1 til 24 sifre (de blir KID-en).", field="number")
    if not request.recipient_name.strip() or len(request.recipient_name) > MAX_TEXT:
        raise ValidationError(f"Mottakerens navn må ha 1 til {MAX_TEXT} tegn.", field="recipient_name")
    if request.recipient_address is not None and len(request.recipient_address) > MAX_TEXT:
        raise ValidationError(f"Adressen kan ha høyst {MAX_TEXT} tegn.", field="recipient_address")
    if not 1 <= len(request.lines) <= MAX_LINES:
        raise ValidationError(f"En faktura har 1 til {MAX_LINES} linjer.", field="lines")
    for line in request.lines:
        if line.amount.currency != CURRENCY:
            currency = line.amount.currency
            raise ValidationError(f"Fakturaer utstedes i {CURRENCY}, ikke {currency}.", field="lines")
        if not line.description.strip() or len(line.description) > MAX_DESCRIPTION:
            raise ValidationError(
                f"Hver linje trenger en beskrivelse på 1 til {MAX_DESCRIPTION} tegn.", field="lines"
            )
    if request.due_on < request.issued_on:
        raise ValidationError("Forfallsdatoen kan ikke være før fakturadatoen.", field="due_on")


def _sample(issuer: Issuer) -> InvoiceDocument:
    """What ``check`` renders: the layout with made-up content."""
    fee = Money(35000, CURRENCY)
    return InvoiceDocument(
        issuer=issuer,
        number="F-0000-000001",
        kid=kid_mod10("00000000001"),
        recipient_name="Kari Nordmann",
        recipient_address="Eksempelgata 2\n0150 Oslo",
        lines=(InvoiceLine("Konsultasjon", fee),),
        total=fee,
        issued_on=date(2026, 1, 1),
        due_on=date(2026, 1, 15),
    )


# --- Plugin ----------------------------------------------------------------------------------------


def create_provider(
    settings: PdfInvoiceSettings, context: ProviderContext, *, now: Callable[[], datetime] = _utcnow
) -> PdfInvoicingProvider:
    """The ``ProviderSpec`` factory. ``now`` is for tests (the platform never passes it)."""
    return PdfInvoicingProvider(
        database=context.database,
        issuer=settings.issuer(),
        document_key=context.derive_key(DOCUMENT_KEY_PURPOSE),
        request_key=context.derive_key(REQUEST_KEY_PURPOSE),
        production=context.settings.is_production,
        now=now,
    )


@hookimpl
def register_providers() -> Iterable[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.INVOICING,
            name=NAME,
            factory=create_provider,
            settings_model=PdfInvoiceSettings,
            description="Invoices as PDF documents with a KID, made and kept by the platform itself.",
        )
    ]


@hookimpl
def register_tables() -> PluginTables:
    return PluginTables(
        "pdf_invoices", metadata, Path(__file__).parent.parent / "migrations" / "pdf_invoices"
    )


@hookimpl
def plugin_info() -> Mapping[str, str]:
    return {"description": "Invoices as PDF with a KID, for visits not paid by their payment link."}
