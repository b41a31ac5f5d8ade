"""a person's country (the issuer of her national ID): Norwegian until Swedish patients were served

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every person so far has a Norwegian ID: the core refused every other country until this revision.
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.add_column(sa.Column("country", sa.String(length=2), server_default="NO", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.drop_column("country")
