"""swedbank-pay: which payment order each reserve key made

Revision ID: swedbank_pay_0001
Revises:
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "swedbank_pay_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("swedbank_pay",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "swedbank_pay_reservation",
        sa.Column("idempotency_key", sa.String(200), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(200), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("swedbank_pay_reservation")
