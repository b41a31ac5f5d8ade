"""A page of cases read as plain rows: the cases, each one's patient and newest payment in one query.

When a connection's nodes ask only for fields a row answers (``ROW_FIELDS``: the plain values, ``id``,
``patient``, ``payment`` and the two that read the case's status and clinician), the page needs no ORM
objects: one SELECT joins the patient and the newest payment to each case, and the rows are mapped straight
into the GraphQL types. That is one round trip instead of three (the page, its persons, its payments) and no
identity map, instance state or attribute instrumentation for about a hundred objects a request. A selection
with anything else (messages, answers, journal notes, a field a plugin added) takes the ORM path, whose
resolvers need the mapped case.

The answers are the same as the ORM path's: the same access condition (the caller's ``query``), the same
order, the patient as the reader may see her (``patient_seen_by``), the newest reservation (by
``created_at``) as the payment. The statement is portable: the newest payment is a correlated subquery in
the join's condition (PostgreSQL and SQLite), not a LATERAL join.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from datetime import date
from typing import Any, NamedTuple, cast

from sqlalchemy import Select, select

from legetime.core.platform.db import models
from legetime.core.platform.db.base import utcnow
from legetime.core.protection import audit
from legetime.schema.case_types import Case, Payment, case_person
from legetime.schema.platform_types import Money

ROW_FIELDS = frozenset(
    {
        "__typename", "id", "number", "status", "outcome", "forChild", "questionnaireKey",
        "questionnaireVersion", "price", "slaDueAt", "submittedAt", "answeredAt", "closedAt",
        "cancelledAt", "createdAt", "retentionUntil", "communicationDeletedAt", "overdue", "patient",
        "payment", "allowedActions", "assignedToMe",
    }
)  # fmt: skip
"""Node fields answered from a row (``Case.of`` reads the same attributes from a row as from a case)."""

_CASE = models.Case.__table__
_CASE_COLUMNS = tuple(
    _CASE.c[name]
    for name in (
        "id", "number", "status", "outcome", "requester_role", "requester_id", "subject_id",
        "patient_given_name", "assigned_clinician_id", "questionnaire_key", "questionnaire_version",
        "price_amount", "price_currency", "sla_due_at", "submitted_at", "answered_at", "closed_at",
        "cancelled_at", "created_at", "retention_until", "purged_at",
    )
)  # fmt: skip
_PATIENT = models.Person.__table__.alias("page_patient")
_PAYMENT = models.PaymentReservation.__table__.alias("page_payment")
_OTHER_PAYMENT = models.PaymentReservation.__table__.alias("page_other_payment")
_NEWEST_PAYMENT = (
    select(_OTHER_PAYMENT.c.id)
    .where(_OTHER_PAYMENT.c.case_id == _CASE.c.id)
    .order_by(_OTHER_PAYMENT.c.created_at.desc())
    .limit(1)
    .correlate(_CASE)
    .scalar_subquery()
)
_JOINED_COLUMNS = (
    _PATIENT.c.given_name.label("patient_given"),
    _PATIENT.c.family_name.label("patient_family"),
    _PATIENT.c.birth_date.label("patient_birth_date"),
    _PAYMENT.c.id.label("payment_id"),
    _PAYMENT.c.provider.label("payment_provider"),
    _PAYMENT.c.status.label("payment_status"),
    _PAYMENT.c.amount.label("payment_amount"),
    _PAYMENT.c.currency.label("payment_currency"),
    _PAYMENT.c.authorized_amount.label("payment_authorized"),
    _PAYMENT.c.captured_amount.label("payment_captured"),
    _PAYMENT.c.released_amount.label("payment_released"),
    _PAYMENT.c.expires_at.label("payment_expires_at"),
    _PAYMENT.c.action_url.label("payment_action_url"),
)
_FROM = _CASE.join(_PATIENT, _PATIENT.c.id == _CASE.c.subject_id).outerjoin(
    _PAYMENT, _PAYMENT.c.id == _NEWEST_PAYMENT
)


class _Patient(NamedTuple):
    """The columns of the patient ``patient_seen_by`` reads."""

    given_name: str
    family_name: str
    birth_date: date


_ROWS = select(*_CASE_COLUMNS, *_JOINED_COLUMNS).select_from(_FROM)
"""Made once: coercing its 34 columns again on every request costs more than the rest of the statement.
Of the tables, not the mapped classes: a statement without ORM entities skips the ORM's execution and
loading (under a condition of table columns, as the access rules' ``AS_PATIENT``)."""


CaseRow = namedtuple("CaseRow", [column.key for column in _ROWS.selected_columns])  # type: ignore[misc]
"""A row of ``_ROWS`` as a tuple with names: a page reads each row's 34 values by name about once, and a
named tuple's attribute costs a tenth of a SQLAlchemy ``Row``'s."""


def logged_page(page: Select[Any], keys: tuple[Any, ...], descending: bool) -> Select[Any]:
    """A page statement of ``_ROWS`` that logs the cases it shows itself, on PostgreSQL: one statement for
    the read and its access-log entries (``audit.logging_select``, with ``cases.list_log_parameters``)."""
    return audit.logging_select(
        page,
        person="subject_id",
        object_id="id",
        object_type="case",
        action="list",
        order=[(key.key, descending) for key in keys],
        shown="page_size",
    )


def as_rows(query: Select[Any]) -> Select[Any]:
    """``query`` (a ``select(Case).where(…)``, nothing else) as a select of rows: the case's columns, its
    patient's and its newest payment's, under the same conditions."""
    condition = query.whereclause
    return _ROWS if condition is None else _ROWS.where(condition)


def cases_of_rows(rows: Sequence[Any], reader: Any, today: date) -> list[Case]:
    """The page's cases, each with its patient and payment set (read as values, never loaded again)."""
    now = utcnow()
    out = []
    for row in rows:
        case = Case.of(cast(models.Case, row), now=now)
        patient = _Patient(row.patient_given, row.patient_family, row.patient_birth_date)
        case._patient = case_person(cast(models.Case, row), cast(models.Person, patient), reader, today)
        case._payment = (
            None
            if row.payment_id is None
            else Payment(
                provider=row.payment_provider,
                status=row.payment_status,
                amount=Money(amount=row.payment_amount, currency=row.payment_currency),
                authorized=row.payment_authorized,
                captured=row.payment_captured,
                released=row.payment_released,
                expires_at=row.payment_expires_at,
                action_url=row.payment_action_url,
            )
        )
        out.append(case)
    return out
