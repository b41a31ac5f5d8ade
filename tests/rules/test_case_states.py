"""The case state machine, tested as one: the whole table, random event sequences, reachability."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from legetime.core.consultation.case_states import (
    TERMINAL_STATUSES,
    TRANSITIONS,
    CaseEvent,
    allowed_events,
    is_terminal,
    next_status,
    payment_action,
)
from legetime.core.platform.db.models import CaseStatus
from legetime.core.platform.errors import ErrorCode, IllegalTransition, LegetimeError

S, E = CaseStatus, CaseEvent

# Written out by hand from the diagram in case_states' docstring, independently of TRANSITIONS.
EXPECTED: dict[tuple[CaseStatus, CaseEvent], CaseStatus] = {
    (S.DRAFT, E.SUBMIT): S.SUBMITTED,
    (S.DRAFT, E.CANCEL): S.CANCELLED,
    (S.SUBMITTED, E.CLAIM): S.IN_REVIEW,
    (S.SUBMITTED, E.CANCEL): S.CANCELLED,
    (S.IN_REVIEW, E.ASK_FOLLOW_UP): S.AWAITING_PATIENT,
    (S.IN_REVIEW, E.ANSWER): S.ANSWERED,
    (S.IN_REVIEW, E.RELEASE_CLAIM): S.SUBMITTED,
    (S.IN_REVIEW, E.CANCEL): S.CANCELLED,
    (S.AWAITING_PATIENT, E.PATIENT_REPLIED): S.IN_REVIEW,
    (S.AWAITING_PATIENT, E.CANCEL): S.CANCELLED,
    (S.ANSWERED, E.CLOSE): S.CLOSED,
}
ALL_PAIRS = [(status, event) for status in CaseStatus for event in CaseEvent]


# --- the whole table ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "event"), ALL_PAIRS, ids=[f"{s}-{e}" for s, e in ALL_PAIRS])
def test_every_status_and_event(status: CaseStatus, event: CaseEvent) -> None:
    expected = EXPECTED.get((status, event))
    if expected is not None:
        assert next_status(status, event) is expected
        assert event in allowed_events(status)
        return
    assert event not in allowed_events(status)
    with pytest.raises(IllegalTransition) as caught:
        next_status(status, event)
    error = caught.value
    assert isinstance(error, LegetimeError)
    assert error.code is ErrorCode.ILLEGAL_TRANSITION
    assert error.field is None
    assert (error.status, error.event) == (status, event)
    assert error.message.startswith("Saken ")


def test_the_table_is_exactly_the_expected_one() -> None:
    table = {
        (status, event): target for status, events in TRANSITIONS.items() for event, target in events.items()
    }
    assert table == EXPECTED
    assert set(TRANSITIONS) == set(CaseStatus)


def test_the_table_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[S.CLOSED][E.CANCEL] = S.CANCELLED  # type: ignore[index]
    with pytest.raises(TypeError):
        TRANSITIONS[S.CLOSED] = {}  # type: ignore[index]


@pytest.mark.parametrize(
    ("status", "event", "message"),
    [
        (S.ANSWERED, E.ANSWER, "Saken er allerede besvart."),
        (S.ANSWERED, E.CANCEL, "Saken er allerede besvart."),
        (S.CLOSED, E.CLOSE, "Saken er avsluttet."),
        (S.CANCELLED, E.SUBMIT, "Saken er kansellert."),
        (S.DRAFT, E.CLAIM, "Saken er ikke sendt inn ennå."),
        (S.SUBMITTED, E.ANSWER, "Saken er sendt inn, men ikke tatt under behandling ennå."),
        (S.IN_REVIEW, E.CLAIM, "Saken er allerede under behandling og er ikke besvart ennå."),
        (S.AWAITING_PATIENT, E.ANSWER, "Saken venter på svar fra pasienten."),
    ],
)
def test_messages_name_the_state(status: CaseStatus, event: CaseEvent, message: str) -> None:
    with pytest.raises(IllegalTransition, match=message):
        next_status(status, event)


def test_a_second_claim_is_refused() -> None:
    # Two clinicians racing for the same case: the second claim is an error, not a no-op.
    with pytest.raises(IllegalTransition):
        next_status(next_status(S.SUBMITTED, E.CLAIM), E.CLAIM)


def test_terminal_statuses() -> None:
    assert {status for status in CaseStatus if is_terminal(status)} == {S.CLOSED, S.CANCELLED}
    assert frozenset({S.CLOSED, S.CANCELLED}) == TERMINAL_STATUSES
    for status in TERMINAL_STATUSES:
        assert allowed_events(status) == frozenset()


def test_allowed_events() -> None:
    assert allowed_events(S.DRAFT) == {E.SUBMIT, E.CANCEL}
    assert allowed_events(S.IN_REVIEW) == {E.ASK_FOLLOW_UP, E.ANSWER, E.RELEASE_CLAIM, E.CANCEL}
    assert allowed_events(S.ANSWERED) == {E.CLOSE}
    assert isinstance(allowed_events(S.DRAFT), frozenset)


# --- payment -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "event", "action"),
    [
        (S.DRAFT, E.SUBMIT, "reserve"),
        (S.ANSWERED, E.CLOSE, "capture"),
        (S.DRAFT, E.CANCEL, None),  # nothing was reserved
        (S.SUBMITTED, E.CANCEL, "release"),
        (S.IN_REVIEW, E.CANCEL, "release"),
        (S.AWAITING_PATIENT, E.CANCEL, "release"),
        (S.SUBMITTED, E.CLAIM, None),
        (S.IN_REVIEW, E.RELEASE_CLAIM, None),
        (S.IN_REVIEW, E.ASK_FOLLOW_UP, None),
        (S.AWAITING_PATIENT, E.PATIENT_REPLIED, None),
        (S.IN_REVIEW, E.ANSWER, None),  # captured on close, not on answer
    ],
)
def test_payment_action(status: CaseStatus, event: CaseEvent, action: str | None) -> None:
    assert payment_action(status, event) == action


def test_every_legal_transition_has_a_payment_answer_and_illegal_ones_raise() -> None:
    for status, event in ALL_PAIRS:
        if (status, event) in EXPECTED:
            payment_action(status, event)
        else:
            with pytest.raises(IllegalTransition):
                payment_action(status, event)


# --- reachability ------------------------------------------------------------------------------------


def _reachable(start: CaseStatus) -> set[CaseStatus]:
    seen, queue = {start}, deque([start])
    while queue:
        for target in TRANSITIONS[queue.popleft()].values():
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def test_every_status_is_reachable_from_draft() -> None:
    assert _reachable(S.DRAFT) == set(CaseStatus)


def test_every_status_can_still_end() -> None:
    # No dead ends: from anywhere, some path leads to closed or cancelled.
    for status in CaseStatus:
        assert _reachable(status) & TERMINAL_STATUSES, status


def test_nothing_leads_back_to_draft_and_answered_cannot_be_cancelled() -> None:
    assert S.DRAFT not in {target for events in TRANSITIONS.values() for target in events.values()}
    assert _reachable(S.ANSWERED) == {S.ANSWERED, S.CLOSED}


# --- random event sequences --------------------------------------------------------------------------


class CaseLifecycle(RuleBasedStateMachine):
    """Fires random events at one case, legal or not, and checks the history always makes sense."""

    @initialize()
    def start(self) -> None:
        self.status = S.DRAFT
        self.history: list[CaseStatus] = [S.DRAFT]
        self.reserved = self.captured = self.released = 0

    @rule(event=st.sampled_from(CaseEvent))
    def fire(self, event: CaseEvent) -> None:
        before = self.status
        if event not in allowed_events(before):
            with pytest.raises(IllegalTransition):
                next_status(before, event)
            with pytest.raises(IllegalTransition):
                payment_action(before, event)
            assert self.status is before  # a refused event changes nothing
            return
        action = payment_action(before, event)
        self.status = next_status(before, event)
        self.history.append(self.status)
        if action == "reserve":
            self.reserved += 1
        elif action == "capture":
            self.captured += 1
        elif action == "release":
            self.released += 1

    @invariant()
    def terminal_states_have_no_way_out(self) -> None:
        assert is_terminal(self.status) == (allowed_events(self.status) == frozenset())

    @invariant()
    def closed_only_after_answered(self) -> None:
        if S.CLOSED in self.history:
            assert self.history[-2:] == [S.ANSWERED, S.CLOSED]

    @invariant()
    def never_cancelled_after_an_answer(self) -> None:
        if S.ANSWERED in self.history:
            assert S.CANCELLED not in self.history

    @invariant()
    def answered_only_from_review(self) -> None:
        for earlier, later in zip(self.history, self.history[1:], strict=False):
            if later is S.ANSWERED:
                assert earlier is S.IN_REVIEW
            if later is S.IN_REVIEW:
                assert earlier in (S.SUBMITTED, S.AWAITING_PATIENT)

    @invariant()
    def terminal_is_final(self) -> None:
        for index, status in enumerate(self.history):
            if is_terminal(status):
                assert index == len(self.history) - 1

    @invariant()
    def money_moves_once_and_only_after_a_reservation(self) -> None:
        assert self.reserved <= 1  # submitted once
        assert self.captured + self.released <= self.reserved  # never settle what was not reserved
        assert self.captured + self.released <= 1  # captured or released, not both
        if self.status is S.CLOSED:
            assert (self.reserved, self.captured, self.released) == (1, 1, 0)
        if self.status is S.CANCELLED:
            assert self.captured == 0
            assert self.released == self.reserved  # a cancelled case holds no money


CaseLifecycle.TestCase.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)
TestCaseLifecycle = CaseLifecycle.TestCase
