"""Outbound webhooks (Standard Webhooks): a local receiver verifies every delivery with the reference
library and deduplicates on ``webhook-id``; outages are ridden out by the retry schedule (driven fast by
scaling it), forged signatures are caught, secrets rotate with a grace period, private addresses are
refused in production, and only operators manage endpoints — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform.config import Environment, Settings
from legetime.core.platform.db.engine import Database
from legetime.core.platform.db.models import AuditEvent, DomainEvent, WebhookEndpoint
from legetime.core.platform.runtime import Platform
from legetime.core.platform.webhooks_out import addresses, delivery, signing
from legetime.schema.app import create_app
from tests.api import Api
from tests.conftest import seed_demo
from tests.fakes.server import serve
from tests.migrated import upgrade
from tests.test_flow_per_provider import CLINICIAN, MOTHER, consultation

OPERATOR = DEMO_PEOPLE[1].national_id
ENDPOINT = "endpoint { id url enabled eventTypes disabledReason }"


class Receiver:
    """An integrator's endpoint: verifies with the reference library, deduplicates on ``webhook-id``;
    can be told to fail (500), to hang (a timeout), or to recover."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.lock = threading.Lock()
        self.raw: list[tuple[dict[str, str], bytes]] = []
        self.seen: dict[str, dict[str, Any]] = {}
        self.duplicates = 0
        self.rejected = 0
        self.failing = False
        """Answer every request 500 (down) until set back."""
        self.hang_next = 0
        self.hang_seconds = 1.0
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])
        self.url = ""

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        with self.lock:
            self.raw.append((headers, body))
            hang = self.hang_next > 0
            self.hang_next -= 1 if hang else 0
            down = self.failing
        if hang:
            await asyncio.sleep(self.hang_seconds)
        if down:
            return Response(status_code=500)
        try:
            payload = Webhook(self.secret or "").verify(body, headers)
        except WebhookVerificationError:
            with self.lock:
                self.rejected += 1
            return Response(status_code=401)
        with self.lock:
            if headers["webhook-id"] in self.seen:
                self.duplicates += 1
            else:
                self.seen[headers["webhook-id"]] = payload
        return Response(status_code=204)

    def of_case(self, case_id: str) -> list[dict[str, Any]]:
        with self.lock:
            mine = [p for p in self.seen.values() if p["data"]["caseId"] == case_id]
        return sorted(mine, key=lambda p: p["data"]["occurredAt"])


class Stack:
    def __init__(self, api: Api, settings: Settings, receiver: Receiver) -> None:
        self.api, self.settings, self.receiver = api, settings, receiver
        self.operator = api.login(OPERATOR)

    @property
    def platform(self) -> Platform:
        return self.api.client.app.state.platform  # type: ignore[attr-defined,no-any-return]

    def create(self, url: str | None = None, **extra: Any) -> tuple[str, str]:
        made = self.api.ok(
            "createWebhookEndpoint",
            {"url": url or self.receiver.url, **extra},
            f"secret {ENDPOINT}",
            self.operator,
        )
        self.receiver.secret = made["secret"]
        return made["endpoint"]["id"], made["secret"]

    def endpoint(self, endpoint_id: str, deliveries: str = "") -> dict[str, Any]:
        query = (
            "query($id: ID!) { webhookEndpoint(id: $id) { id enabled disabledReason consecutiveFailures "
            f"{deliveries} }} }}"
        )
        return dict(self.api.gql(query, self.operator, id=endpoint_id)["webhookEndpoint"])

    def log(self, endpoint_id: str) -> list[dict[str, Any]]:
        fields = (
            "deliveries(first: 100) { id eventId eventType status attemptCount nextAttemptAt "
            "attempts { statusCode error latencyMs manual } }"
        )
        return list(self.endpoint(endpoint_id, fields)["deliveries"])

    def rows(self, statement: Any) -> list[Any]:
        async def read() -> list[Any]:
            database = Database(self.settings.resolved_database_url)
            try:
                async with database.transaction() as session:
                    return list((await session.execute(statement)).all())
            finally:
                await database.dispose()

        return asyncio.run(read())


