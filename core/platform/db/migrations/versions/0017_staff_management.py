"""staff management: the privacy-officer role, who gave a role, and roles ended rather than deleted

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ROLES = ("clinician", "operator")
NEW_ROLES = (*OLD_ROLES, "privacy_officer")


def _role(values: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*values, name="staffrole", native_enum=False, create_constraint=True, length=32)


def upgrade() -> None:
    with op.batch_alter_table("staff_membership", schema=None) as batch_op:
        batch_op.alter_column("role", existing_type=_role(OLD_ROLES), type_=_role(NEW_ROLES), nullable=False)
        batch_op.add_column(sa.Column("granted_by_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_staff_membership_granted_by_id_person"),
            "person",
            ["granted_by_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    op.execute("DELETE FROM staff_membership WHERE role = 'privacy_officer'")
    with op.batch_alter_table("staff_membership", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_staff_membership_granted_by_id_person"), type_="foreignkey")
        batch_op.drop_column("ended_at")
        batch_op.drop_column("granted_by_id")
        batch_op.alter_column("role", existing_type=_role(NEW_ROLES), type_=_role(OLD_ROLES), nullable=False)
