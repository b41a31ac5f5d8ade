"""idempotency keys: starting a case and attaching an image keep their caller's key; a message's key is
its author's (unique per case, author and key, no longer per case and key)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consultation_case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_consultation_case_requester_id"), ["requester_id", "idempotency_key"]
        )

    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_message_case_id"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_message_case_id"), ["case_id", "author_id", "idempotency_key"]
        )

    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_attachment_case_id"), ["case_id", "uploaded_by_id", "idempotency_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_attachment_case_id"), type_="unique")
        batch_op.drop_column("request_hash")
        batch_op.drop_column("idempotency_key")

    # Two authors may have used the same key on one case: the older constraint allows one of them, so the
    # later message's key goes (the message stays; only a retry of it would no longer be recognised).
    op.execute(
        "UPDATE message SET idempotency_key = NULL WHERE idempotency_key IS NOT NULL AND EXISTS ("
        "SELECT 1 FROM message AS earlier WHERE earlier.case_id = message.case_id "
        "AND earlier.idempotency_key = message.idempotency_key "
        "AND (earlier.created_at < message.created_at "
        "OR (earlier.created_at = message.created_at AND earlier.id < message.id)))"
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_message_case_id"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_message_case_id"), ["case_id", "idempotency_key"])

    with op.batch_alter_table("consultation_case", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_consultation_case_requester_id"), type_="unique")
        batch_op.drop_column("request_hash")
        batch_op.drop_column("idempotency_key")
