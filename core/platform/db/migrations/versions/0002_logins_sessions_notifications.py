"""logins sessions notifications

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_transaction",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("handle_hash", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_transaction")),
        sa.UniqueConstraint("handle_hash", name=op.f("uq_login_transaction_handle_hash")),
    )
    op.create_table(
        "auth_session",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("assurance_level", sa.String(length=30), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"], name=op.f("fk_auth_session_person_id_person")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_auth_session_token_hash")),
    )
    with op.batch_alter_table("auth_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_session_person_id"), ["person_id"], unique=False)

    op.create_table(
        "notification",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("event", sa.String(length=30), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column("to", sa.String(length=20), nullable=True),
        sa.Column("provider", sa.String(length=50), nullable=True),
        sa.Column("provider_id", sa.String(length=100), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["consultation_case.id"], name=op.f("fk_notification_case_id_consultation_case")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification")),
        sa.UniqueConstraint("reference", name=op.f("uq_notification_reference")),
    )
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notification_case_id"), ["case_id"], unique=False)

    with op.batch_alter_table("consultation_case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assigned_clinician_id", sa.Uuid(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_consultation_case_assigned_clinician_id"), ["assigned_clinician_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_consultation_case_assigned_clinician_id_person"),
            "person",
            ["assigned_clinician_id"],
            ["id"],
        )

    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=100), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_message_case_id"), ["case_id", "idempotency_key"])


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_message_case_id"), type_="unique")
        batch_op.drop_column("idempotency_key")

    with op.batch_alter_table("consultation_case", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_consultation_case_assigned_clinician_id_person"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_consultation_case_assigned_clinician_id"))
        batch_op.drop_column("assigned_clinician_id")

    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_case_id"))

    op.drop_table("notification")
    with op.batch_alter_table("auth_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_session_person_id"))

    op.drop_table("auth_session")
    op.drop_table("login_transaction")
