"""The case state machine — the one place that says which status may follow which.

    draft -> submitted -> in_review <-> awaiting_patient
                 ^            |
                 +------------+ (release_claim)
                              +-> answered -> closed
    draft | submitted | in_review | awaiting_patient -> cancelled

Changes are *events* (``CaseEvent``), not target statuses, so a caller says what happened ("the clinician
answered") and this module decides the new status; an event the current status does not allow raises
``IllegalTransition`` — never a silent no-op, so a double click or a race between two clinicians surfaces
as a typed error instead of a case quietly changing twice.

``closed`` and ``cancelled`` are terminal. A case can be cancelled only before it is answered: after an
answer the work is done and the fee is earned, so it is closed instead.

The payment follows the same events (``payment_action``): submitting reserves the fee, closing captures
it, cancelling releases it — if there is a reservation, i.e. the case was submitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Literal

from legetime.core.platform.db.models import CaseStatus
from legetime.core.platform.errors import IllegalTransition


class CaseEvent(StrEnum):
    SUBMIT = "submit"  # the patient (or guardian) sends the case in
    CLAIM = "claim"  # a clinician takes a submitted case
    RELEASE_CLAIM = "release_claim"  # the clinician gives it back to the queue
    ASK_FOLLOW_UP = "ask_follow_up"  # the clinician asks the patient a question
    PATIENT_REPLIED = "patient_replied"  # the patient answers it; back to the same clinician
    ANSWER = "answer"  # the clinician gives the answer (with an outcome)
    CLOSE = "close"  # the answered case is closed
    CANCEL = "cancel"  # withdrawn before an answer


PaymentAction = Literal["reserve", "capture", "release"]

_S = CaseStatus
_E = CaseEvent

TRANSITIONS: Final[Mapping[CaseStatus, Mapping[CaseEvent, CaseStatus]]] = MappingProxyType(
    {
        _S.DRAFT: MappingProxyType({_E.SUBMIT: _S.SUBMITTED, _E.CANCEL: _S.CANCELLED}),
        _S.SUBMITTED: MappingProxyType({_E.CLAIM: _S.IN_REVIEW, _E.CANCEL: _S.CANCELLED}),
        _S.IN_REVIEW: MappingProxyType(
            {
                _E.ASK_FOLLOW_UP: _S.AWAITING_PATIENT,
                _E.ANSWER: _S.ANSWERED,
                _E.RELEASE_CLAIM: _S.SUBMITTED,
                _E.CANCEL: _S.CANCELLED,
            }
        ),
        _S.AWAITING_PATIENT: MappingProxyType({_E.PATIENT_REPLIED: _S.IN_REVIEW, _E.CANCEL: _S.CANCELLED}),
        _S.ANSWERED: MappingProxyType({_E.CLOSE: _S.CLOSED}),
        _S.CLOSED: MappingProxyType({}),
        _S.CANCELLED: MappingProxyType({}),
    }
)
"""status -> event -> next status. The single source of truth; everything below reads it."""

# Why an event was refused, said by the state the case is in (shown to patients and clinicians).
_REFUSED: Final[Mapping[CaseStatus, str]] = MappingProxyType(
    {
        _S.DRAFT: "Saken er ikke sendt inn ennå.",
        _S.SUBMITTED: "Saken er sendt inn, men ikke tatt under behandling ennå.",
        _S.IN_REVIEW: "Saken er allerede under behandling og er ikke besvart ennå.",
        _S.AWAITING_PATIENT: "Saken venter på svar fra pasienten.",
        _S.ANSWERED: "Saken er allerede besvart.",
        _S.CLOSED: "Saken er avsluttet.",
        _S.CANCELLED: "Saken er kansellert.",
    }
)

TERMINAL_STATUSES: Final[frozenset[CaseStatus]] = frozenset(
    status for status, events in TRANSITIONS.items() if not events
)


def next_status(current: CaseStatus, event: CaseEvent) -> CaseStatus:
    """The status after ``event``; ``IllegalTransition`` (naming the current state) if not allowed."""
    target = TRANSITIONS[current].get(event)
    if target is None:
        raise IllegalTransition(_REFUSED[current], status=current, event=event)
    return target


def allowed_events(status: CaseStatus) -> frozenset[CaseEvent]:
    """The events ``status`` accepts, e.g. for the GraphQL layer to offer only the possible actions."""
    return frozenset(TRANSITIONS[status])


def is_terminal(status: CaseStatus) -> bool:
    """True for ``closed`` and ``cancelled``: nothing follows them."""
    return status in TERMINAL_STATUSES


def payment_action(current: CaseStatus, event: CaseEvent) -> PaymentAction | None:
    """What the transition does to the fee: ``reserve`` on submit, ``capture`` on close, ``release`` on a
    cancel of a case that holds a reservation (anything submitted; a draft has none). ``None`` otherwise.

    Takes the current status, not only the event, because a cancel releases money only when some was
    reserved. Raises ``IllegalTransition`` like ``next_status``, so no payment job is ever queued for a
    transition that cannot happen.
    """
    next_status(current, event)
    if event == CaseEvent.SUBMIT:
        return "reserve"
    if event == CaseEvent.CLOSE:
        return "capture"
    if event == CaseEvent.CANCEL and current != CaseStatus.DRAFT:
        return "release"
    return None
