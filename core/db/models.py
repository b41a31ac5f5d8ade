"""The core's data: persons, cases and who takes part, consents, messages, attachments, payments,
journal notes, the access log and the job outbox. Columns as in DESIGN.md."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from core.db.base import Base, enum_column, new_id, utcnow

# --- enums -----------------------------------------------------------------------------------------


class CaseStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    AWAITING_PATIENT = "awaiting_patient"
    ANSWERED = "answered"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class RequesterRole(StrEnum):
    SELF = "self"
    GUARDIAN = "guardian"


class ParticipantRole(StrEnum):
    PATIENT = "patient"
    GUARDIAN = "guardian"
    CLINICIAN = "clinician"


class StaffRole(StrEnum):
    CLINICIAN = "clinician"
    OPERATOR = "operator"


class ConsentPurpose(StrEnum):
    COMMUNICATION_STORAGE = "communication_storage"
    AI_JOURNAL = "ai_journal"
    IMAGE_STORAGE = "image_storage"
    KJERNEJOURNAL_LOOKUP = "kjernejournal_lookup"
    INSURER_DISCLOSURE = "insurer_disclosure"


class ConsentAction(StrEnum):
    GRANTED = "granted"
    WITHDRAWN = "withdrawn"


class CaseOutcome(StrEnum):
    ADVICE = "advice"
    PHYSICAL_EXAMINATION = "physical_examination"
    PRESCRIPTION = "prescription"


class MessageKind(StrEnum):
    MESSAGE = "message"
    FOLLOW_UP = "follow_up"
    ANSWER = "answer"


class JournalNoteStatus(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"


class OutboxStatus(StrEnum):
    PENDING = "pending"  # committed, not yet handed to the broker
    RELAYED = "relayed"  # handed to the broker
    DONE = "done"
    FAILED = "failed"  # gave up after the maximum attempts


# --- people ----------------------------------------------------------------------------------------


class Person(Base):
    __tablename__ = "person"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    national_id: Mapped[str] = mapped_column(String(11), unique=True)
    given_name: Mapped[str] = mapped_column(String(200))
    family_name: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[date] = mapped_column(Date)
    phone: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    staff_roles: Mapped[list[StaffMembership]] = relationship(back_populates="person", lazy="raise")


class StaffMembership(Base):
    """A person who works here, in a role (clinician, operator)."""

    __tablename__ = "staff_membership"
    __table_args__ = (UniqueConstraint("person_id", "role"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    role: Mapped[StaffRole] = mapped_column(enum_column(StaffRole))
    hpr_number: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    person: Mapped[Person] = relationship(back_populates="staff_roles", lazy="raise")


# --- cases -----------------------------------------------------------------------------------------


class Case(Base):
    __tablename__ = "consultation_case"
    __table_args__ = (Index("ix_case_status_sla", "status", "sla_due_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    subject_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id"), index=True)
    requester_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id"), index=True)
    requester_role: Mapped[RequesterRole] = mapped_column(enum_column(RequesterRole))
    status: Mapped[CaseStatus] = mapped_column(enum_column(CaseStatus), default=CaseStatus.DRAFT)
    outcome: Mapped[CaseOutcome | None] = mapped_column(enum_column(CaseOutcome))
    questionnaire_key: Mapped[str | None] = mapped_column(String(100))
    questionnaire_version: Mapped[int | None] = mapped_column(Integer)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    price_amount: Mapped[int] = mapped_column(Integer)
    price_currency: Mapped[str] = mapped_column(String(3))
    sla_due_at: Mapped[datetime | None]
    submitted_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    retention_until: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    assigned_clinician_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("person.id"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - optimistic locking of transitions


class Participant(Base):
    """A person's role on a case; roles drive access."""

    __tablename__ = "participant"
    __table_args__ = (UniqueConstraint("case_id", "person_id", "role"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("consultation_case.id", ondelete="CASCADE"), index=True
    )
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id"), index=True)
    role: Mapped[ParticipantRole] = mapped_column(enum_column(ParticipantRole))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Consent(Base):
    """One entry of a person's consent history. Append-only: never updated or deleted."""

    __tablename__ = "consent"
    __table_args__ = (Index("ix_consent_person_purpose", "person_id", "purpose", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id"))
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("consultation_case.id"))
    purpose: Mapped[ConsentPurpose] = mapped_column(enum_column(ConsentPurpose))
    action: Mapped[ConsentAction] = mapped_column(enum_column(ConsentAction))
    text_version: Mapped[str] = mapped_column(String(50))
    given_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    __tablename__ = "message"
    __table_args__ = (
        Index("ix_message_case_created", "case_id", "created_at"),
        UniqueConstraint("case_id", "idempotency_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultation_case.id", ondelete="CASCADE"))
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id"))
    author_role: Mapped[ParticipantRole] = mapped_column(enum_column(ParticipantRole))
    kind: Mapped[MessageKind] = mapped_column(enum_column(MessageKind), default=MessageKind.MESSAGE)
    body: Mapped[str] = mapped_column(Text)
    withheld_from_guardian: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Attachment(Base):
    __tablename__ = "attachment"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("consultation_case.id", ondelete="CASCADE"), index=True
    )
    uploaded_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id"))
    storage_provider: Mapped[str] = mapped_column(String(50))
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    content_type: Mapped[str] = mapped_column(String(50))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PaymentReservation(Base):
    """The fee reserved for a case, as the provider last reported it (amounts in minor units)."""

    __tablename__ = "payment_reservation"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultation_case.id"), index=True)
    provider: Mapped[str] = mapped_column(String(50))
    provider_payment_id: Mapped[str] = mapped_column(String(255))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    authorized_amount: Mapped[int] = mapped_column(Integer, default=0)
    captured_amount: Mapped[int] = mapped_column(Integer, default=0)
    released_amount: Mapped[int] = mapped_column(Integer, default=0)
    refunded_amount: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(30))
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("provider", "provider_payment_id"),)


