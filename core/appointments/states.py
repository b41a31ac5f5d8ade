"""The appointment state machine — the one place that says which status may follow which.

    requested -> booked -> reminded -> arrived -> completed -> paid
                   |          |          |            +-> invoiced -> paid
                   |          |          +-> (video: from booked/reminded straight to completed)
                   +----------+-> no_show
    requested | booked | reminded -> cancelled

Like cases (``core.consultation.case_states``), changes are events; an event the status does not allow
is an ``IllegalTransition`` naming the state, never a silent no-op. ``MOVE`` keeps the status (the time
changes, and with it the plan of its texts). ``paid``, ``cancelled`` and ``no_show`` are terminal for the
visit; a no-show is not charged here (a clinic's no-show fee is its own policy, not built in).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from legetime.core.platform.db.appointment_models import AppointmentStatus
from legetime.core.platform.errors import IllegalTransition


class AppointmentEvent(StrEnum):
    BOOK = "book"  # a time is booked (a request gets its time, or she booked one herself)
    MOVE = "move"  # another time
    REMIND = "remind"  # the reminder two days before went out
    ARRIVE = "arrive"  # she registered her arrival (the link, or the reception)
    COMPLETE = "complete"  # the clinician ends the visit
    NO_SHOW = "no_show"  # she did not come
    CANCEL = "cancel"  # she, or the clinic, cancels before the visit
    PAY = "pay"  # the payment link's payment, or the invoice, is paid
    INVOICE = "invoice"  # 48 hours unpaid: the invoice is issued


_S = AppointmentStatus
_E = AppointmentEvent

TRANSITIONS: Final[Mapping[AppointmentStatus, Mapping[AppointmentEvent, AppointmentStatus]]] = (
    MappingProxyType(
        {
            _S.REQUESTED: MappingProxyType({_E.BOOK: _S.BOOKED, _E.CANCEL: _S.CANCELLED}),
            _S.BOOKED: MappingProxyType(
                {
                    _E.MOVE: _S.BOOKED,
                    _E.REMIND: _S.REMINDED,
                    _E.ARRIVE: _S.ARRIVED,
                    _E.COMPLETE: _S.COMPLETED,
                    _E.NO_SHOW: _S.NO_SHOW,
                    _E.CANCEL: _S.CANCELLED,
                }
            ),
            _S.REMINDED: MappingProxyType(
                {
                    _E.MOVE: _S.BOOKED,
                    _E.ARRIVE: _S.ARRIVED,
                    _E.COMPLETE: _S.COMPLETED,
                    _E.NO_SHOW: _S.NO_SHOW,
                    _E.CANCEL: _S.CANCELLED,
                }
            ),
            _S.ARRIVED: MappingProxyType({_E.COMPLETE: _S.COMPLETED}),
            _S.COMPLETED: MappingProxyType({_E.PAY: _S.PAID, _E.INVOICE: _S.INVOICED}),
            _S.INVOICED: MappingProxyType({_E.PAY: _S.PAID}),
            _S.PAID: MappingProxyType({}),
            _S.NO_SHOW: MappingProxyType({}),
            _S.CANCELLED: MappingProxyType({}),
        }
    )
)
"""status -> event -> next status. The single source of truth."""

_REFUSED: Final[Mapping[AppointmentStatus, str]] = MappingProxyType(
    {
        _S.REQUESTED: "Timen er bare forespurt og har ikke fått et tidspunkt ennå.",
        _S.BOOKED: "Timen er bestilt og har ikke vært ennå.",
        _S.REMINDED: "Timen er bestilt og har ikke vært ennå.",
        _S.ARRIVED: "Pasienten har allerede registrert ankomst.",
        _S.COMPLETED: "Timen er allerede gjennomført.",
        _S.INVOICED: "Timen er fakturert.",
        _S.PAID: "Timen er betalt.",
        _S.NO_SHOW: "Pasienten møtte ikke til timen.",
        _S.CANCELLED: "Timen er avbestilt.",
    }
)

UPCOMING: Final[frozenset[AppointmentStatus]] = frozenset({_S.BOOKED, _S.REMINDED})
"""Booked and not yet begun: what may still be moved or cancelled, and whose texts are still true."""
OPEN: Final[frozenset[AppointmentStatus]] = frozenset({_S.REQUESTED, *UPCOMING, _S.ARRIVED})
"""Not yet over: a patient's upcoming appointments, a request staff follow up."""
UNPAID: Final[frozenset[AppointmentStatus]] = frozenset({_S.COMPLETED, _S.INVOICED})


def next_status(current: AppointmentStatus, event: AppointmentEvent) -> AppointmentStatus:
    """The status after ``event``; ``IllegalTransition`` (naming the current state) if not allowed."""
    target = TRANSITIONS[current].get(event)
    if target is None:
        raise IllegalTransition(_REFUSED[current], status=current, event=event)
    return target


def allowed_events(status: AppointmentStatus) -> frozenset[AppointmentEvent]:
    return frozenset(TRANSITIONS[status])


def is_terminal(status: AppointmentStatus) -> bool:
    return not TRANSITIONS[status]
