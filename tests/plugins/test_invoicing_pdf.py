"""The PDF invoicing provider's own behaviour, beyond the shared contract: the Norwegian formats (amounts,
dates, KID, account and organisation numbers), the settings' checks, the document's content, what the
database holds (no plain PDF, no name), numbers that must not repeat, concurrency and ``check()``."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from legetime.core.platform.config import ConfigError, Settings
from legetime.core.platform.errors import ErrorCode, ProviderError, ValidationError
from legetime.core.platform.money import Money
from legetime.core.platform.providers import Capability, ProviderCheck, ProviderContext
from legetime.core.platform.providers.invoicing import (
    InvoiceLine,
    InvoiceRequest,
    InvoiceStatus,
    InvoicingProvider,
)
from legetime.core.platform.registry import instantiate
from legetime.plugins.invoicing import pdf
from legetime.plugins.invoicing.pdf import PdfInvoiceSettings, PdfInvoicingProvider, invoices
from legetime.plugins.invoicing.pdf.document import printable
from legetime.plugins.invoicing.pdf.norwegian import (
    format_account,
    format_date,
    format_nok,
    format_organization_number,
    is_valid_kid,
    kid_mod10,
    luhn_check_digit,
    normalize_account,
    normalize_organization_number,
)
from legetime.testing import build_provider, pdf_text, plugin_database

SPEC = next(iter(pdf.register_providers()))
NAME = "Kari Nordmann-Sæther"
ISSUED_ON = date(2026, 3, 2)


def request(**changes: Any) -> InvoiceRequest:
    values: dict[str, Any] = {
        "reference": "appointment-1",
        "number": "F-2026-000123",
        "recipient_name": NAME,
        "recipient_address": "Storgata 1\n0155 Oslo",
        "lines": (
            InvoiceLine("Konsultasjon", Money(125000, "NOK")),
            InvoiceLine("Fakturagebyr", Money(6500, "NOK")),
        ),
        "issued_on": ISSUED_ON,
        "due_on": ISSUED_ON + timedelta(days=14),
    }
    values.update(changes)
    return InvoiceRequest(**values)


def context(data_dir: Path, *, secret: bytes = b"one", **platform: Any) -> ProviderContext:
    settings = Settings.defaults(data_dir=data_dir, **platform)
    return ProviderContext(
        settings=settings,
        derive_key=lambda purpose: hashlib.sha256(secret + purpose.encode()).digest(),
        database=plugin_database(settings.resolved_database_url),
    )


def make(data_dir: Path, *, secret: bytes = b"one", **settings: Any) -> PdfInvoicingProvider:
    return pdf.create_provider(PdfInvoiceSettings(**settings), context(data_dir, secret=secret))


@pytest.fixture
def provider(tmp_path: Path) -> PdfInvoicingProvider:
    return make(tmp_path)


# --- Norwegian formats -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "written"),
    [
        (0, "kr 0,00"),
        (5, "kr 0,05"),
        (35000, "kr 350,00"),
        (35050, "kr 350,50"),
        (135000, "kr 1 350,00"),
        (123456789, "kr 1 234 567,89"),
    ],
)
def test_amounts_are_written_in_kroner_and_ore(amount: int, written: str) -> None:
    assert format_nok(Money(amount, "NOK")) == written


def test_only_nok_is_written_as_kroner() -> None:
    with pytest.raises(ValueError, match="NOK"):
        format_nok(Money(100, "SEK"))


def test_dates_accounts_and_organisation_numbers_as_printed() -> None:
    assert format_date(date(2026, 3, 2)) == "02.03.2026"
    assert format_account("12345678903") == "1234.56.78903"
    assert format_organization_number("974760673") == "974 760 673"


@pytest.mark.parametrize(
    ("digits", "kid"),
    [
        ("7992739871", "79927398713"),  # the textbook Luhn example
        ("1234567", "12345674"),
        ("2026000123", "20260001233"),
        ("0", "00"),
        ("9" * 24, "9" * 24 + "4"),  # 25 digits: the longest KID
    ],
)
def test_kid_carries_the_mod10_check_digit(digits: str, kid: str) -> None:
    assert kid_mod10(digits) == kid
    assert is_valid_kid(kid)


@pytest.mark.parametrize("kid", ["79927398710", "12345675", "1", "", "1234a", "9" * 26, "１２"])
def test_invalid_kids_are_recognised(kid: str) -> None:
    assert not is_valid_kid(kid)


def test_kid_refuses_what_is_not_digits_or_too_long() -> None:
    for digits in ("", "12a", "1" * 25):
        with pytest.raises(ValueError):
            kid_mod10(digits)
    assert luhn_check_digit("0") == "0"


@pytest.mark.parametrize("account", ["12345678903", "1234.56.78903", "1234 56 78903", "86011117947"])
def test_valid_account_numbers(account: str) -> None:
    assert len(normalize_account(account)) == 11


@pytest.mark.parametrize(
    ("account", "reason"),
    [
        ("12345678904", "MOD11"),  # one off in the check digit
        ("12345678930", "MOD11"),  # two digits swapped
        ("00000000060", "MOD11"),  # the rule gives 10: no check digit makes these digits valid
        ("1234567890", "11 digits"),
        ("123456789031", "11 digits"),
        ("1234-56-78903", "11 digits"),
        ("1234567890x", "11 digits"),
    ],
)
def test_invalid_account_numbers_say_why(account: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_account(account)


def test_organisation_numbers_are_checked() -> None:
    assert normalize_organization_number("974 760 673") == "974760673"
    with pytest.raises(ValueError, match="MOD11"):
        normalize_organization_number("974760674")
    with pytest.raises(ValueError, match="9 digits"):
        normalize_organization_number("97476067")


def test_text_outside_the_standard_font_is_written_without_diacritics() -> None:
    assert printable("Ole Ærøy Åsen") == "Ole Ærøy Åsen"
    assert printable("Čáhcesuolu Đuolla Ŋ Łukasz") == "Cáhcesuolu Duolla N Lukasz"
    assert printable("王 Ola") == "? Ola"
    assert printable("Ola\x00\nNordmann") == "Ola  Nordmann"


# --- Settings --------------------------------------------------------------------------------------


def test_settings_from_the_environment_are_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGETIME_INVOICE_ISSUER_NAME", "  Fjordlegen AS ")
    monkeypatch.setenv("LEGETIME_INVOICE_ISSUER_ACCOUNT", "8601 11 17947")
    monkeypatch.setenv("LEGETIME_INVOICE_ISSUER_ORGANIZATION_NUMBER", "974 760 673")
    settings = PdfInvoiceSettings()
    assert settings.issuer_name == "Fjordlegen AS"
    assert settings.issuer_account == "86011117947"
    assert settings.issuer_organization_number == "974760673"


def test_the_defaults_are_a_working_demo_issuer() -> None:
    settings = PdfInvoiceSettings()
    assert settings.issuer_account == pdf.DEMO_ACCOUNT
    assert normalize_account(settings.issuer_account) == settings.issuer_account
    assert settings.issuer_organization_number is None


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("LEGETIME_INVOICE_ISSUER_ACCOUNT", "1234.56.78904", "check digit does not match"),
        ("LEGETIME_INVOICE_ISSUER_ACCOUNT", "1234567", "has 11 digits"),
        ("LEGETIME_INVOICE_ISSUER_ORGANIZATION_NUMBER", "974760674", "check digit does not match"),
        ("LEGETIME_INVOICE_ISSUER_NAME", "   ", "must not be blank"),
    ],
)
def test_invalid_settings_stop_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        instantiate(SPEC, context(tmp_path))
    assert info.value.setting == variable
    assert says in str(info.value)


# --- The document ----------------------------------------------------------------------------------


async def test_the_document_is_a_norwegian_invoice(tmp_path: Path) -> None:
    provider = make(
        tmp_path,
        issuer_name="Fjordlegen AS",
        issuer_address="Kaigata 3, 5003 Bergen",
        issuer_account="8601.11.17947",
        issuer_organization_number="974760673",
    )
    invoice = await provider.issue(request())
    assert invoice.document is not None
    text = pdf_text(invoice.document)
    for expected in (
        "Faktura",
        "Fakturanummer",
        "F-2026-000123",
        "Fakturadato",
        "02.03.2026",
        "Forfallsdato",
        "16.03.2026",
        "KID",
        "20260001233",
        "Kontonummer",
        "8601.11.17947",
        "Å betale",
        "Konsultasjon",
        "kr 1 250,00",
        "Fakturagebyr",
        "kr 65,00",
        "kr 1 315,00",
        NAME,
        "Storgata 1",
        "0155 Oslo",
        "Fjordlegen AS",
        "5003 Bergen",
        "Org.nr. 974 760 673",
    ):
        assert expected in text, expected
    assert invoice.kid == "20260001233"
    assert invoice.total == Money(131500, "NOK")


async def test_the_same_invoice_makes_the_same_bytes(tmp_path: Path) -> None:
    one = await make(tmp_path / "a").issue(request())
    other = await make(tmp_path / "b", secret=b"another").issue(request())
    assert one.document == other.document
    assert one.provider_id != other.provider_id


async def test_a_name_outside_the_standard_font_still_issues(provider: PdfInvoicingProvider) -> None:
    invoice = await provider.issue(request(recipient_name="Máret Čuđe Łęcka"))
    assert invoice.document is not None
    assert "Máret Cude Lecka" in pdf_text(invoice.document)


# --- What the database holds -----------------------------------------------------------------------


async def test_the_stored_document_is_sealed_and_the_name_is_nowhere_in_plain_text(tmp_path: Path) -> None:
    provider = make(tmp_path)
    invoice = await provider.issue(request(recipient_name="Ingeborg Plaintextsen"))
    async with provider._db.transaction() as session:
        row = (await session.execute(select(invoices))).one()
    stored = bytes(row.document)
    assert not stored.startswith(b"%PDF")
    assert invoice.document is not None and invoice.document not in stored
    assert b"Plaintextsen" not in stored
    assert all("Plaintextsen" not in str(value) for value in row)
    # Nor anywhere in the database's files (SQLite: the file and its journal).
    files = _files_under(tmp_path)
    assert any(path.name.endswith(".db") for path in files)
    for path, content in files.items():
        assert b"Plaintextsen" not in content, path


def _files_under(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}


async def test_a_sealed_document_moved_to_another_invoice_is_refused(provider: PdfInvoicingProvider) -> None:
    one = await provider.issue(request())
    other = await provider.issue(request(reference="appointment-2", number="F-2026-000124"))
    async with provider._db.transaction() as session:
        sealed = await session.scalar(
            select(invoices.c.document).where(invoices.c.invoice_id == one.provider_id)
        )
        await session.execute(
            update(invoices).where(invoices.c.invoice_id == other.provider_id).values(document=sealed)
        )
    with pytest.raises(ProviderError, match="failed authentication"):
        await provider.get(other.provider_id)
    assert (await provider.get(one.provider_id)).document == one.document


async def test_another_master_secret_cannot_read_the_documents(tmp_path: Path) -> None:
    invoice = await make(tmp_path).issue(request())
    with pytest.raises(ProviderError, match="failed authentication"):
        await make(tmp_path, secret=b"another").get(invoice.provider_id)


async def test_invoices_survive_a_new_provider_on_the_same_database(tmp_path: Path) -> None:
    invoice = await make(tmp_path).issue(request())
    again = make(tmp_path)
    assert await again.get(invoice.provider_id) == invoice
    assert await again.issue(request()) == invoice


# --- Requests refused ------------------------------------------------------------------------------


async def test_a_number_or_kid_already_used_is_refused(provider: PdfInvoicingProvider) -> None:
    await provider.issue(request())
    for number in ("F-2026-000123", "2026000123", "F 2026 000123"):  # the last two give the same KID
        with pytest.raises(ProviderError) as info:
            await provider.issue(request(reference="appointment-2", number=number))
        assert (info.value.code, info.value.field) == (ErrorCode.CONFLICT, "number")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"number": "F-ABC"}, "number"),
        ({"number": "1" * 25}, "number"),
        ({"lines": (InvoiceLine("Konsultasjon", Money(35000, "SEK")),)}, "lines"),
        ({"lines": (InvoiceLine(" ", Money(35000, "NOK")),)}, "lines"),
        ({"lines": (InvoiceLine("x" * 61, Money(35000, "NOK")),)}, "lines"),
        ({"lines": tuple(InvoiceLine("Linje", Money(100, "NOK")) for _ in range(51))}, "lines"),
        ({"reference": ""}, "reference"),
        ({"recipient_address": "x" * 201}, "recipient_address"),
    ],
)
async def test_invalid_requests_name_the_field(
    provider: PdfInvoicingProvider, changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        await provider.issue(request(**changes))
    assert info.value.field == field


async def test_settle_needs_a_time_with_a_zone(provider: PdfInvoicingProvider) -> None:
    invoice = await provider.issue(request())
    with pytest.raises(ValidationError) as info:
        await provider.settle(invoice.provider_id, datetime(2026, 3, 5, 12, 0))
    assert info.value.field == "paid_at"
    assert (await provider.get(invoice.provider_id)).status is InvoiceStatus.ISSUED


# --- Concurrency -----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    return {"database_url": request.getfixturevalue("fresh_postgres_url")}


async def test_concurrent_issues_of_one_reference_make_one_invoice(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    providers = [build_provider(SPEC, tmp_path, **backend) for _ in range(4)]
    results = await asyncio.gather(*(provider.issue(request()) for provider in providers))
    assert len({invoice.provider_id for invoice in results}) == 1
    async with providers[0]._db.transaction() as session:
        assert len((await session.execute(select(invoices.c.invoice_id))).all()) == 1


async def test_concurrent_settle_and_cancel_leave_one_final_state(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    first, second = (build_provider(SPEC, tmp_path, **backend) for _ in range(2))
    invoice = await first.issue(request())
    outcomes = await asyncio.gather(
        first.settle(invoice.provider_id, datetime.fromisoformat("2026-03-05T12:00:00+01:00")),
        second.cancel(invoice.provider_id),
        return_exceptions=True,
    )
    refused = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    assert len(refused) == 1 and refused[0].__class__.__name__ == "PaymentStateError", outcomes
    final = (await first.get(invoice.provider_id)).status
    assert final in (InvoiceStatus.SETTLED, InvoiceStatus.CANCELLED)


# --- check() and registration ----------------------------------------------------------------------


async def test_check_renders_and_reads_without_issuing(provider: PdfInvoicingProvider) -> None:
    assert await provider.check() == ProviderCheck(
        True, "Invoices render as PDF and the invoices' table answers."
    )
    async with provider._db.transaction() as session:
        assert (await session.execute(select(invoices))).first() is None


async def test_check_refuses_the_demo_account_in_production(tmp_path: Path) -> None:
    production: dict[str, Any] = {
        "environment": "production",
        "secret_key": "kT3v9QxW2mLp8ZrB5nYc7HdF4jGs6AeU1oIq",
        "graphiql": False,
    }
    demo = pdf.create_provider(PdfInvoiceSettings(), context(tmp_path, **production))
    result = await demo.check()
    assert not result.ok
    assert "LEGETIME_INVOICE_ISSUER_ACCOUNT" in result.message
    real = pdf.create_provider(
        PdfInvoiceSettings(issuer_account="86011117947"), context(tmp_path, **production)
    )
    assert (await real.check()).ok


async def test_check_says_when_the_table_cannot_be_read(tmp_path: Path) -> None:
    provider = make(tmp_path)
    broken = PdfInvoicingProvider(
        database=type(provider._db)("sqlite+aiosqlite:///" + str(tmp_path / "missing" / "no.db")),
        issuer=PdfInvoiceSettings().issuer(),
        document_key=b"k" * 32,
        request_key=b"r" * 32,
    )
    result = await broken.check()
    assert not result.ok and "table" in result.message


def test_registered_as_the_default_real_invoicing_provider(provider: PdfInvoicingProvider) -> None:
    assert (SPEC.capability, SPEC.name, SPEC.test_only) == (Capability.INVOICING, "pdf", False)
    assert Settings.defaults().invoicing_provider == "pdf"
    assert isinstance(provider, InvoicingProvider)


async def test_a_retry_after_cancelling_returns_the_cancelled_invoice(provider: PdfInvoicingProvider) -> None:
    invoice = await provider.issue(request())
    await provider.cancel(invoice.provider_id)
    again = await provider.issue(request())
    assert replace(again, status=InvoiceStatus.ISSUED) == invoice
    assert again.status is InvoiceStatus.CANCELLED