@pytest.fixture(params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    database_url = request.getfixturevalue("fresh_postgres_url") if request.param == "postgresql" else None
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, outbox_poll_seconds=0.05)
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    receiver = Receiver()
    platform = Platform.create(settings, load_entry_points=False)
    with serve(receiver.app) as base, TestClient(create_app(platform)) as client:
        receiver.url = f"{base}/hook"
        yield Stack(Api(client), settings, receiver)


def case_uuid(node: str) -> str:
    return base64.b64decode(node).decode().split(":", 1)[1]


def test_a_consultation_reaches_the_receiver_once_per_event(stack: Stack) -> None:
    api, receiver = stack.api, stack.receiver
    endpoint_id, secret = stack.create(description="Klinikksystemet")
    mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
    with structlog.testing.capture_logs() as logs:
        consultation(api, mother, clinician, "fake", None, None)
        node = api.gql("{ myCases(first: 5) { edges { node { id } } } }", mother)["myCases"]["edges"][0]
        case_id = case_uuid(node["node"]["id"])
        query = (
            select(DomainEvent.id, DomainEvent.type)
            .where(DomainEvent.case_id == uuid.UUID(case_id))
            .order_by(DomainEvent.seq)
        )
        events = api.wait_for(lambda: len(rows := stack.rows(query)) == 9 and rows, "the capture's event")
        api.wait_for(lambda: len(receiver.of_case(case_id)) >= len(events), "every event")
        api.wait_for(
            lambda: all(d["status"] == "delivered" for d in stack.log(endpoint_id)), "the delivery log"
        )
    received = receiver.of_case(case_id)
    assert [(p["data"]["id"], p["type"]) for p in received] == [(str(i), t) for i, t in events]
    assert receiver.duplicates == 0 and receiver.rejected == 0
    with receiver.lock:
        assert len([h for h, _ in receiver.raw if h["webhook-id"] in {str(i) for i, _ in events}]) == 9
    submitted = next(p for p in received if p["type"] == "case.submitted")
    assert set(submitted) == {"type", "timestamp", "data"}
    assert submitted["data"] == {
        "id": submitted["data"]["id"],
        "type": "case.submitted",
        "occurredAt": submitted["timestamp"],
        "caseId": case_id,
        "caseStatus": "SUBMITTED",
        "actorRole": "patient",
    }
    reserved = next(p for p in received if p["type"] == "payment.reserved")
    assert reserved["data"]["payment_status"] == "authorized" and reserved["data"]["provider"] == "fake"
    # The log: one attempt each, a 204, its latency.
    log = [d for d in stack.log(endpoint_id) if d["eventId"] in {str(i) for i, _ in events}]
    assert len(log) == 9
    assert {(d["attemptCount"], d["attempts"][0]["statusCode"], d["attempts"][0]["error"]) for d in log} == {
        (1, 204, None)
    }
    # Nothing of the consultation's content or the people in what was sent; nothing secret in the log.
    with receiver.lock:
        bodies = b"".join(body for _, body in receiver.raw).decode()
    for sensitive in (MOTHER, CLINICIAN, DEMO_PEOPLE[2].given_name, "Hvile og væske", secret):
        assert sensitive not in bodies
    mine = [entry for entry in logs if entry["event"].startswith("webhook.")]
    assert {entry["event"] for entry in mine} == {"webhook.delivered"}
    flat = json.dumps(mine, default=str)
    for sensitive in (secret, secret.removeprefix("whsec_"), receiver.url, "127.0.0.1", '"data"'):
        assert sensitive not in flat


