"""link-mobility: which LINK message each reference made (the reference map, claimed before each call)

Revision ID: link_mobility_0001
Revises:
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "link_mobility_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("link_mobility",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "link_mobility_message",
        sa.Column("reference", sa.Text(), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("ref_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider_id", sa.Text(), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("encoding", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.UniqueConstraint("ref_id", name="uq_link_mobility_message_ref_id"),
    )


def downgrade() -> None:
    op.drop_table("link_mobility_message")
