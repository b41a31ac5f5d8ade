"""Domain events: every change to a case produces a typed event in the same transaction, and plugins get
them after commit, at least once, with a stable id (``handle_event``) — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.hookspecs import hookimpl
from legetime.core.platform.config import Settings
from legetime.core.platform.events import Event, EventType
from legetime.core.platform.providers import SMS
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.api import Api, complete_answers
from tests.conftest import seed_demo
from tests.migrated import upgrade
from tests.test_flow_per_provider import CLINICIAN, MOTHER, consultation


class Recorder:
    """A plugin that keeps every event it is handed; ``failing`` types fail on their first delivery."""

    def __init__(self, failing: set[EventType] | None = None) -> None:
        self.events: list[Event] = []
        self.failing = set(failing or ())
        self.lock = threading.Lock()

    @hookimpl
    async def handle_event(self, event: Event, platform: Platform) -> None:
        with self.lock:
            self.events.append(event)
            if event.type in self.failing:
                self.failing.discard(event.type)
                raise RuntimeError("the receiver is down")

    def of(self, case_id: str) -> list[Event]:
        """The case's events as delivered, in the order they happened (jobs deliver them in parallel)."""
        with self.lock:
            mine = [event for event in self.events if str(event.case_id) == case_id]
        return sorted(mine, key=lambda event: event.occurred_at)


@pytest.fixture(params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Api, Recorder, Recorder]]:
    database_url = request.getfixturevalue("fresh_postgres_url") if request.param == "postgresql" else None
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    steady, flaky = Recorder(), Recorder(failing={EventType.CASE_SUBMITTED})
    platform = Platform.create(settings, extra_plugins=[steady, flaky], load_entry_points=False)
    with TestClient(create_app(platform)) as client:
        yield Api(client), steady, flaky


def case_id_of(api: Api, token: str) -> str:
    cases = api.gql("{ myCases(first: 5) { edges { node { id } } } }", token)["myCases"]["edges"]
    return str(cases[0]["node"]["id"])


def test_hook_handle_event(stack: tuple[Api, Recorder, Recorder]) -> None:
    """The whole consultation as events, in order, each with the case's status after it and who did it."""
    api, steady, flaky = stack
    mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
    consultation(api, mother, clinician, "fake", None, None)
    case_id = _uuid(case_id_of(api, mother))
    expected = [
        (EventType.CASE_STARTED, "DRAFT", "patient"),
        (EventType.CONSENT_GRANTED, "DRAFT", "patient"),
        (EventType.CONSENT_GRANTED, "DRAFT", "patient"),
        (EventType.PAYMENT_RESERVED, "DRAFT", "patient"),
        (EventType.CASE_SUBMITTED, "SUBMITTED", "patient"),
        (EventType.CASE_CLAIMED, "IN_REVIEW", "clinician"),
        (EventType.CASE_ANSWERED, "ANSWERED", "clinician"),
        (EventType.CASE_CLOSED, "CLOSED", "patient"),
        (EventType.PAYMENT_CAPTURED, "CLOSED", "system"),
    ]

    def seen() -> list[tuple[EventType, str | None, str | None]]:
        return [(e.type, e.case_status, e.actor_role) for e in steady.of(case_id)]

    assert api.wait_for(lambda: len(seen()) >= len(expected), "every event"), seen()
    assert seen() == expected
    events = steady.of(case_id)
    assert len({event.id for event in events}) == len(events)
    assert events[4].data == {}
    assert events[3].data == {"payment_status": "authorized", "provider": "fake"}
    assert set(events[6].data) == {"message_id"}
    # Ids, codes and statuses only: no national ID, name or text of the consultation.
    flat = json.dumps([(e.type, e.data) for e in events])
    for secret in (MOTHER, CLINICIAN, DEMO_PEOPLE[2].given_name, "Hvile og væske"):
        assert secret not in flat

    # The plugin that failed on case.submitted got it again (the same id), the others once; the steady
    # plugin never saw a second copy of anything.
    def submitted() -> list[Event]:
        return [e for e in flaky.of(case_id) if e.type is EventType.CASE_SUBMITTED]

    first, again = api.wait_for(lambda: len(submitted()) == 2 and submitted(), "the retry")
    assert first.id == again.id
    assert [e.type for e in flaky.of(case_id) if e.type is not EventType.CASE_SUBMITTED] == [
        t for t, _, _ in expected if t is not EventType.CASE_SUBMITTED
    ]


def _uuid(node: str) -> str:
    """The case's id in its global id (``Case:<uuid>``, base64)."""
    return base64.b64decode(node).decode().split(":", 1)[1]


def test_a_change_that_fails_leaves_no_event(stack: tuple[Api, Recorder, Recorder]) -> None:
    api, steady, _ = stack
    mother = api.login(MOTHER)
    started = api.ok("startCase", {}, "case { id }", mother)["case"]["id"]
    case_id = _uuid(started)
    submit = {"caseId": started, "idempotencyKey": "k1", "paymentProvider": "fake"}
    refused = api.mutate("submitCase", submit, "case { id }", mother)  # no answers, no consent
    assert refused["errors"]
    api.wait_for(lambda: steady.of(case_id), "case.started")
    assert [e.type for e in steady.of(case_id)] == [EventType.CASE_STARTED]


