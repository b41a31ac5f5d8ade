"""indexes for the privacy officer's review of the access log: by period and by staff member

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_audit_event_occurred": ["occurred_at", "id"],
    "ix_audit_event_actor": ["actor_id", "occurred_at"],
}


def upgrade() -> None:
    # Every read of the service appends to audit_event: on PostgreSQL the indexes are built CONCURRENTLY
    # (outside the migration's transaction), so that a large log does not hold back every request while
    # they are built. A build that fails leaves an invalid index: drop it and run the migration again.
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            for name, columns in INDEXES.items():
                op.create_index(
                    name, "audit_event", columns, postgresql_concurrently=True, if_not_exists=True
                )
        return
    for name, columns in INDEXES.items():
        op.create_index(name, "audit_event", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="audit_event")
