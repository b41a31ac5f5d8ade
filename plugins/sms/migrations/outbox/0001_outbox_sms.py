"""outbox: the simulated SMS provider's messages

Revision ID: outbox_0001
Revises:
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "outbox_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("outbox",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_sms",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("outbox", sa.String(64), nullable=False),
        sa.Column("provider_id", sa.String(64), nullable=False, unique=True),
        sa.Column("reference", sa.String(300), nullable=False),
        sa.Column("to_number", sa.String(32), nullable=False),
        sa.Column("sender", sa.String(32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("encoding", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("outbox", "reference", name="uq_outbox_sms_reference"),
    )


def downgrade() -> None:
    op.drop_table("outbox_sms")
