"""builtin scheduling: clinics' weekly opening hours and the bookings of their slots

Revision ID: builtin_schedule_0001
Revises:
Create Date: 2027-01-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "builtin_schedule_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("builtin_schedule",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "builtin_schedule_hours",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("clinic_id", sa.Uuid(), nullable=False),
        sa.Column("clinician_id", sa.Uuid(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("opens", sa.Time(), nullable=False),
        sa.Column("closes", sa.Time(), nullable=False),
        sa.Column("slot_minutes", sa.Integer(), nullable=False),
        sa.Column("appointment_types", sa.Text(), nullable=False),
        sa.CheckConstraint("weekday BETWEEN 1 AND 7", name="ck_builtin_schedule_hours_weekday"),
        sa.CheckConstraint("opens < closes", name="ck_builtin_schedule_hours_period"),
        sa.CheckConstraint("slot_minutes BETWEEN 5 AND 240", name="ck_builtin_schedule_hours_slot_minutes"),
    )
    op.create_index("ix_builtin_schedule_hours_clinic", "builtin_schedule_hours", ["clinic_id"])
    op.create_table(
        "builtin_schedule_booking",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("clinic_id", sa.Uuid(), nullable=False),
        sa.Column("clinician_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("appointment_type", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "uq_builtin_schedule_booking_live_slot",
        "builtin_schedule_booking",
        ["clinic_id", "clinician_id", "starts_at"],
        unique=True,
        postgresql_where=sa.text("released_at IS NULL"),
        sqlite_where=sa.text("released_at IS NULL"),
    )
    op.create_index(
        "uq_builtin_schedule_booking_live_reference",
        "builtin_schedule_booking",
        ["reference"],
        unique=True,
        postgresql_where=sa.text("released_at IS NULL"),
        sqlite_where=sa.text("released_at IS NULL"),
    )
    op.create_index(
        "ix_builtin_schedule_booking_clinic_starts",
        "builtin_schedule_booking",
        ["clinic_id", "starts_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_builtin_schedule_booking_clinic_starts", table_name="builtin_schedule_booking")
    op.drop_index("uq_builtin_schedule_booking_live_reference", table_name="builtin_schedule_booking")
    op.drop_index("uq_builtin_schedule_booking_live_slot", table_name="builtin_schedule_booking")
    op.drop_table("builtin_schedule_booking")
    op.drop_index("ix_builtin_schedule_hours_clinic", table_name="builtin_schedule_hours")
    op.drop_table("builtin_schedule_hours")
