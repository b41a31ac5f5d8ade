"""Appointments: visits at a clinic or by video, their health forms, timed texts, payment and invoice, and
the anonymous patient surveys (issue 16; docs/appointments.md).

What an appointment holds that touches health — the patient's message to the doctor and the forms she
submits — is sealed with the appointment's own data key, deleted when its purpose is fulfilled
(``core.appointments.retention``); what is left is a tombstone with dates and amounts, as for cases.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from legetime.core.platform.db.base import Base, enum_column, new_id, utcnow


class AppointmentMode(StrEnum):
    IN_PERSON = "in_person"
    VIDEO = "video"


class AppointmentStatus(StrEnum):
    REQUESTED = "requested"
    """A booking request (a service that cannot be booked directly): staff follow it up."""
    BOOKED = "booked"
    REMINDED = "reminded"
    """The reminder two days before went out."""
    ARRIVED = "arrived"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"
    PAID = "paid"
    INVOICED = "invoiced"
    """Not paid within 48 hours of the visit: an invoice with a fee was issued (paying it makes it PAID)."""


class FormKind(StrEnum):
    HEALTH_DECLARATION = "health_declaration"
    """Egenerklæring om helse, before surgery."""
    INSURER_CONSENT = "insurer_consent"
    """Samtykke til utlevering av helseopplysninger til forsikringsselskap, when an insurer pays."""


class TimedText(StrEnum):
    """The texts planned around an appointment (``core.appointments.timed_texts``)."""

    REMINDER = "reminder"
    """Two days before, with the form link when the type has forms."""
    ARRIVAL = "arrival"
    """One hour before, with the link to register arrival (in-person visits)."""
    PAYMENT_LINK = "payment_link"
    """Shortly after the visit."""
    INVOICE = "invoice"
    """48 hours after the visit, unpaid: the invoice is issued and she is told."""
    SURVEY = "survey"
    """After the visit or consultation: the satisfaction survey, once."""


class Clinic(Base):
    __tablename__ = "clinic"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AppointmentType(Base):
    """What can be booked: its name for the patient, how long, its price, its forms, whether a patient may
    book it herself (otherwise her booking is a request staff follow up)."""

    __tablename__ = "appointment_type"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    mode: Mapped[AppointmentMode] = mapped_column(enum_column(AppointmentMode))
    minutes: Mapped[int] = mapped_column(Integer)
    price_amount: Mapped[int] = mapped_column(Integer)
    price_currency: Mapped[str] = mapped_column(String(3))
    forms: Mapped[list[str]] = mapped_column(JSON, default=list)
    """``FormKind`` values the patient fills in before the visit."""
    directly_bookable: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Appointment(Base):
    __tablename__ = "appointment"
    __table_args__ = (
        Index("ix_appointment_status_starts", "status", "starts_at"),
        UniqueConstraint("booked_by_id", "idempotency_key"),
        # Belt and braces under the scheduling provider's own guarantee: one live appointment per slot.
        Index(
            "ux_appointment_live_slot",
            "provider",
            "slot_id",
            unique=True,
            sqlite_where=text("slot_id IS NOT NULL AND cancelled_at IS NULL"),
            postgresql_where=text("slot_id IS NOT NULL AND cancelled_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id"), index=True)
    booked_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id"), index=True)
    """The patient, her guardian, or the staff member who booked it for her."""
    booked_by_role: Mapped[str] = mapped_column(String(20))
    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), index=True)
    type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("appointment_type.id"))
    mode: Mapped[AppointmentMode] = mapped_column(enum_column(AppointmentMode))
    clinician_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("person.id"), index=True)
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("consultation_case.id"), index=True)
    """The written consultation that referred her (``PHYSICAL_EXAMINATION``), when there is one."""
    status: Mapped[AppointmentStatus] = mapped_column(enum_column(AppointmentStatus))
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    provider: Mapped[str | None] = mapped_column(String(50))
    """The scheduling provider that holds its booking."""
    slot_id: Mapped[str | None] = mapped_column(String(200))
    booking_id: Mapped[str | None] = mapped_column(String(200))
    plan: Mapped[int] = mapped_column(Integer, default=1)
    """Bumped whenever its time changes or it is cancelled: a timed text planned for an older plan is void."""
    data_key_id: Mapped[str | None] = mapped_column(String(50))
    data_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    """Wraps the message and the forms; deleted at the end of retention (crypto-shredding)."""
    message_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    """Her short message to the doctor, sealed."""
    insurer_pays: Mapped[bool] = mapped_column(Boolean, default=False)
    price_amount: Mapped[int] = mapped_column(Integer)
    price_currency: Mapped[str] = mapped_column(String(3))
    video_room: Mapped[str | None] = mapped_column(String(200))
    requested_at: Mapped[datetime | None]
    booked_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    arrived_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    no_show_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    invoiced_at: Mapped[datetime | None]
    retention_until: Mapped[datetime | None] = mapped_column(index=True)
    purged_at: Mapped[datetime | None]
    erasure_requested_at: Mapped[datetime | None]
    """She asked for erasure while it was still open: its content goes as soon as it ends
    (``core.appointments.retention``)."""
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - optimistic locking of transitions


class AppointmentForm(Base):
    """A form she submitted after BankID, sealed with the appointment's key."""

    __tablename__ = "appointment_form"
    __table_args__ = (UniqueConstraint("appointment_id", "kind"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    appointment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("appointment.id", ondelete="CASCADE"))
    kind: Mapped[FormKind] = mapped_column(enum_column(FormKind))
    answers_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    submitted_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("person.id"))
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)


