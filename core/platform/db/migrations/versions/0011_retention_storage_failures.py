"""a purge run records the stored images it could not delete at once (a job retries them)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("retention_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("storage_failures", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("retention_run", schema=None) as batch_op:
        batch_op.drop_column("storage_failures")
