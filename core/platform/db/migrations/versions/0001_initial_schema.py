"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_job",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "relayed",
                "done",
                "failed",
                name="outboxstatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("relayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_job")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_outbox_job_dedupe_key")),
    )
    with op.batch_alter_table("outbox_job", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_job_pending", ["status", "available_at"], unique=False)

    op.create_table(
        "person",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("national_id", sa.String(length=11), nullable=False),
        sa.Column("given_name", sa.String(length=200), nullable=False),
        sa.Column("family_name", sa.String(length=200), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person")),
        sa.UniqueConstraint("national_id", name=op.f("uq_person_national_id")),
    )
    op.create_table(
        "audit_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_role", sa.String(length=30), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=True),
        sa.Column("object_type", sa.String(length=50), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=True),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["actor_id"], ["person.id"], name=op.f("fk_audit_event_actor_id_person")),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"], name=op.f("fk_audit_event_person_id_person")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_event_hash")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_person", ["person_id", "occurred_at"], unique=False)

    op.create_table(
        "consultation_case",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("requester_id", sa.Uuid(), nullable=False),
        sa.Column(
            "requester_role",
            sa.Enum(
                "self", "guardian", name="requesterrole", native_enum=False, create_constraint=True, length=32
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "submitted",
                "in_review",
                "awaiting_patient",
                "answered",
                "closed",
                "cancelled",
                name="casestatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "outcome",
            sa.Enum(
                "advice",
                "physical_examination",
                "prescription",
                name="caseoutcome",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("questionnaire_key", sa.String(length=100), nullable=True),
        sa.Column("questionnaire_version", sa.Integer(), nullable=True),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("price_amount", sa.Integer(), nullable=False),
        sa.Column("price_currency", sa.String(length=3), nullable=False),
        sa.Column("sla_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retention_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["person.id"], name=op.f("fk_consultation_case_requester_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["person.id"], name=op.f("fk_consultation_case_subject_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultation_case")),
        sa.UniqueConstraint("number", name=op.f("uq_consultation_case_number")),
    )
    with op.batch_alter_table("consultation_case", schema=None) as batch_op:
        batch_op.create_index("ix_case_status_sla", ["status", "sla_due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_consultation_case_requester_id"), ["requester_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_consultation_case_retention_until"), ["retention_until"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_consultation_case_subject_id"), ["subject_id"], unique=False)

    op.create_table(
        "staff_membership",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "clinician",
                "operator",
                name="staffrole",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("hpr_number", sa.String(length=20), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["person.id"],
            name=op.f("fk_staff_membership_person_id_person"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_membership")),
        sa.UniqueConstraint("person_id", "role", name=op.f("uq_staff_membership_person_id")),
    )
    op.create_table(
        "attachment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("uploaded_by_id", sa.Uuid(), nullable=False),
        sa.Column("storage_provider", sa.String(length=50), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=50), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["consultation_case.id"],
            name=op.f("fk_attachment_case_id_consultation_case"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_id"], ["person.id"], name=op.f("fk_attachment_uploaded_by_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachment")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_attachment_storage_key")),
    )
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachment_case_id"), ["case_id"], unique=False)

    op.create_table(
        "consent",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column(
            "purpose",
            sa.Enum(
                "communication_storage",
                "ai_journal",
                "image_storage",
                "kjernejournal_lookup",
                "insurer_disclosure",
                name="consentpurpose",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "action",
            sa.Enum(
                "granted",
                "withdrawn",
                name="consentaction",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("text_version", sa.String(length=50), nullable=False),
        sa.Column("given_by_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["consultation_case.id"], name=op.f("fk_consent_case_id_consultation_case")
        ),
        sa.ForeignKeyConstraint(["given_by_id"], ["person.id"], name=op.f("fk_consent_given_by_id_person")),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"], name=op.f("fk_consent_person_id_person")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent")),
    )
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consent_person_purpose", ["person_id", "purpose", "created_at"], unique=False
        )

    op.create_table(
        "journal_note",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "approved",
                name="journalnotestatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sections", sa.JSON(), nullable=False),
        sa.Column("drafter", sa.String(length=100), nullable=True),
        sa.Column("drafter_version", sa.String(length=50), nullable=True),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("prompt_version", sa.String(length=50), nullable=True),
        sa.Column("approved_by_id", sa.Uuid(), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["approved_by_id"], ["person.id"], name=op.f("fk_journal_note_approved_by_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["consultation_case.id"], name=op.f("fk_journal_note_case_id_consultation_case")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_note")),
    )
    with op.batch_alter_table("journal_note", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_journal_note_case_id"), ["case_id"], unique=False)

    op.create_table(
        "message",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column(
            "author_role",
            sa.Enum(
                "patient",
                "guardian",
                "clinician",
                name="participantrole",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "kind",
            sa.Enum(
                "message",
                "follow_up",
                "answer",
                name="messagekind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("withheld_from_guardian", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["author_id"], ["person.id"], name=op.f("fk_message_author_id_person")),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["consultation_case.id"],
            name=op.f("fk_message_case_id_consultation_case"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message")),
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index("ix_message_case_created", ["case_id", "created_at"], unique=False)

    op.create_table(
        "participant",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "patient",
                "guardian",
                "clinician",
                name="participantrole",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["consultation_case.id"],
            name=op.f("fk_participant_case_id_consultation_case"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"], name=op.f("fk_participant_person_id_person")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participant")),
        sa.UniqueConstraint("case_id", "person_id", "role", name=op.f("uq_participant_case_id")),
    )
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_participant_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_participant_person_id"), ["person_id"], unique=False)

    op.create_table(
        "payment_reservation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("provider_payment_id", sa.String(length=255), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("authorized_amount", sa.Integer(), nullable=False),
        sa.Column("captured_amount", sa.Integer(), nullable=False),
        sa.Column("released_amount", sa.Integer(), nullable=False),
        sa.Column("refunded_amount", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["consultation_case.id"],
            name=op.f("fk_payment_reservation_case_id_consultation_case"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_reservation")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_payment_reservation_idempotency_key")),
        sa.UniqueConstraint("provider", "provider_payment_id", name=op.f("uq_payment_reservation_provider")),
    )
    with op.batch_alter_table("payment_reservation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_reservation_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payment_reservation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_reservation_case_id"))

    op.drop_table("payment_reservation")
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_participant_person_id"))
        batch_op.drop_index(batch_op.f("ix_participant_case_id"))

    op.drop_table("participant")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_case_created")

    op.drop_table("message")
    with op.batch_alter_table("journal_note", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journal_note_case_id"))

    op.drop_table("journal_note")
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_person_purpose")

    op.drop_table("consent")
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachment_case_id"))

    op.drop_table("attachment")
    op.drop_table("staff_membership")
    with op.batch_alter_table("consultation_case", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consultation_case_subject_id"))
        batch_op.drop_index(batch_op.f("ix_consultation_case_retention_until"))
        batch_op.drop_index(batch_op.f("ix_consultation_case_requester_id"))
        batch_op.drop_index("ix_case_status_sla")

    op.drop_table("consultation_case")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_person")

    op.drop_table("audit_event")
    op.drop_table("person")
    with op.batch_alter_table("outbox_job", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_job_pending")

    op.drop_table("outbox_job")
