"""fake: the simulated PSP's payments and idempotency keys

Revision ID: fake_psp_0001
Revises:
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "fake_psp_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("fake_psp",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fake_psp_payment",
        sa.Column("payment_id", sa.String(64), primary_key=True),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("card", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("authorized", sa.Integer(), nullable=False),
        sa.Column("captured", sa.Integer(), nullable=False),
        sa.Column("released", sa.Integer(), nullable=False),
        sa.Column("refunded", sa.Integer(), nullable=False),
        sa.Column("declined", sa.Boolean(), nullable=False),
        sa.Column("pending", sa.Boolean(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("return_url", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "captured + released <= authorized AND refunded <= captured", name="ck_fake_psp_payment_amounts"
        ),
    )
    op.create_table(
        "fake_psp_idempotency_key",
        sa.Column("idempotency_key", sa.String(300), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("fake_psp_idempotency_key")
    op.drop_table("fake_psp_payment")
