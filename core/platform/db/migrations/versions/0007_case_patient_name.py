"""a child's name as the guardian gave it, kept with her case

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Cases opened before keep None: their guardians are shown no name (rights.patient_seen_by).
    with op.batch_alter_table("consultation_case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("patient_given_name", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consultation_case", schema=None) as batch_op:
        batch_op.drop_column("patient_given_name")
