"""The core's data: persons, cases and who takes part, consents, messages, attachments, payments,
journal notes, the access log and the job outbox (docs/architecture.md, "Data")."""

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
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from legetime.core.platform.db.base import Base, enum_column, new_id, utcnow

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
    PRIVACY_OFFICER = "privacy_officer"
    """Reviews the access log (Normen): search, unusual patterns, export."""


class IntegratorScope(StrEnum):
    """What an integrator account may read (docs/integrators.md): each a narrow view, nothing else."""

    READ_OPERATIONS = "read_operations"
    """The operation's figures (counts, answer times): no person's data."""
    READ_CASE_STATUS = "read_case_status"
    """A case's status and times, by its id (from an event): no names, answers or messages."""
    READ_CLOSED_JOURNAL_NOTES = "read_closed_journal_notes"
    """The approved journal notes of closed cases (a journal system's import), each read logged."""


class ConsentPurpose(StrEnum):
    COMMUNICATION_STORAGE = "communication_storage"
    AI_JOURNAL = "ai_journal"
    IMAGE_STORAGE = "image_storage"
    KJERNEJOURNAL_LOOKUP = "kjernejournal_lookup"
    INSURER_DISCLOSURE = "insurer_disclosure"
    PATIENT_SURVEY = "patient_survey"
    """Being asked about her experience after a visit or consultation (answers kept only as statistics)."""


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
    national_id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """Keyed hash of the national ID: how a person is found. The ID itself is only stored sealed."""
    national_id_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(50))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    """The person's data key (for her national ID), wrapped by master key ``key_id``."""
    given_name: Mapped[str] = mapped_column(String(200))
    family_name: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[date] = mapped_column(Date)
    country: Mapped[str] = mapped_column(String(2), default="NO", server_default="NO")
    """The issuer of her national ID (ISO 3166-1 alpha-2; ``core.identity.countries``), kept apart so that
    a request learns which rules apply without unsealing her ID."""
    phone: Mapped[str | None] = mapped_column(String(20))
    name_rectified_at: Mapped[datetime | None]
    """Set when she corrected her name herself: logins no longer overwrite it."""
    restricted_at: Mapped[datetime | None]
    """Restriction of processing (GDPR art. 18): only storage and legal duties while set."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    staff_roles: Mapped[list[StaffMembership]] = relationship(
        back_populates="person", lazy="raise", foreign_keys="StaffMembership.person_id"
    )


class StaffMembership(Base):
    """A person who works here, in a role (clinician, operator, privacy officer). A role taken away, or
    a person deactivated, keeps its row with ``ended_at`` (who held which role when stays known)."""

    __tablename__ = "staff_membership"
    __table_args__ = (UniqueConstraint("person_id", "role"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    role: Mapped[StaffRole] = mapped_column(enum_column(StaffRole))
    hpr_number: Mapped[str | None] = mapped_column(String(20))
    """A clinician's Norwegian health-personnel number (Helsepersonellregisteret)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    granted_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"))
    """Who gave the role (None: the command line, or the demo)."""
    ended_at: Mapped[datetime | None]

    person: Mapped[Person] = relationship(
        back_populates="staff_roles", lazy="raise", foreign_keys=[person_id]
    )


# --- cases -----------------------------------------------------------------------------------------


