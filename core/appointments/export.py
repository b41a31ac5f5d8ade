"""Her appointments in the export of everything held about her (``core.privacy.rights.export_my_data``):
hers, and those she booked for a child still in her care — the appointments she may read
(``access.as_patient``). Times, clinic, type, status, her message and her forms while they are kept, the
payments, the invoices' bookkeeping fields, and the tombstones of what was deleted.

The access log about a child's appointment belongs in her export while she acts for the child; entries
about herself are there anyway (every appointment entry names its patient).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import and_, false, select
from sqlalchemy.sql import ColumnElement

from legetime.core.appointments import access
from legetime.core.consultation.access import require_person
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.appointment_models import (
    Appointment,
    AppointmentErasure,
    AppointmentForm,
    AppointmentPayment,
    AppointmentType,
    Clinic,
    Invoice,
)
from legetime.core.platform.db.models import AuditEvent
from legetime.core.protection import content

_Row = TypeVar("_Row", AppointmentForm, AppointmentPayment, Invoice, AppointmentErasure)


@dataclass(frozen=True)
class AppointmentExport:
    rows: list[dict[str, Any]]
    numbers: dict[tuple[str, str], str]
    """(object type, object id) of an access-log entry → the number of the appointment it is about."""
    about_children: ColumnElement[bool]
    """Access-log entries about the appointments she booked for a child in her care."""


async def of_patient(ctx: Ctx) -> AppointmentExport:
    me = require_person(ctx.actor)
    ring = ctx.platform.keyring
    found = list(
        (
            await ctx.session.scalars(
                select(Appointment)
                .where(access.as_patient(ctx.actor, ctx.today))
                .order_by(Appointment.created_at)
            )
        ).all()
    )
    ids = [a.id for a in found]
    clinics = {
        c.id: c
        for c in (
            await ctx.session.scalars(select(Clinic).where(Clinic.id.in_({a.clinic_id for a in found})))
        ).all()
    }
    types = {
        t.id: t
        for t in (
            await ctx.session.scalars(
                select(AppointmentType).where(AppointmentType.id.in_({a.type_id for a in found}))
            )
        ).all()
    }
    forms = await _grouped(ctx, AppointmentForm, ids)
    payments = await _grouped(ctx, AppointmentPayment, ids)
    invoices = await _grouped(ctx, Invoice, ids)
    erasures = await _grouped(ctx, AppointmentErasure, ids)

    def export(appointment: Appointment) -> dict[str, Any]:
        clinic, kind = clinics[appointment.clinic_id], types[appointment.type_id]
        return {
            "number": appointment.number,
            "status": appointment.status.value,
            "mode": appointment.mode.value,
            "bookedBy": "guardian" if appointment.booked_by_role == access.GUARDIAN else "self",
            "forChild": appointment.patient_id != me,
            "clinic": {"name": clinic.name, "address": clinic.address},
            "appointmentType": {"code": kind.code, "name": kind.name},
            "startsAt": _iso(appointment.starts_at),
            "endsAt": _iso(appointment.ends_at),
            "requestedAt": _iso(appointment.requested_at),
            "bookedAt": _iso(appointment.booked_at),
            "arrivedAt": _iso(appointment.arrived_at),
            "completedAt": _iso(appointment.completed_at),
            "noShowAt": _iso(appointment.no_show_at),
            "cancelledAt": _iso(appointment.cancelled_at),
            "paidAt": _iso(appointment.paid_at),
            "invoicedAt": _iso(appointment.invoiced_at),
            "price": {"amount": appointment.price_amount, "currency": appointment.price_currency},
            "insurerPays": appointment.insurer_pays,
            "contentDeletedAt": _iso(appointment.purged_at),
            "contentKeptUntil": _iso(appointment.retention_until),
            "message": content.appointment_message(ring, appointment),
            "forms": [
                {
                    "kind": form.kind.value,
                    "submittedAt": _iso(form.submitted_at),
                    "answers": content.form_answers(ring, appointment, form),
                }
                for form in sorted(forms.get(appointment.id, []), key=lambda f: f.submitted_at)
            ],
            "payments": [
                {
                    "provider": p.provider,
                    "amount": p.amount,
                    "currency": p.currency,
                    "status": p.status,
                    "capturedAt": _iso(p.captured_at),
                }
                for p in payments.get(appointment.id, [])
            ],
            "invoices": [
                {
                    "number": i.number,
                    "kid": i.kid,
                    "amount": i.amount,
                    "fee": i.fee_amount,
                    "currency": i.currency,
                    "issuedOn": i.issued_on.isoformat(),
                    "dueOn": i.due_on.isoformat(),
                    "status": i.status,
                    "settledAt": _iso(i.settled_at),
                }
                for i in invoices.get(appointment.id, [])
            ],
            "erasures": [
                {"rule": e.rule, "deleted": e.deleted, "erasedAt": _iso(e.erased_at)}
                for e in erasures.get(appointment.id, [])
            ],
        }

    children = [a for a in found if a.patient_id != me]
    about_children: ColumnElement[bool] = false()
    if children:
        about_children = and_(
            AuditEvent.person_id.in_({a.patient_id for a in children}),
            AuditEvent.object_type == "appointment",
            AuditEvent.object_id.in_([str(a.id) for a in children]),
        )
    return AppointmentExport(
        rows=[export(a) for a in found],
        numbers={("appointment", str(a.id)): a.number for a in found},
        about_children=about_children,
    )


async def _grouped(ctx: Ctx, model: type[_Row], ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[_Row]]:
    grouped: dict[uuid.UUID, list[_Row]] = {}
    if ids:
        for row in (await ctx.session.scalars(select(model).where(model.appointment_id.in_(ids)))).all():
            grouped.setdefault(row.appointment_id, []).append(row)
    return grouped


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
