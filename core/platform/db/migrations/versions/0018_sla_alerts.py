"""sla alerts: a case alerted once per threshold before its deadline, and the operators' on-duty number

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "case_sla_alert",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("threshold_minutes", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["consultation_case.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("case_id", "threshold_minutes"),
    )
    op.create_table(
        "on_duty_phone",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("on_duty_phone")
    op.drop_table("case_sla_alert")