class AppointmentPayment(Base):
    """The payment link's payment, as the payment provider last reported it."""

    __tablename__ = "appointment_payment"
    __table_args__ = (UniqueConstraint("provider", "provider_payment_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    appointment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("appointment.id"), index=True)
    provider: Mapped[str] = mapped_column(String(50))
    provider_payment_id: Mapped[str] = mapped_column(String(255))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(30))
    action_url: Mapped[str | None] = mapped_column(String(2000))
    captured_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Invoice(Base):
    __tablename__ = "invoice"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    appointment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("appointment.id"), unique=True)
    number: Mapped[str] = mapped_column(String(30), unique=True)
    provider: Mapped[str] = mapped_column(String(50))
    provider_id: Mapped[str] = mapped_column(String(255))
    kid: Mapped[str] = mapped_column(String(30))
    amount: Mapped[int] = mapped_column(Integer)
    """The visit's price plus the fee."""
    fee_amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    issued_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))
    document_key: Mapped[str | None] = mapped_column(String(200))
    """Where the PDF lies in storage (sealed with the appointment's key), when the provider made one."""
    settled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AppointmentErasure(Base):
    """A tombstone: what was deleted from an appointment, when, and by which rule. Holds no content."""

    __tablename__ = "appointment_erasure"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    appointment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("appointment.id"), index=True)
    rule: Mapped[str] = mapped_column(String(30))
    run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("retention_run.id"))
    deleted: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    """Counts by kind: message, forms, documents."""
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)


class AppointmentStatistic(Base):
    """Anonymised statistics, recorded before an appointment's content is deleted. No appointment or person
    id, no date finer than a month, ages only in bands."""

    __tablename__ = "appointment_statistic"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    month: Mapped[str] = mapped_column(String(7), index=True)
    """``YYYY-MM`` of the visit (of the request, when it never got a time), in the service's time zone."""
    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"))
    appointment_type: Mapped[str] = mapped_column(String(50))
    """The type's code."""
    mode: Mapped[AppointmentMode] = mapped_column(enum_column(AppointmentMode))
    age_band: Mapped[str] = mapped_column(String(10))
    for_child: Mapped[bool] = mapped_column(Boolean)
    final_status: Mapped[str] = mapped_column(String(30))
    paid: Mapped[bool] = mapped_column(Boolean)
    invoiced: Mapped[bool] = mapped_column(Boolean)


class TimedTextPlan(Base):
    """One text planned around an appointment, for one plan of it: sent once, or skipped with a reason."""

    __tablename__ = "appointment_text"
    __table_args__ = (UniqueConstraint("appointment_id", "kind", "plan"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    appointment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("appointment.id", ondelete="CASCADE"))
    kind: Mapped[TimedText] = mapped_column(enum_column(TimedText))
    plan: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(30), default="planned")
    """planned, sent (handed to the SMS path: ``notification``), or why not (``skipped_*``)."""
    settled_at: Mapped[datetime | None]


class SurveyInvitation(Base):
    """A survey link sent once after a visit or a consultation. It names what it was sent for, to send it
    once; the answer is stored apart (``SurveyAnswer``) without any link back."""

    __tablename__ = "survey_invitation"
    __table_args__ = (UniqueConstraint("subject_type", "subject_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    subject_type: Mapped[str] = mapped_column(String(20))
    """``appointment`` or ``case``."""
    subject_id: Mapped[uuid.UUID]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    answered: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SurveyAnswer(Base):
    """Anonymous: which survey, the month, the clinic (for visits) and the scores; no person, no time of
    day, no free text (which could name someone)."""

    __tablename__ = "survey_answer"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    survey: Mapped[str] = mapped_column(String(20))
    month: Mapped[str] = mapped_column(String(7))
    clinic_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clinic.id"))
    scores: Mapped[dict[str, Any]] = mapped_column(JSON)