def test_an_outage_loses_no_event(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The receiver is down for more than ten minutes (on the schedule's clock: the schedule runs 500 times
    faster): the attempts at 0 s, 5 s and 5 min fail; it comes back before the one at 35 min, which gets
    through. Nothing is lost. The outage ends when every delivery has failed three times, not after a
    wall-clock time, so a slow machine changes nothing."""
    monkeypatch.setattr(delivery, "POLICY", delivery.POLICY.scaled(0.002))
    api, receiver = stack.api, stack.receiver
    endpoint_id, _ = stack.create(eventTypes=["CASE_STARTED", "CASE_CANCELLED"])
    mother = api.login(MOTHER)
    receiver.failing = True
    started = [api.ok("startCase", {}, "case { id }", mother)["case"]["id"] for _ in range(3)]
    api.ok("cancelCase", {"caseId": started[0]}, "case { status }", mother)
    api.wait_for(
        lambda: len(log := stack.log(endpoint_id)) == 4 and all(d["attemptCount"] >= 3 for d in log),
        "three failed attempts of each delivery",
    )
    receiver.failing = False
    api.wait_for(lambda: len(receiver.seen) == 4, "every event, after the outage")
    log = api.wait_for(
        lambda: (log := stack.log(endpoint_id)) and all(d["status"] == "delivered" for d in log) and log,
        "the delivery log",
    )
    assert sorted(d["eventType"] for d in log) == ["case.cancelled", *["case.started"] * 3]
    assert {d["eventId"] for d in log} == set(receiver.seen)
    assert receiver.duplicates == 0
    for d in log:
        *failed, last = d["attempts"]
        assert failed and all(a["statusCode"] == 500 and a["error"] == "http_status" for a in failed)
        assert last["statusCode"] == 204 and last["error"] is None
        assert d["nextAttemptAt"] is None
    assert min(d["attemptCount"] for d in log) == 4  # the fourth attempt, 35 minutes on, got through
    with receiver.lock:
        ids = [h["webhook-id"] for h, _ in receiver.raw]
    assert set(ids) == set(receiver.seen) and len(ids) > len(set(ids))  # the same id on every attempt


def test_failing_for_good_disables_the_endpoint(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every attempt fails (two time out, the rest answer 500): after the last one the delivery has
    failed and, with every delivery failing long enough (here at once), the endpoint is disabled with
    its reason. An operator enables it again and sends the delivery again."""
    policy = replace(delivery.POLICY.scaled(0.00001), disable_after=timedelta(0), timeout=0.3)
    monkeypatch.setattr(delivery, "POLICY", policy)
    api, receiver = stack.api, stack.receiver
    endpoint_id, _ = stack.create(eventTypes=["CASE_STARTED"])
    receiver.failing, receiver.hang_next = True, 2
    api.ok("startCase", {}, "case { id }", api.login(MOTHER))
    disabled = api.wait_for(lambda: not (e := stack.endpoint(endpoint_id))["enabled"] and e, "disabling")
    assert disabled["disabledReason"].startswith("Slått av automatisk")
    assert disabled["consecutiveFailures"] == 1
    [failed] = stack.log(endpoint_id)
    assert failed["status"] == "failed" and failed["attemptCount"] == len(policy.schedule) + 1 == 13
    errors = [a["error"] for a in failed["attempts"]]
    assert errors[:2] == ["timeout", "timeout"] and set(errors[2:]) == {"http_status"}

    refused = api.mutate("redeliverWebhook", {"deliveryId": failed["id"]}, "delivery { id }", stack.operator)
    assert refused["errors"][0]["code"] == "INVALID"
    enabled = api.ok("updateWebhookEndpoint", {"id": endpoint_id, "enabled": True}, ENDPOINT, stack.operator)
    assert enabled["endpoint"]["enabled"] and enabled["endpoint"]["disabledReason"] is None
    receiver.failing = False
    api.ok("redeliverWebhook", {"deliveryId": failed["id"]}, "delivery { id status }", stack.operator)
    again = api.wait_for(
        lambda: (d := stack.log(endpoint_id)[0])["status"] == "delivered" and d, "redelivery"
    )
    assert again["attempts"][-1] == {
        "statusCode": 204,
        "error": None,
        "latencyMs": again["attempts"][-1]["latencyMs"],
        "manual": True,
    }
    assert len(receiver.seen) == 1 and stack.endpoint(endpoint_id)["consecutiveFailures"] == 0


def test_a_forged_or_altered_delivery_is_refused_by_the_reference_library() -> None:
    secret, other = signing.new_secret(), signing.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    body = json.dumps({"type": "case.submitted", "data": {"id": "e1"}})
    now = datetime.now(UTC)
    good = signing.headers([secret], "msg_1", body, now)
    assert Webhook(secret).verify(body, good) == json.loads(body)
    forged = signing.headers([other], "msg_1", body, now)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, forged)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("submitted", "cancelled"), good)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**good, "webhook-id": "msg_2"})
    stale = signing.headers([secret], "msg_1", body, now - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, stale)