class Case(Base):
    __tablename__ = "consultation_case"
    __table_args__ = (
        Index("ix_case_status_sla", "status", "sla_due_at"),
        UniqueConstraint("requester_id", "idempotency_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    subject_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id"), index=True)
    requester_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id"), index=True)
    requester_role: Mapped[RequesterRole] = mapped_column(enum_column(RequesterRole))
    status: Mapped[CaseStatus] = mapped_column(enum_column(CaseStatus), default=CaseStatus.DRAFT)
    outcome: Mapped[CaseOutcome | None] = mapped_column(enum_column(CaseOutcome))
    questionnaire_key: Mapped[str | None] = mapped_column(String(100))
    questionnaire_version: Mapped[int | None] = mapped_column(Integer)
    answers_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    """Questionnaire answers, sealed with the communication key (JSON)."""
    communication_key_id: Mapped[str | None] = mapped_column(String(50))
    communication_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    """Wraps answers, messages and images; deleted when the communication is (crypto-shredding)."""
    record_key_id: Mapped[str] = mapped_column(String(50))
    record_key: Mapped[bytes] = mapped_column(LargeBinary)
    """Wraps journal notes, which are kept under health-record law."""
    purged_at: Mapped[datetime | None]
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
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    """The requester's key for opening it (``startCase``): a retry with the key gets this case."""
    request_hash: Mapped[str | None] = mapped_column(String(64))
    """Keyed hash of what opening it asked for: the same key with other input is refused."""
    patient_given_name: Mapped[str | None] = mapped_column(String(200))
    """A child's name as the guardian gave it when she opened this case; None for her own case. What
    everyone on the case but the child herself is shown: never a name someone else typed elsewhere."""
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
    __table_args__ = (
        Index("ix_consent_person_purpose", "person_id", "purpose", "created_at"),
        UniqueConstraint("given_by_id", "idempotency_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id"))
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("consultation_case.id"))
    purpose: Mapped[ConsentPurpose] = mapped_column(enum_column(ConsentPurpose))
    action: Mapped[ConsentAction] = mapped_column(enum_column(ConsentAction))
    text_version: Mapped[str] = mapped_column(String(50))
    given_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    """The giver's key for granting it (hers, for every case): a retry with the key gets this entry."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    __tablename__ = "message"
    __table_args__ = (
        Index("ix_message_case_created", "case_id", "created_at"),
        UniqueConstraint("case_id", "author_id", "idempotency_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultation_case.id", ondelete="CASCADE"))
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id"))
    author_role: Mapped[ParticipantRole] = mapped_column(enum_column(ParticipantRole))
    kind: Mapped[MessageKind] = mapped_column(enum_column(MessageKind), default=MessageKind.MESSAGE)
    body_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    withheld_from_guardian: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    """The author's key for sending it: a retry with the key gets this message."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Attachment(Base):
    __tablename__ = "attachment"
    __table_args__ = (UniqueConstraint("case_id", "uploaded_by_id", "idempotency_key"),)

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
    """Of the plain image: a re-upload of the same image is recognised."""
    sealed: Mapped[bool] = mapped_column(Boolean, default=True)
    """The stored object is sealed: with the image's own key, or (``key_id`` empty) the case's
    communication key."""
    key_id: Mapped[str | None] = mapped_column(String(50))
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The image's own data key, wrapped by master key ``key_id``; deleted with the row (crypto-shredding).
    Both empty for an image sealed before revision 0012, with the case's communication key."""
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    """The uploader's key for attaching it: a retry with the key gets this attachment."""
    request_hash: Mapped[str | None] = mapped_column(String(64))
    """Keyed hash of the uploaded file as sent: a retry is recognised without decoding it again."""
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
    action_url: Mapped[str | None] = mapped_column(String(2000))
    """Where the payer approves (3-D Secure, the Vipps app) while the payment is pending."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("provider", "provider_payment_id"),
        Index("ix_payment_reservation_status_updated", "status", "updated_at"),
    )


class JournalNote(Base):
    """A journal note: drafted (by a drafter or a clinician), edited, then approved and immutable."""

    __tablename__ = "journal_note"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultation_case.id"), index=True)
    status: Mapped[JournalNoteStatus] = mapped_column(
        enum_column(JournalNoteStatus), default=JournalNoteStatus.DRAFT
    )
    content_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    """Text and sections (JSON), sealed with the case's record key."""
    withheld_from_guardian: Mapped[bool] = mapped_column(Boolean, default=False)
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
    hash-chained: ``hash`` covers the row and the previous row's hash. A row is written unchained
    (``seq``, ``prev_hash`` and ``hash`` empty) and the sequencer chains it soon after, in commit order
    (``legetime.core.protection.audit``)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_person", "person_id", "occurred_at"),
        # A privacy officer's review (core/protection/access_review.py): a period, newest first, and
        # a staff member's entries (also the windows of the MANY_PATIENTS flag).
        Index("ix_audit_event_occurred", "occurred_at", "id"),
        Index("ix_audit_event_actor", "actor_id", "occurred_at"),
        # What the sequencer looks for: only the few rows not chained yet are in this index.
        Index(
            "ix_audit_event_unchained",
            "id",
            postgresql_where=text("seq IS NULL"),
            sqlite_where=text("seq IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("person.id"))
    actor_role: Mapped[str] = mapped_column(String(30))
    person_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("person.id"))
    object_type: Mapped[str] = mapped_column(String(50))
    object_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(50))
    reason: Mapped[str | None] = mapped_column(String(255))
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    """The row's place in the chain (1, 2, 3 … without gaps), given by the sequencer."""
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64), unique=True)


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
    __table_args__ = (Index("ix_login_transaction_expires_at", "expires_at"),)  # the purge finds ended ones

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    handle_hash: Mapped[str] = mapped_column(String(64), unique=True)
    provider: Mapped[str] = mapped_column(String(50))
    state_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    """The provider's state (JSON), sealed: it may hold a national ID or a provider secret."""
    polls: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class AuthSession(Base):
    """A logged-in session. The bearer token is opaque; only its keyed hash is stored."""

    __tablename__ = "auth_session"
    __table_args__ = (
        Index("ix_auth_session_expires_at", "expires_at"),  # the purge finds ended ones
        Index("ix_auth_session_revoked_at", "revoked_at"),
    )

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
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("consultation_case.id"), index=True)
    appointment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("appointment.id"), index=True)
    """A notice is about a case or about an appointment (its timed texts)."""
    event: Mapped[str] = mapped_column(String(30))
    reference: Mapped[str] = mapped_column(String(100))
    to: Mapped[str | None] = mapped_column(String(20))
    provider: Mapped[str | None] = mapped_column(String(50))
    provider_id: Mapped[str | None] = mapped_column(String(100))
    segments: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    """pending, sent, delivered, failed, or why it was not sent (``core.consultation.notifications``)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    status_at: Mapped[datetime | None]
    """When the network last reported on it (a delivery report)."""
    failure_reason: Mapped[str | None] = mapped_column(String(200))
    """The provider's code and reason of the last failure (never the text or the number)."""


