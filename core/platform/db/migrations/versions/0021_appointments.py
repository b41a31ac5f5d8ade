"""appointments: clinics, appointment types, appointments with their forms, payments, invoices and timed
texts, the anonymous surveys; notices about appointments; the patient-survey consent

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_PURPOSES = (
    "communication_storage",
    "ai_journal",
    "image_storage",
    "kjernejournal_lookup",
    "insurer_disclosure",
)
NEW_PURPOSES = (*OLD_PURPOSES, "patient_survey")


def _purpose(values: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*values, name="consentpurpose", native_enum=False, create_constraint=True, length=32)


def upgrade() -> None:
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.alter_column(
            "purpose", existing_type=_purpose(OLD_PURPOSES), type_=_purpose(NEW_PURPOSES), nullable=False
        )
    op.create_table(
        "appointment_type",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "mode",
            sa.Enum(
                "in_person",
                "video",
                name="appointmentmode",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("price_amount", sa.Integer(), nullable=False),
        sa.Column("price_currency", sa.String(length=3), nullable=False),
        sa.Column("forms", sa.JSON(), nullable=False),
        sa.Column("directly_bookable", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_type")),
        sa.UniqueConstraint("code", name=op.f("uq_appointment_type_code")),
    )
    op.create_table(
        "clinic",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinic")),
    )
    op.create_table(
        "survey_invitation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subject_type", sa.String(length=20), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_invitation")),
        sa.UniqueConstraint("subject_type", "subject_id", name=op.f("uq_survey_invitation_subject_type")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_survey_invitation_token_hash")),
    )
    op.create_table(
        "survey_answer",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("survey", sa.String(length=20), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("clinic_id", sa.Uuid(), nullable=True),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"], name=op.f("fk_survey_answer_clinic_id_clinic")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_answer")),
    )
    op.create_table(
        "appointment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("booked_by_id", sa.Uuid(), nullable=False),
        sa.Column("booked_by_role", sa.String(length=20), nullable=False),
        sa.Column("clinic_id", sa.Uuid(), nullable=False),
        sa.Column("type_id", sa.Uuid(), nullable=False),
        sa.Column(
            "mode",
            sa.Enum(
                "in_person",
                "video",
                name="appointmentmode",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("clinician_id", sa.Uuid(), nullable=True),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "requested",
                "booked",
                "reminded",
                "arrived",
                "completed",
                "no_show",
                "cancelled",
                "paid",
                "invoiced",
                name="appointmentstatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider", sa.String(length=50), nullable=True),
        sa.Column("slot_id", sa.String(length=200), nullable=True),
        sa.Column("booking_id", sa.String(length=200), nullable=True),
        sa.Column("plan", sa.Integer(), nullable=False),
        sa.Column("data_key_id", sa.String(length=50), nullable=True),
        sa.Column("data_key", sa.LargeBinary(), nullable=True),
        sa.Column("message_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("insurer_pays", sa.Boolean(), nullable=False),
        sa.Column("price_amount", sa.Integer(), nullable=False),
        sa.Column("price_currency", sa.String(length=3), nullable=False),
        sa.Column("video_room", sa.String(length=200), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("no_show_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("invoiced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retention_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erasure_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("idempotency_key", sa.String(length=100), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["booked_by_id"], ["person.id"], name=op.f("fk_appointment_booked_by_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["consultation_case.id"], name=op.f("fk_appointment_case_id_consultation_case")
        ),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"], name=op.f("fk_appointment_clinic_id_clinic")),
        sa.ForeignKeyConstraint(
            ["clinician_id"], ["person.id"], name=op.f("fk_appointment_clinician_id_person")
        ),
        sa.ForeignKeyConstraint(["patient_id"], ["person.id"], name=op.f("fk_appointment_patient_id_person")),
        sa.ForeignKeyConstraint(
            ["type_id"], ["appointment_type.id"], name=op.f("fk_appointment_type_id_appointment_type")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment")),
        sa.UniqueConstraint("booked_by_id", "idempotency_key", name=op.f("uq_appointment_booked_by_id")),
        sa.UniqueConstraint("number", name=op.f("uq_appointment_number")),
    )
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_appointment_booked_by_id"), ["booked_by_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_appointment_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_appointment_clinic_id"), ["clinic_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_appointment_clinician_id"), ["clinician_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_appointment_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_appointment_retention_until"), ["retention_until"], unique=False)
        batch_op.create_index("ix_appointment_status_starts", ["status", "starts_at"], unique=False)
        batch_op.create_index(
            "ux_appointment_live_slot",
            ["provider", "slot_id"],
            unique=True,
            sqlite_where=sa.text("slot_id IS NOT NULL AND cancelled_at IS NULL"),
            postgresql_where=sa.text("slot_id IS NOT NULL AND cancelled_at IS NULL"),
        )

    op.create_table(
        "appointment_form",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("appointment_id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "health_declaration",
                "insurer_consent",
                name="formkind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("answers_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("submitted_by_id", sa.Uuid(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointment.id"],
            name=op.f("fk_appointment_form_appointment_id_appointment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by_id"], ["person.id"], name=op.f("fk_appointment_form_submitted_by_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_form")),
        sa.UniqueConstraint("appointment_id", "kind", name=op.f("uq_appointment_form_appointment_id")),
    )
    op.create_table(
        "appointment_payment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("appointment_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("provider_payment_id", sa.String(length=255), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("action_url", sa.String(length=2000), nullable=True),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointment.id"],
            name=op.f("fk_appointment_payment_appointment_id_appointment"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_payment")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_appointment_payment_idempotency_key")),
        sa.UniqueConstraint("provider", "provider_payment_id", name=op.f("uq_appointment_payment_provider")),
    )
    with op.batch_alter_table("appointment_payment", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_appointment_payment_appointment_id"), ["appointment_id"], unique=False
        )

    op.create_table(
        "appointment_text",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("appointment_id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "reminder",
                "arrival",
                "payment_link",
                "invoice",
                "survey",
                name="timedtext",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("plan", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointment.id"],
            name=op.f("fk_appointment_text_appointment_id_appointment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_text")),
        sa.UniqueConstraint(
            "appointment_id", "kind", "plan", name=op.f("uq_appointment_text_appointment_id")
        ),
    )
    op.create_table(
        "invoice",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("appointment_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=30), nullable=False),
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("provider_id", sa.String(length=255), nullable=False),
        sa.Column("kid", sa.String(length=30), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("fee_amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("document_key", sa.String(length=200), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"], ["appointment.id"], name=op.f("fk_invoice_appointment_id_appointment")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice")),
        sa.UniqueConstraint("appointment_id", name=op.f("uq_invoice_appointment_id")),
        sa.UniqueConstraint("number", name=op.f("uq_invoice_number")),
    )
    op.create_table(
        "appointment_erasure",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("appointment_id", sa.Uuid(), nullable=False),
        sa.Column("rule", sa.String(length=30), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("deleted", sa.JSON(), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointment.id"],
            name=op.f("fk_appointment_erasure_appointment_id_appointment"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["retention_run.id"], name=op.f("fk_appointment_erasure_run_id_retention_run")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_erasure")),
    )
    with op.batch_alter_table("appointment_erasure", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_appointment_erasure_appointment_id"), ["appointment_id"], unique=False
        )
    op.create_table(
        "appointment_statistic",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("clinic_id", sa.Uuid(), nullable=False),
        sa.Column("appointment_type", sa.String(length=50), nullable=False),
        sa.Column(
            "mode",
            sa.Enum(
                "in_person",
                "video",
                name="appointmentmode",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("age_band", sa.String(length=10), nullable=False),
        sa.Column("for_child", sa.Boolean(), nullable=False),
        sa.Column("final_status", sa.String(length=30), nullable=False),
        sa.Column("paid", sa.Boolean(), nullable=False),
        sa.Column("invoiced", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinic.id"], name=op.f("fk_appointment_statistic_clinic_id_clinic")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_statistic")),
    )
    with op.batch_alter_table("appointment_statistic", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_appointment_statistic_month"), ["month"], unique=False)
    with op.batch_alter_table("retention_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("appointments", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.add_column(sa.Column("appointment_id", sa.Uuid(), nullable=True))
        batch_op.alter_column("case_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.create_index(batch_op.f("ix_notification_appointment_id"), ["appointment_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_notification_appointment_id_appointment"),
            "appointment",
            ["appointment_id"],
            ["id"],
        )


def downgrade() -> None:
    # Notices about appointments go with the appointments.
    op.execute(
        "DELETE FROM sms_attempt WHERE notification_id IN (SELECT id FROM notification WHERE case_id IS NULL)"
    )
    op.execute("DELETE FROM notification WHERE case_id IS NULL")
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_notification_appointment_id_appointment"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_notification_appointment_id"))
        batch_op.alter_column("case_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.drop_column("appointment_id")

    with op.batch_alter_table("retention_run", schema=None) as batch_op:
        batch_op.drop_column("appointments")
    with op.batch_alter_table("appointment_statistic", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appointment_statistic_month"))
    op.drop_table("appointment_statistic")
    with op.batch_alter_table("appointment_erasure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appointment_erasure_appointment_id"))
    op.drop_table("appointment_erasure")
    op.drop_table("invoice")
    op.drop_table("appointment_text")
    with op.batch_alter_table("appointment_payment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appointment_payment_appointment_id"))

    op.drop_table("appointment_payment")
    op.drop_table("appointment_form")
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.drop_index(
            "ux_appointment_live_slot",
            sqlite_where=sa.text("slot_id IS NOT NULL AND cancelled_at IS NULL"),
            postgresql_where=sa.text("slot_id IS NOT NULL AND cancelled_at IS NULL"),
        )
        batch_op.drop_index("ix_appointment_status_starts")
        batch_op.drop_index(batch_op.f("ix_appointment_retention_until"))
        batch_op.drop_index(batch_op.f("ix_appointment_patient_id"))
        batch_op.drop_index(batch_op.f("ix_appointment_clinician_id"))
        batch_op.drop_index(batch_op.f("ix_appointment_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_appointment_case_id"))
        batch_op.drop_index(batch_op.f("ix_appointment_booked_by_id"))

    op.drop_table("appointment")
    op.drop_table("survey_answer")
    op.drop_table("survey_invitation")
    op.drop_table("clinic")
    op.drop_table("appointment_type")
    op.execute("DELETE FROM consent WHERE purpose = 'patient_survey'")
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.alter_column(
            "purpose", existing_type=_purpose(NEW_PURPOSES), type_=_purpose(OLD_PURPOSES), nullable=False
        )
