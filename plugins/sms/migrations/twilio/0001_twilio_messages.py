"""twilio: which MessageSid each reference got (the reference map, leased before each call)

Revision ID: twilio_0001
Revises:
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "twilio_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("twilio",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "twilio_message",
        sa.Column("reference", sa.Text(), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sid", sa.String(64), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("encoding", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=True),
        sa.CheckConstraint("state IN ('sending', 'sent')", name="ck_twilio_message_state"),
        sa.UniqueConstraint("sid", name="uq_twilio_message_sid"),
    )


def downgrade() -> None:
    op.drop_table("twilio_message")