class SmsAttempt(Base):
    """One hand-over of a notice to one SMS provider, and what that provider's network reported since.
    A notice has one attempt, or more after a failover; the notice mirrors the latest."""

    __tablename__ = "sms_attempt"
    __table_args__ = (UniqueConstraint("provider", "provider_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    notification_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("notification.id"), index=True)
    provider: Mapped[str] = mapped_column(String(50))
    reference: Mapped[str] = mapped_column(String(150))
    provider_id: Mapped[str | None] = mapped_column(String(100))
    """The provider's id of the message; None when the provider refused it."""
    segments: Mapped[int | None] = mapped_column(Integer)
    encoding: Mapped[str | None] = mapped_column(String(10))
    sender: Mapped[str | None] = mapped_column(String(20))
    """The sender name it went out with (``sms_sender`` then: operators may change it)."""
    status: Mapped[str] = mapped_column(String(20))
    """refused, queued, sent, delivered or failed."""
    error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_at: Mapped[datetime | None]


class CaseErasure(Base):
    """A tombstone: what was deleted from a case, when, and by which rule. Holds no content."""

    __tablename__ = "case_erasure"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultation_case.id"), index=True)
    rule: Mapped[str] = mapped_column(String(30))
    run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("retention_run.id"))
    deleted: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    """Counts by kind: answers, messages, images."""
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseStatistic(Base):
    """Anonymised statistics, recorded before a case's communication is deleted. No case or person id,
    no date finer than a day, ages only in bands."""

    __tablename__ = "case_statistic"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    day: Mapped[date] = mapped_column(Date, index=True)
    category: Mapped[str] = mapped_column(String(100))
    age_band: Mapped[str] = mapped_column(String(10))
    for_child: Mapped[bool] = mapped_column(Boolean)
    outcome: Mapped[str | None] = mapped_column(String(30))
    final_status: Mapped[str] = mapped_column(String(30))
    response_minutes: Mapped[int | None] = mapped_column(Integer)


class RetentionRun(Base):
    """One run of the purge (retention, consent withdrawal or erasure request): operators see them."""

    __tablename__ = "retention_run"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    rule: Mapped[str] = mapped_column(String(30))
    trigger: Mapped[str] = mapped_column(String(30))  # schedule | cli | graphql | patient
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("person.id"))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    cases: Mapped[int] = mapped_column(Integer, default=0)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    images: Mapped[int] = mapped_column(Integer, default=0)
    storage_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Stored images the run could not delete at once; a ``storage.delete`` job retries them."""
    appointments: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Appointments whose content it deleted (``core.appointments.retention``)."""
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


APPEND_ONLY = (Consent, AuditEvent)


