"""payments: the approval link of a pending payment; an index for reconciliation

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payment_reservation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("action_url", sa.String(length=2000), nullable=True))
        batch_op.create_index("ix_payment_reservation_status_updated", ["status", "updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payment_reservation", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_reservation_status_updated")
        batch_op.drop_column("action_url")
