"""indexes for the purge of ended logins and sessions (expired or logged out)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("login_transaction", schema=None) as batch_op:
        batch_op.create_index("ix_login_transaction_expires_at", ["expires_at"], unique=False)
    with op.batch_alter_table("auth_session", schema=None) as batch_op:
        batch_op.create_index("ix_auth_session_expires_at", ["expires_at"], unique=False)
        batch_op.create_index("ix_auth_session_revoked_at", ["revoked_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("auth_session", schema=None) as batch_op:
        batch_op.drop_index("ix_auth_session_revoked_at")
        batch_op.drop_index("ix_auth_session_expires_at")
    with op.batch_alter_table("login_transaction", schema=None) as batch_op:
        batch_op.drop_index("ix_login_transaction_expires_at")