class JournalNote(Base):
    """A journal note: drafted (by a drafter or a clinician), edited, then approved and immutable."""

    __tablename__ = "journal_note"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultation_case.id"), index=True)
    status: Mapped[JournalNoteStatus] = mapped_column(
        enum_column(JournalNoteStatus), default=JournalNoteStatus.DRAFT
    )
    text: Mapped[str] = mapped_column(Text)
    sections: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    drafter: Mapped[str | None] = mapped_column(String(100))
    drafter_version: Mapped[str | None] = mapped_column(String(50))
    model: Mapped[str | None] = mapped_column(String(100))
    prompt_version: Mapped[str | None] = mapped_column(String(50))
    approved_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("person.id"))
    approved_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEvent(Base):
    """The access log (Normen): who did what to whose health data, when and why. Append-only and
    hash-chained: ``hash`` covers the row and the previous row's hash."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_person", "person_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("person.id"))
    actor_role: Mapped[str] = mapped_column(String(30))
    person_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("person.id"))
    object_type: Mapped[str] = mapped_column(String(50))
    object_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(50))
    reason: Mapped[str | None] = mapped_column(String(255))
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class OutboxJob(Base):
    """A job written in the same transaction as the change that causes it; a relay hands it to dramatiq."""

    __tablename__ = "outbox_job"
    __table_args__ = (Index("ix_outbox_job_pending", "status", "available_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    status: Mapped[OutboxStatus] = mapped_column(enum_column(OutboxStatus), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    relayed_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class LoginTransaction(Base):
    """A login in progress: the identity provider's state, kept by the core (providers are stateless).
    The client holds an opaque handle; only its hash is stored."""

    __tablename__ = "login_transaction"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    handle_hash: Mapped[str] = mapped_column(String(64), unique=True)
    provider: Mapped[str] = mapped_column(String(50))
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    polls: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class AuthSession(Base):
    """A logged-in session. The bearer token is opaque; only its keyed hash is stored."""

    __tablename__ = "auth_session"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id"), index=True)
    provider: Mapped[str] = mapped_column(String(50))
    assurance_level: Mapped[str] = mapped_column(String(30))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Notification(Base):
    """An SMS sent (or to be sent) about a case event. Operators see these; the text holds no health
    content by rule, and the recipient is stored so a failed send can be explained."""

    __tablename__ = "notification"
    __table_args__ = (UniqueConstraint("reference"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultation_case.id"), index=True)
    event: Mapped[str] = mapped_column(String(30))
    reference: Mapped[str] = mapped_column(String(100))
    to: Mapped[str | None] = mapped_column(String(20))
    provider: Mapped[str | None] = mapped_column(String(50))
    provider_id: Mapped[str | None] = mapped_column(String(100))
    segments: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


APPEND_ONLY = (Consent, AuditEvent)


@event.listens_for(Session, "before_flush")
def _refuse_changes_to_history(session: Session, flush_context: Any, instances: Any) -> None:
    """Consent history and the access log are append-only: the ORM refuses updates and deletes."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, APPEND_ONLY) and (obj in session.deleted or session.is_modified(obj)):
            raise PermissionError(f"{type(obj).__name__} is append-only")
