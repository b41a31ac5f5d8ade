"""SLA alerts: an open case nearing its deadline alerts the clinicians and the operators once per threshold
(``LEGETIME_SLA_ALERT_MINUTES``, 60 and 15): a ``case.sla_warning`` event (the clinicians' live queue,
webhooks) and a text to the operators' on-duty number. The periodic job runs with a simulated clock (its
``now``), however often; on SQLite and PostgreSQL where the job's SQL and locks matter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient
from strawberry import relay

from legetime.core import core_plugin
from legetime.core.consultation.sla_alerts import alert_cases_near_deadline
from legetime.core.platform.config import Settings
from legetime.core.platform.db.models import AuditEvent
from legetime.core.platform.events import EventType
from legetime.core.platform.providers import SMS
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.api import SUBMIT_FIELDS, Api, complete_answers
from tests.conftest import seed_demo
from tests.migrated import upgrade
from tests.test_events import Recorder
from tests.test_notices import CLINICIAN, MOTHER, MOTHERS_PHONE, OPERATOR

ON_DUTY = "+4741234567"
ON_DUTY_QUERY = "{ onDutyPhone { phone changedAt } }"
PHONE_FIELDS = "onDutyPhone { phone }"


class Stack:
    """The API, the platform behind it (its jobs in the process) and the events it delivered."""

    def __init__(self, client: TestClient, platform: Platform, events: Recorder) -> None:
        self.client, self.platform, self.events = client, platform, events
        self.api = Api(client)
        self.mother, self.clinician = self.api.login(MOTHER), self.api.login(CLINICIAN)
        self.operator = self.api.login(OPERATOR)

    def submit(self) -> tuple[str, str, datetime]:
        """A case in the queue: its id, number and deadline."""
        api = self.api
        case_id = api.ok("startCase", {}, "case { id }", self.mother)["case"]["id"]
        answers = {"caseId": case_id, "answers": complete_answers(api, for_child=False)}
        api.ok("answerQuestionnaire", answers, "case { id }", self.mother)
        version = api.gql("{ consentTexts { purpose version } }")["consentTexts"][0]["version"]
        consent = {"purpose": "COMMUNICATION_STORAGE", "textVersion": version}
        api.ok("grantConsent", consent, "consent { granted }", self.mother)
        submitted = api.ok(
            "submitCase", {"caseId": case_id, "idempotencyKey": "k"}, SUBMIT_FIELDS, self.mother
        )
        case = submitted["case"]
        assert case["status"] == "SUBMITTED"
        return case_id, case["number"], datetime.fromisoformat(case["slaDueAt"])

    def alert(self, now: datetime) -> int:
        """One run of the periodic job, in the app's event loop, at the simulated time ``now``."""
        assert self.client.portal is not None
        return int(self.client.portal.call(alert_cases_near_deadline, self.platform, now))

    def warnings(self, case_id: str) -> list[dict[str, Any]]:
        """The data of the case's ``case.sla_warning`` events, as plugins (and webhooks) get them."""
        node = case_id_of(case_id)
        return [dict(e.data) for e in self.events.of(node) if e.type is EventType.CASE_SLA_WARNING]

    def texts(self) -> list[Any]:
        """SLA texts the SMS provider took (the outbox keeps them)."""
        assert self.client.portal is not None
        stored = self.client.portal.call(self.platform.providers.get(SMS).messages)  # type: ignore[attr-defined]
        return [m for m in stored if ":sla_warning:" in m.reference]

    def set_on_duty(self, phone: str | None, token: str | None = None) -> dict[str, Any]:
        return self.api.mutate("setOnDutyPhone", {"phone": phone}, PHONE_FIELDS, token or self.operator)


def case_id_of(node: str) -> str:
    return relay.GlobalID.from_id(node).node_id


