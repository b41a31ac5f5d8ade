"""pdf: the invoices the default invoicing provider issued, their documents sealed

Revision ID: pdf_invoices_0001
Revises:
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "pdf_invoices_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("pdf_invoices",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pdf_invoices_invoice",
        sa.Column("invoice_id", sa.String(64), primary_key=True),
        sa.Column("reference", sa.String(200), nullable=False, unique=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("number", sa.String(64), nullable=False, unique=True),
        sa.Column("kid", sa.String(25), nullable=False, unique=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True)),
        sa.Column("cancelled_at", sa.DateTime(timezone=True)),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('issued', 'settled', 'cancelled')", name="ck_pdf_invoices_invoice_status"
        ),
        sa.CheckConstraint("total >= 0 AND due_on >= issued_on", name="ck_pdf_invoices_invoice_amounts"),
    )


def downgrade() -> None:
    op.drop_table("pdf_invoices_invoice")
