"""SMS delivery reports and failover: a notice's attempts per provider, its last report and failure

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("failure_reason", sa.String(length=200), nullable=True))
    op.create_table(
        "sms_attempt",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("notification_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("reference", sa.String(length=150), nullable=False),
        sa.Column("provider_id", sa.String(length=100), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=True),
        sa.Column("encoding", sa.String(length=10), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["notification_id"], ["notification.id"], name=op.f("fk_sms_attempt_notification_id_notification")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_attempt")),
        sa.UniqueConstraint("provider", "provider_id", name=op.f("uq_sms_attempt_provider")),
    )
    op.create_index(op.f("ix_sms_attempt_notification_id"), "sms_attempt", ["notification_id"], unique=False)
    # The texts sent so far were sent by one provider, once: each is its notice's first attempt.
    op.execute(
        "INSERT INTO sms_attempt (id, notification_id, provider, reference, provider_id, segments, status,"
        " created_at) SELECT id, id, provider, reference, provider_id, segments, 'sent', COALESCE(sent_at,"
        " created_at) FROM notification WHERE provider IS NOT NULL AND provider_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sms_attempt_notification_id"), table_name="sms_attempt")
    op.drop_table("sms_attempt")
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_column("failure_reason")
        batch_op.drop_column("status_at")