@event.listens_for(Session, "before_flush")
def _refuse_changes_to_history(session: Session, flush_context: Any, instances: Any) -> None:
    """Consent history and the access log are append-only: the ORM refuses updates and deletes."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, APPEND_ONLY) and (obj in session.deleted or session.is_modified(obj)):
            raise PermissionError(f"{type(obj).__name__} is append-only")


class RuntimeSettings(Base):
    """Settings operators changed through GraphQL, one row per scope: ``platform`` (the editable platform
    settings) or ``provider:<capability>:<name>`` (a provider's settings model). The values are sealed with
    a data key of the row's own; only who changed them and when is in the clear. An environment variable
    still wins over a stored value (``core.platform.runtime_settings``)."""

    __tablename__ = "runtime_settings"

    scope: Mapped[str] = mapped_column(String(120), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(50))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    values_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    """A JSON object of setting name → value (secrets included: sealed)."""
    changed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class IntegratorAccount(Base):
    """A machine's API credentials (a clinic's journal system, a CRM, a data warehouse): a name, scopes,
    and a bearer token of which only a keyed hash is kept (shown once, at creation)."""

    __tablename__ = "integrator_account"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class CaseOverdue(Base):
    """A case whose answer deadline passed while it waited: flagged once (its ``case.overdue`` event),
    in a table of its own so that flagging never bumps the case's version under a clinician's hands."""

    __tablename__ = "case_overdue"

    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("consultation_case.id", ondelete="CASCADE"), primary_key=True
    )
    flagged_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseSlaAlert(Base):
    """An open case that came within an alert threshold of its deadline (``LEGETIME_SLA_ALERT_MINUTES``):
    one row per case and threshold, so each alert (its ``case.sla_warning`` event and text) happens once.
    A table of its own, like ``CaseOverdue``, so that alerting never bumps the case's version."""

    __tablename__ = "case_sla_alert"

    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("consultation_case.id", ondelete="CASCADE"), primary_key=True
    )
    threshold_minutes: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    alerted_at: Mapped[datetime] = mapped_column(default=utcnow)


class OnDutyPhone(Base):
    """The number operators set for SLA alerts by SMS (the clinicians on duty): one row, ``id`` 1, or none
    when no number is set."""

    __tablename__ = "on_duty_phone"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    phone: Mapped[str] = mapped_column(String(20))
    """E.164, a number that can receive SMS (``identity.phone``)."""
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class DomainEvent(Base):
    """Something that happened to a case (or around it), written in the transaction that made it happen:
    it exists if and only if the change committed. Ids, a type, a status and a role: never health content
    (``legetime.core.platform.events``; docs/events.md lists the types)."""

    __tablename__ = "domain_event"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    """The order events were written in: ascending within a case."""
    id: Mapped[uuid.UUID] = mapped_column(unique=True, default=new_id)
    """Stable across deliveries: consumers deduplicate on it."""
    type: Mapped[str] = mapped_column(String(50))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    case_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    """No foreign key: the event outlives the case's erasure."""
    case_status: Mapped[str | None] = mapped_column(String(30))
    actor_role: Mapped[str | None] = mapped_column(String(30))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Ids and codes only (a payment's status, an SMS's provider)."""


class WebhookEndpoint(Base):
    """An integrator's URL that gets signed outbound webhooks (Standard Webhooks) for the domain events it
    subscribes to (``legetime.core.platform.webhooks_out``). The signing secret is stored sealed only."""

    __tablename__ = "webhook_endpoint"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(500))
    event_types: Mapped[list[str] | None] = mapped_column(JSON)
    """The subscribed event types; None for all (types added later included)."""
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    """Why it was disabled: by an operator, or by the platform after its deliveries kept failing."""
    disabled_at: Mapped[datetime | None]
    key_id: Mapped[str] = mapped_column(String(50))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    """The endpoint's data key (for its secrets), wrapped by master key ``key_id``."""
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The secret before the last rotation: deliveries are signed with it too until it expires."""
    previous_secret_expires_at: Mapped[datetime | None]
    secret_rotated_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    """Deliveries that failed for good since the last one delivered."""
    failing_since: Mapped[datetime | None]
    """When the first of those deliveries was made; None while deliveries succeed."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDelivery(Base):
    """One domain event for one endpoint: delivered, still being tried, or failed for good."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_delivery_endpoint_created", "endpoint_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoint.id"))
    event_id: Mapped[uuid.UUID] = mapped_column()
    """The domain event (``webhook-id``); no foreign key, like the event's own case id."""
    event_type: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20))
    """pending, delivered or failed."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    """When the next scheduled attempt is due; None when none is."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """One POST of a delivery: when, the answer's status code or the error's code, how long it took."""

    __tablename__ = "webhook_attempt"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_delivery.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(50))
    """A code (``timeout``, ``connect_error``, ``address_refused``, ``http_status``), never a message."""
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    """Asked for by an operator (``redeliverWebhook``), not scheduled."""