def test_secret_rotation_signs_with_both_during_the_grace_period(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, receiver = stack.api, stack.receiver
    endpoint_id, first = stack.create(eventTypes=["CASE_STARTED"])
    mother = api.login(MOTHER)

    def deliver() -> tuple[dict[str, str], bytes]:
        count = len(receiver.seen)
        api.ok("startCase", {}, "case { id }", mother)
        api.wait_for(lambda: len(receiver.seen) > count, "the delivery")
        with receiver.lock:
            return receiver.raw[-1]

    rotated = api.ok(
        "rotateWebhookSecret",
        {"id": endpoint_id},
        "secret endpoint { previousSecretExpiresAt }",
        stack.operator,
    )
    second = rotated["secret"]
    assert second != first and rotated["endpoint"]["previousSecretExpiresAt"]
    receiver.secret = second
    headers, body = deliver()
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (first, second):
        Webhook(secret).verify(body, headers)

    monkeypatch.setattr(delivery, "POLICY", replace(delivery.POLICY, secret_grace=timedelta(0)))
    third = api.ok("rotateWebhookSecret", {"id": endpoint_id}, "secret", stack.operator)["secret"]
    receiver.secret = third
    headers, body = deliver()
    assert len(headers["webhook-signature"].split(" ")) == 1
    Webhook(third).verify(body, headers)
    for old in (first, second):
        with pytest.raises(WebhookVerificationError):
            Webhook(old).verify(body, headers)


def test_the_secret_is_shown_once_and_sealed_at_rest(stack: Stack) -> None:
    api = stack.api
    endpoint_id, secret = stack.create()
    fields = api.gql('{ __type(name: "WebhookEndpoint") { fields { name } } }', stack.operator)
    assert not [
        f for f in fields["__type"]["fields"] if "secret" in f["name"].lower() and "At" not in f["name"]
    ]
    listed = api.gql(
        f"{{ webhookEndpoints {{ {ENDPOINT.split('{', 1)[1].rsplit('}', 1)[0]} }} }}", stack.operator
    )
    assert secret not in json.dumps(listed)
    [(sealed, previous)] = stack.rows(
        select(WebhookEndpoint.secret_sealed, WebhookEndpoint.previous_secret_sealed)
    )
    raw = base64.b64decode(secret.removeprefix("whsec_"))
    assert previous is None and secret.encode() not in sealed and raw not in sealed
    # Every change is in the access log, as the operator's.
    changed = {"id": endpoint_id, "description": "Ny", "eventTypes": None}
    api.ok("updateWebhookEndpoint", changed, ENDPOINT, stack.operator)
    api.ok("updateWebhookEndpoint", {"id": endpoint_id, "enabled": False}, ENDPOINT, stack.operator)
    api.ok("rotateWebhookSecret", {"id": endpoint_id}, "secret", stack.operator)
    assert api.ok("deleteWebhookEndpoint", {"id": endpoint_id}, "deletedId", stack.operator)["deletedId"]
    logged = stack.rows(
        select(AuditEvent.action, AuditEvent.actor_role)
        .where(AuditEvent.object_type == "webhook_endpoint", AuditEvent.object_id == endpoint_id)
        .order_by(AuditEvent.id)
    )
    assert [tuple(row) for row in logged] == [
        (action, "operator") for action in ("create", "update", "disable", "rotate_secret", "delete")
    ]
    assert api.gql("{ webhookEndpoints { id } }", stack.operator)["webhookEndpoints"] == []


def test_private_addresses_are_refused_in_production(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    api, receiver = stack.api, stack.receiver
    local_id, _ = stack.create(eventTypes=["CASE_STARTED"])  # development: a local receiver is fine
    mother = api.login(MOTHER)
    names = {
        "hooks.example": ["93.184.216.34"],
        "rebind.example": ["93.184.216.35"],
        "localhost": ["127.0.0.1"],
    }

    async def resolve(host: str, port: int) -> list[str]:
        return names.get(host) or [host.strip("[]")]

    monkeypatch.setattr(addresses, "resolve", resolve)
    monkeypatch.setattr(stack.platform.settings, "environment", Environment.PRODUCTION)
    for url in (
        receiver.url,  # http
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://224.0.0.1/hook",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "https://user:pw@hooks.example/hook",
    ):
        refused = api.mutate("createWebhookEndpoint", {"url": url}, "secret", stack.operator)
        assert [(e["field"], e["code"]) for e in refused["errors"]] == [("url", "INVALID")], url
        assert refused["secret"] is None
    fine, _ = stack.create("https://hooks.example/hook", eventTypes=["CASE_STARTED"])
    rebind, _ = stack.create("https://rebind.example/hook", eventTypes=["CASE_STARTED"])
    names["rebind.example"] = ["93.184.216.35", "127.0.0.1"]  # DNS rebinding after the check
    receiver.secret = None
    api.ok("startCase", {}, "case { id }", mother)
    for endpoint_id in (local_id, rebind):
        attempt = api.wait_for(
            lambda endpoint_id=endpoint_id: (log := stack.log(endpoint_id)) and log[0]["attempts"],
            "an attempt",
        )[0]
        assert attempt["error"] == "address_refused" and attempt["statusCode"] is None
    assert stack.log(fine)  # a public address is tried (it is not reachable from here)
    with receiver.lock:
        assert receiver.raw == []
    assert addresses.is_public("93.184.216.34") and not addresses.is_public("fd00::1")


def test_only_operators_manage_endpoints_and_read_the_log(stack: Stack) -> None:
    api = stack.api
    endpoint_id, _ = stack.create(eventTypes=["CASE_STARTED"])
    mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
    api.ok("startCase", {}, "case { id }", mother)
    [d] = api.wait_for(lambda: stack.log(endpoint_id), "a delivery")
    mutations = {
        "createWebhookEndpoint": {"url": stack.receiver.url},
        "updateWebhookEndpoint": {"id": endpoint_id, "enabled": False},
        "deleteWebhookEndpoint": {"id": endpoint_id},
        "rotateWebhookSecret": {"id": endpoint_id},
        "redeliverWebhook": {"deliveryId": d["id"]},
    }
    for token, code in ((mother, "FORBIDDEN"), (clinician, "FORBIDDEN"), (None, "UNAUTHENTICATED")):
        for name, input in mutations.items():
            payload = api.mutate(name, input, "__typename", token)
            assert [e["code"] for e in payload["errors"]] == [code], (name, payload)
        for query in (
            "{ webhookEndpoints { id } }",
            f'{{ webhookEndpoint(id: "{endpoint_id}") {{ deliveries {{ id }} }} }}',
        ):
            result = api.raw(query, token)
            assert result["data"] is None
            assert [e["extensions"]["code"] for e in result["errors"]] == [code]
    missing = "00000000-0000-4000-8000-000000000000"
    payload = api.mutate("redeliverWebhook", {"deliveryId": missing}, "__typename", stack.operator)
    assert [e["code"] for e in payload["errors"]] == ["NOT_FOUND"]
    result = api.raw(f'{{ webhookEndpoint(id: "{missing}") {{ id }} }}', stack.operator)
    assert result["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert stack.endpoint(endpoint_id)["enabled"]  # nothing the others tried changed it
