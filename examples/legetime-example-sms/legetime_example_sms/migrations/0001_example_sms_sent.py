"""example_sms: which gateway message each reference made

Revision ID: example_sms_0001
Revises:
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "example_sms_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("example_sms",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "example_sms_sent",
        sa.Column("reference", sa.String(300), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("gateway_id", sa.String(100), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("encoding", sa.String(16), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("example_sms_sent")
