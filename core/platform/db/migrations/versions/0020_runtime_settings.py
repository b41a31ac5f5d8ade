"""runtime settings: what operators change through GraphQL, sealed, per scope (the platform, a provider);
and the sender name each SMS attempt went out with (operators may change it)

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "runtime_settings",
        sa.Column("scope", sa.String(length=120), nullable=False),
        sa.Column("key_id", sa.String(length=50), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("values_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("changed_by_id", sa.Uuid(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["changed_by_id"], ["person.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("scope"),
    )
    with op.batch_alter_table("runtime_settings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runtime_settings_changed_at"), ["changed_at"], unique=False)
    with op.batch_alter_table("sms_attempt", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sender", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sms_attempt", schema=None) as batch_op:
        batch_op.drop_column("sender")
    op.drop_table("runtime_settings")
