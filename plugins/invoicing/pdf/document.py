"""The invoice document: one A4 page in Norwegian bokmål, made with fpdf2.

The same input gives the same bytes (the creation date is the invoice date, nothing else varies), so a
document can be compared and a test can pin it. The text uses the PDF standard font Helvetica, which needs
no font file but holds only Windows-1252 (all of Norwegian, Swedish, Danish, German, French…); a character
outside it (Sámi Č, Đ, Ŋ, Ŧ; Polish Ł) is written without its diacritic, or as ``?`` when it has no Latin
form — a name on an invoice stays recognisable, and issuing never fails on a name.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING

from legetime.plugins.invoicing.pdf.norwegian import (
    format_account,
    format_date,
    format_nok,
    format_organization_number,
)
from legetime.sdk import InvoiceLine, Money

if TYPE_CHECKING:
    from fpdf import FPDF

PRODUCER = "Legetime"
FONT = "Helvetica"
ENCODING = "cp1252"
"""What the standard fonts hold (fpdf2 writes them with /WinAnsiEncoding)."""
_NO_DECOMPOSITION = str.maketrans(
    {"Đ": "D", "đ": "d", "Ŋ": "N", "ŋ": "n", "Ŧ": "T", "ŧ": "t", "Ł": "L", "ł": "l", "Ħ": "H", "ħ": "h"}
)


@dataclass(frozen=True)
class Issuer:
    name: str
    address: str
    account: str
    """11 digits, checked (MOD11)."""
    organization_number: str | None = None


@dataclass(frozen=True)
class InvoiceDocument:
    """Everything the page shows."""

    issuer: Issuer
    number: str
    kid: str
    recipient_name: str
    recipient_address: str | None
    lines: tuple[InvoiceLine, ...]
    total: Money
    issued_on: date
    due_on: date


def printable(text: str) -> str:
    """``text`` in what the standard font can write (see the module's docstring); control characters
    become spaces."""
    out: list[str] = []
    for char in text.translate(_NO_DECOMPOSITION):
        if unicodedata.category(char).startswith("C"):
            out.append(" ")
            continue
        try:
            char.encode(ENCODING)
            out.append(char)
            continue
        except UnicodeEncodeError:
            pass
        base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        try:
            base.encode(ENCODING)
            out.append(base or "?")
        except UnicodeEncodeError:
            out.append("?")
    return "".join(out)


def _lines_of(text: str | None) -> list[str]:
    """An address as printed lines: split on newlines, blank ones dropped."""
    if not text:
        return []
    return [printable(line.strip()) for line in text.splitlines() if line.strip()]


def _fit(pdf: FPDF, text: str, room: float, *, size: float) -> None:
    """Set the largest font size (down to 6 pt) at which ``text`` fits in ``room`` millimetres."""
    pdf.set_font_size(size)
    while size > 6 and pdf.get_string_width(text) > room:
        size -= 0.5
        pdf.set_font_size(size)


def render(invoice: InvoiceDocument) -> bytes:
    """The invoice as PDF bytes."""
    # fpdf2 (and through it Pillow) is imported when the first invoice is made, not when the platform starts.
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    pdf = FPDF(format="A4", unit="mm")
    pdf.set_creation_date(datetime.combine(invoice.issued_on, time(0), tzinfo=UTC))
    pdf.set_producer(PRODUCER)
    pdf.set_creator(PRODUCER)
    pdf.set_title(printable(f"Faktura {invoice.number}"))
    pdf.set_lang("nb")
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_margins(20, 20, 20)
    pdf.add_page()
    width = pdf.epw

    # The issuer, top right.
    pdf.set_font(FONT, "B", 11)
    pdf.cell(width, 6, printable(invoice.issuer.name), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 10)
    issuer_lines = _lines_of(invoice.issuer.address.replace(", ", "\n"))
    if invoice.issuer.organization_number:
        issuer_lines.append(f"Org.nr. {format_organization_number(invoice.issuer.organization_number)}")
    for line in issuer_lines:
        pdf.cell(width, 5, line, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pdf.ln(8)
    pdf.set_font(FONT, "B", 22)
    pdf.cell(width, 10, "Faktura", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)

    # The recipient, left; the invoice's facts, right.
    top = pdf.get_y()
    pdf.set_font(FONT, "", 11)
    for line in [printable(invoice.recipient_name), *_lines_of(invoice.recipient_address)]:
        # Wrapped: a long name or address line stays in its half of the page.
        pdf.multi_cell(width / 2 - 5, 6, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    bottom = pdf.get_y()
    facts = (
        ("Fakturanummer", printable(invoice.number)),
        ("Fakturadato", format_date(invoice.issued_on)),
        ("Forfallsdato", format_date(invoice.due_on)),
        ("KID", invoice.kid),
        ("Kontonummer", format_account(invoice.issuer.account)),
    )
    pdf.set_y(top)
    for label, value in facts:
        pdf.set_x(pdf.l_margin + width / 2)
        pdf.set_font(FONT, "", 10)
        pdf.cell(width / 4, 6, label)
        pdf.set_font(FONT, "B", 10)
        pdf.cell(width / 4, 6, value, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_y(max(bottom, pdf.get_y()) + 10)

    # The lines and the total.
    pdf.set_font(FONT, "B", 10)
    pdf.cell(width * 0.75, 7, "Beskrivelse", border="B")
    pdf.cell(width * 0.25, 7, "Beløp", border="B", align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 10)
    for item in invoice.lines:
        description = printable(item.description)
        _fit(pdf, description, width * 0.75 - 4, size=10)
        pdf.cell(width * 0.75, 7, description)
        pdf.set_font_size(10)
        pdf.cell(width * 0.25, 7, format_nok(item.amount), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "B", 11)
    pdf.cell(width * 0.75, 8, "Å betale", border="T")
    pdf.cell(width * 0.25, 8, format_nok(invoice.total), border="T", align="R")
    pdf.ln(16)

    pdf.set_font(FONT, "", 10)
    pdf.multi_cell(
        width,
        5,
        f"Betal {format_nok(invoice.total)} til kontonummer {format_account(invoice.issuer.account)} "
        f"innen {format_date(invoice.due_on)}. Husk å oppgi KID {invoice.kid} ved betaling. "
        "Har du allerede betalt, kan du se bort fra denne fakturaen.",
    )
    return bytes(pdf.output())