@contextmanager
def stack_on(tmp_path: Path, database_url: str | None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    # The scheduler's own runs use the real clock: kept out of the way, the test runs the job itself.
    monkeypatch.setattr(core_plugin, "SLA_ALERT_EVERY", timedelta(days=1))
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    seed_demo(settings)
    events = Recorder()
    platform = Platform.create(settings, extra_plugins=[events], load_entry_points=False)
    with TestClient(create_app(platform)) as client:
        yield Stack(client, platform, events)


@pytest.fixture
def both(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """On SQLite and PostgreSQL."""
    with stack_on(tmp_path, database_url, monkeypatch) as stack:
        yield stack


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """On the embedded default (SQLite)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    upgrade(url)
    with stack_on(tmp_path, url, monkeypatch) as stack:
        yield stack


def test_each_threshold_alerts_once_and_texts_the_on_duty_number(both: Stack) -> None:
    stack, api = both, both.api
    assert stack.set_on_duty("412 34 567")["onDutyPhone"] == {"phone": ON_DUTY}
    case_id, number, due = stack.submit()
    api.ok("claimCase", {"caseId": case_id}, "case { id }", stack.clinician)  # in review: still open

    assert stack.alert(due - timedelta(minutes=61)) == 0

    async def two_workers_at_once(now: datetime) -> list[int]:
        runs = [alert_cases_near_deadline(stack.platform, now) for _ in range(2)]
        return sorted(await asyncio.gather(*runs))

    assert stack.client.portal is not None
    assert stack.client.portal.call(two_workers_at_once, due - timedelta(minutes=60)) == [0, 1]
    assert stack.alert(due - timedelta(minutes=59)) == 0
    assert stack.alert(due - timedelta(minutes=16)) == 0
    assert stack.alert(due - timedelta(minutes=15)) == 1  # the second threshold, later
    assert stack.alert(due - timedelta(minutes=1)) == 0
    assert stack.alert(due + timedelta(minutes=1)) == 0  # past the deadline: case.overdue's to say

    deadline = due.isoformat()
    expected = [
        {"threshold_minutes": 60, "sla_due_at": deadline},
        {"threshold_minutes": 15, "sla_due_at": deadline},
    ]
    api.wait_for(lambda: len(stack.warnings(case_id)) >= 2, "the warnings")
    time.sleep(0.3)  # a third would have arrived by now
    assert stack.warnings(case_id) == expected
    node = case_id_of(case_id)
    [event, _] = [e for e in stack.events.of(node) if e.type is EventType.CASE_SLA_WARNING]
    assert (event.case_status, event.actor_role) == ("IN_REVIEW", "system")

    texts = api.wait_for(lambda: len(stack.texts()) >= 2 and stack.texts(), "the texts")
    assert sorted(m.reference.rsplit(":", 1)[1] for m in texts) == ["15", "60"]
    local = due.astimezone(stack.platform.settings.zone)
    body = f"Legetime: Sak {number} må besvares innen {local:%d.%m.} kl. {local:%H:%M}."
    assert [(m.to, m.body) for m in texts] == [(ON_DUTY, body)] * 2  # the number and the time, nothing else
    assert MOTHERS_PHONE not in {m.to for m in texts}

    sms = api.gql("{ operatorOverview { sms(first: 20) { caseNumber event status } } }", stack.operator)
    sent = [n for n in sms["operatorOverview"]["sms"] if n["event"] == "sla_warning"]
    assert sent == [{"caseNumber": number, "event": "sla_warning", "status": "sent"}] * 2


def test_a_case_past_several_thresholds_at_once_is_alerted_once_for_the_smallest(both: Stack) -> None:
    """The job was not running (or the case came in close to its deadline): one alert, the most urgent;
    the larger threshold never fires afterwards."""
    stack = both
    stack.set_on_duty(ON_DUTY)
    case_id, _, due = stack.submit()
    assert stack.alert(due - timedelta(minutes=10)) == 1
    assert stack.alert(due - timedelta(minutes=5)) == 0
    stack.api.wait_for(lambda: stack.warnings(case_id), "the warning")
    time.sleep(0.3)
    assert [w["threshold_minutes"] for w in stack.warnings(case_id)] == [15]
    assert [m.reference.rsplit(":", 1)[1] for m in stack.api.wait_for(stack.texts, "the text")] == ["15"]


def test_a_case_answered_before_the_threshold_is_not_alerted(both: Stack) -> None:
    stack, api = both, both.api
    stack.set_on_duty(ON_DUTY)
    case_id, _, due = stack.submit()
    api.ok("claimCase", {"caseId": case_id}, "case { id }", stack.clinician)
    answer = {"caseId": case_id, "body": "Hvile og væske.", "outcome": "ADVICE"}
    api.ok("answerCase", answer, "case { id }", stack.clinician)
    assert stack.alert(due - timedelta(minutes=60)) == 0
    assert stack.alert(due - timedelta(minutes=15)) == 0
    answered = [EventType.CASE_ANSWERED]
    api.wait_for(
        lambda: [e for e in stack.events.of(case_id_of(case_id)) if e.type in answered], "the answer"
    )
    assert stack.warnings(case_id) == [] and stack.texts() == []


def test_without_an_on_duty_number_the_event_still_fires_but_nothing_is_texted(stack: Stack) -> None:
    api = stack.api
    assert stack.set_on_duty(ON_DUTY)["errors"] == []
    cleared = stack.set_on_duty(None)
    assert cleared == {"onDutyPhone": None, "errors": []}
    assert api.gql(ON_DUTY_QUERY, stack.operator) == {"onDutyPhone": None}

    case_id, _, due = stack.submit()
    assert stack.alert(due - timedelta(minutes=60)) == 1
    assert api.wait_for(lambda: stack.warnings(case_id), "the warning") == [
        {"threshold_minutes": 60, "sla_due_at": due.isoformat()}
    ]
    time.sleep(0.3)
    assert stack.texts() == []
    sms = api.gql("{ operatorOverview { sms(first: 20) { event } } }", stack.operator)
    assert sms["operatorOverview"]["sms"] == []


def test_only_operators_set_and_read_the_on_duty_number(stack: Stack) -> None:
    api = stack.api
    for token in (stack.clinician, stack.mother):
        refused = stack.set_on_duty(ON_DUTY, token)
        assert refused["onDutyPhone"] is None
        assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"]
        errors = api.raw(ON_DUTY_QUERY, token)["errors"]
        assert errors[0]["extensions"]["code"] == "FORBIDDEN"
    assert api.gql(ON_DUTY_QUERY, stack.operator) == {"onDutyPhone": None}

    landline = stack.set_on_duty("22 22 22 22")
    assert [(e["field"], e["code"]) for e in landline["errors"]] == [("phone", "INVALID_PHONE")]
    assert stack.set_on_duty("+47 412 34 567") == {"onDutyPhone": {"phone": ON_DUTY}, "errors": []}
    assert api.gql(ON_DUTY_QUERY, stack.operator)["onDutyPhone"]["phone"] == ON_DUTY
    stack.set_on_duty("")

    async def logged() -> list[tuple[str, str]]:
        async with stack.platform.db.transaction() as session:
            rows = await session.execute(
                select(AuditEvent.action, AuditEvent.actor_role)
                .where(AuditEvent.object_type == "on_duty_phone")
                .order_by(AuditEvent.id)
            )
            return [(action, role) for action, role in rows]

    assert stack.client.portal is not None
    assert stack.client.portal.call(logged) == [("set", "operator"), ("clear", "operator")]


def test_the_clinicians_live_queue_shows_the_warning(stack: Stack) -> None:
    case_id, _, due = stack.submit()
    subscribe = {"query": "subscription { queueUpdates { caseId type status } }"}
    with stack.client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket:
        socket.send_json(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {stack.clinician}"}}
        )
        assert socket.receive_json()["type"] == "connection_ack"
        socket.send_json({"id": "1", "type": "subscribe", "payload": subscribe})
        time.sleep(0.3)  # subscribed (the server has registered it) before the job runs
        stack.alert(due - timedelta(minutes=60))
        stack.alert(due - timedelta(minutes=50))
        stack.alert(due - timedelta(minutes=15))
        stack.api.ok("claimCase", {"caseId": case_id}, "case { id }", stack.clinician)  # a last update
        received: list[dict[str, Any]] = []
        while not received or received[-1]["type"] != "case.claimed":  # the last update ends the wait
            received.append(socket.receive_json()["payload"]["data"]["queueUpdates"])
    assert [(u["caseId"], u["type"], u["status"]) for u in received] == [
        (case_id, "case.sla_warning", "SUBMITTED"),
        (case_id, "case.sla_warning", "SUBMITTED"),
        (case_id, "case.claimed", "IN_REVIEW"),
    ]
