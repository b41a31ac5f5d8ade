"""the access log is chained by a sequencer: rows are appended unchained, without a lock

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=True)
    # The rows written so far were chained in id order, under a lock: their places are 1, 2, 3 … in it.
    op.execute(
        "UPDATE audit_event SET seq = ordered.place"
        " FROM (SELECT id, row_number() OVER (ORDER BY id) AS place FROM audit_event) AS ordered"
        " WHERE audit_event.id = ordered.id"
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_audit_event_seq"), ["seq"])
        batch_op.create_index(
            "ix_audit_event_unchained",
            ["id"],
            unique=False,
            postgresql_where=sa.text("seq IS NULL"),
            sqlite_where=sa.text("seq IS NULL"),
        )


def downgrade() -> None:
    # Rows not chained yet cannot go back to a table where every row has its hash: chain them first
    # (``legetime audit chain``) or this fails on the NOT NULL.
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_unchained")
        batch_op.drop_constraint(batch_op.f("uq_audit_event_seq"), type_="unique")
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column("seq")