def test_every_kind_of_change_has_its_event(stack: tuple[Api, Recorder, Recorder]) -> None:
    """Questions and replies, the journal note, the text she is sent, a withdrawn consent and the erasure
    it causes, a cancelled case and its released hold: each change has its event."""
    api, steady, _ = stack
    platform = api.client.app.state.platform  # type: ignore[attr-defined]
    mother, clinician = api.login(MOTHER), api.login(CLINICIAN)

    def ask_and_reply(case_id: str) -> None:
        api.ok("sendMessage", {"caseId": case_id, "body": "Klør det?"}, "case { id }", clinician)
        api.ok("sendMessage", {"caseId": case_id, "body": "Ja, om kvelden."}, "case { id }", mother)

    def note_and_text(case_id: str) -> None:
        api.ok("draftJournalNote", {"caseId": case_id, "idempotencyKey": "d1"}, "case { id }", clinician)
        notes = "query($id: ID!) { case(id: $id) { journalNotes { id } } }"
        [note] = api.wait_for(
            lambda: api.gql(notes, clinician, id=case_id)["case"]["journalNotes"], "the draft"
        )
        api.ok("approveJournalNote", {"noteId": note["id"]}, "note { status }", clinician)
        outbox = platform.providers.get(SMS)
        [text] = api.wait_for(
            lambda: [m for m in asyncio.run(outbox.messages()) if ":answered:" in m.reference],
            "the answer's text",
        )
        body = json.dumps(
            {"id": text.provider_id, "status": "delivered", "at": datetime.now(UTC).isoformat()}
        )
        signature = hmac.new(outbox._dlr_key, body.encode(), hashlib.sha256).hexdigest()
        headers = {"X-Outbox-Signature": signature, "Content-Type": "application/json"}
        assert api.client.post("/webhooks/sms/outbox", content=body, headers=headers).status_code == 204

    consultation(
        api, mother, clinician, "fake", None, None, before_answer=ask_and_reply, after_answer=note_and_text
    )
    case_node = case_id_of(api, mother)
    withdraw = {"purpose": "COMMUNICATION_STORAGE", "caseId": case_node}
    api.ok("withdrawConsent", withdraw, "consent { granted }", mother)

    cancelled_node = api.ok("startCase", {}, "case { id }", mother)["case"]["id"]
    answers = {"caseId": cancelled_node, "answers": complete_answers(api, for_child=False)}
    api.ok("answerQuestionnaire", answers, "case { id }", mother)
    version = {
        t["purpose"]: t["version"] for t in api.gql("{ consentTexts { purpose version } }")["consentTexts"]
    }
    grant = {"purpose": "COMMUNICATION_STORAGE", "textVersion": version["COMMUNICATION_STORAGE"]}
    api.ok("grantConsent", {**grant, "caseId": cancelled_node}, "consent { granted }", mother)
    api.ok(
        "submitCase",
        {"caseId": cancelled_node, "idempotencyKey": "k", "paymentProvider": "fake"},
        "case { id }",
        mother,
    )
    api.ok("cancelCase", {"caseId": cancelled_node}, "case { status }", mother)

    case_id, cancelled_id = _uuid(case_node), _uuid(cancelled_node)
    wanted = {
        case_id: [
            (EventType.CASE_FOLLOW_UP_ASKED, "AWAITING_PATIENT", "clinician"),
            (EventType.MESSAGE_SENT, "AWAITING_PATIENT", "clinician"),
            (EventType.CASE_PATIENT_REPLIED, "IN_REVIEW", "patient"),
            (EventType.MESSAGE_SENT, "IN_REVIEW", "patient"),
            (EventType.JOURNAL_DRAFTED, "ANSWERED", "system"),
            (EventType.JOURNAL_APPROVED, "ANSWERED", "clinician"),
            (EventType.SMS_DELIVERED, "ANSWERED", "system"),
            (EventType.CONSENT_WITHDRAWN, "CLOSED", "patient"),
            (EventType.CASE_ERASED, "CLOSED", "patient"),
        ],
        cancelled_id: [
            (EventType.CASE_CANCELLED, "CANCELLED", "patient"),
            (EventType.PAYMENT_RELEASED, "CANCELLED", "system"),
        ],
    }

    def seen(case: str) -> list[tuple[EventType, str | None, str | None]]:
        kinds = {kind for kind, _, _ in wanted[case]}
        return [(e.type, e.case_status, e.actor_role) for e in steady.of(case) if e.type in kinds]

    for case, expected in wanted.items():
        assert api.wait_for(
            lambda case=case, expected=expected: len(seen(case)) >= len(expected), "the events"
        )
        assert seen(case) == expected
    sent = [e.data for e in steady.of(case_id) if e.type is EventType.MESSAGE_SENT]
    assert [(d["kind"], d["author_role"]) for d in sent] == [
        ("follow_up", "clinician"),
        ("message", "patient"),
    ]
    erased = next(e for e in steady.of(case_id) if e.type is EventType.CASE_ERASED)
    assert erased.data["scope"] == "erase_communication" and erased.data["messages"] >= 3
    # Every type of the catalogue happened in these two tests but the claim released (no mutation yet)
    # and sms.failed (tests/test_sms_delivery.py) and payment.failed (the card declined before a reservation).


def test_every_event_type_is_described_in_the_docs() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "events.md").read_text()
    missing = [t.value for t in EventType if f"| `{t.value}` |" not in doc]
    assert missing == [], f"docs/events.md does not describe {missing}"
