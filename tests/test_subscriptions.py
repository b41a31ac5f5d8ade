"""GraphQL subscriptions over ``graphql-transport-ws``, driven by a real client (gql's websockets
transport) against a real server: a patient follows her case through a whole consultation and sees its
updates in order; another patient sees nothing of it; a socket must log in before anything else."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport
from sqlalchemy import update
from strawberry import relay

from legetime.core import core_plugin
from legetime.core.platform.config import Settings
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.engine import Database
from legetime.core.platform.db.models import AuthSession, Case
from legetime.core.platform.runtime import Platform
from legetime.schema import live_api, live_sockets
from legetime.schema.app import create_app
from tests.api import Api
from tests.cli import deployed
from tests.conftest import seed_demo
from tests.migrated import upgrade
from tests.test_flow_per_provider import CLINICIAN, MOTHER, consultation
from tests.test_payment_handoff import OPERATOR

UPDATES = gql("subscription { caseUpdates { caseId type status } }")
QUEUE = gql("subscription { queueUpdates { caseId type status } }")
FIGURES = gql("subscription { operationFigures { openCases overdueCases byStatus { status count } } }")
OTHER_PATIENT = "17889230266"  # a synthetic adult who is not in the demo


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The platform under uvicorn (with its lifespan; without Redis its jobs run in the process) on a free
    port."""
    platform = Platform.create(settings, load_entry_points=False)
    config = uvicorn.Config(
        create_app(platform), host="127.0.0.1", port=0, log_level="warning", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


async def expire_sessions(database_url: str) -> None:
    database = Database(database_url)
    async with database.transaction() as session:
        await session.execute(update(AuthSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    await database.dispose()


def closed_with(error: BaseException) -> tuple[int, str] | None:
    """The close code and reason the server ended a socket with, from the client's error."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, websockets.ConnectionClosed) and cause.rcvd is not None:
            return cause.rcvd.code, cause.rcvd.reason
        cause = cause.__cause__ or cause.__context__
    return None


class Follower:
    """A subscription in a thread of its own, as a frontend keeps one open: what it received."""

    def __init__(self, address: str, token: str, document: Any = UPDATES) -> None:
        self.document = document
        self.received: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=asyncio.run, args=(self._follow(address, token),), daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the subscription did not start"

    async def _follow(self, address: str, token: str) -> None:
        transport = WebsocketsTransport(
            url=f"ws://{address}/graphql",
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],  # graphql-transport-ws
            init_payload={"Authorization": f"Bearer {token}"},
        )
        try:
            async with Client(transport=transport) as session:
                stream = session.subscribe(self.document)
                waiting = asyncio.ensure_future(stream.__anext__())
                await asyncio.sleep(0.3)  # subscribed (the server has registered it) before the test acts
                self.ready.set()
                while not self.stop.is_set():
                    done, _ = await asyncio.wait({waiting}, timeout=0.1)
                    if done:
                        self.received.append(next(iter(waiting.result().values())))
                        waiting = asyncio.ensure_future(stream.__anext__())
                waiting.cancel()
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    def close(self) -> list[dict[str, Any]]:
        self.stop.set()
        self.thread.join(10)
        assert self.error is None, self.error
        return self.received

    def refusal(self) -> BaseException:
        """The error that ended the subscription (the server refused it)."""
        self.thread.join(10)
        assert self.error is not None, "the subscription was not refused"
        return self.error


def test_a_patient_follows_her_case_and_another_patient_sees_none_of_it(address: str) -> None:
    with httpx.Client(base_url=f"http://{address}", timeout=30) as client:
        api = Api(client)  # type: ignore[arg-type]
        mother, clinician, other = api.login(MOTHER), api.login(CLINICIAN), api.login(OTHER_PATIENT)
        hers, theirs = Follower(address, mother), Follower(address, other)
        consultation(api, mother, clinician, "fake", None, None)
        case_id = api.gql("{ myCases(first: 1) { edges { node { id } } } }", mother)["myCases"]["edges"][0][
            "node"
        ]["id"]
        expected = [
            ("case.started", "DRAFT"),
            ("case.submitted", "SUBMITTED"),
            ("case.claimed", "IN_REVIEW"),
            ("case.answered", "ANSWERED"),
            ("case.closed", "CLOSED"),
        ]

        def seen() -> list[tuple[str, str]]:
            return [(u["type"], u["status"]) for u in hers.received if u["type"].startswith("case.")]

        api.wait_for(lambda: len(seen()) >= len(expected), "her case's updates")
        time.sleep(0.5)  # anything late for the other patient would have arrived too
        received, others = hers.close(), theirs.close()
    assert seen() == expected
    assert {u["caseId"] for u in received} == {case_id}
    assert others == []


def test_a_clinician_follows_the_queue_and_a_patient_may_not(address: str) -> None:
    with httpx.Client(base_url=f"http://{address}", timeout=30) as client:
        api = Api(client)  # type: ignore[arg-type]
        mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
        queue = Follower(address, clinician, QUEUE)
        consultation(api, mother, clinician, "fake", None, None)
        api.wait_for(lambda: [u for u in queue.received if u["type"] == "case.answered"], "the answered case")
        received = queue.close()
        refused = Follower(address, mother, QUEUE).refusal()
    assert [(u["type"], u["status"]) for u in received] == [
        ("case.submitted", "SUBMITTED"),
        ("case.claimed", "IN_REVIEW"),
        ("case.answered", "ANSWERED"),
    ]
    assert "Bare leger har tilgang." in str(refused)


def test_a_case_past_its_deadline_shows_in_the_queue_as_overdue_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its deadline is moved into the past while the clinician holds it (the simulated clock): the
    periodic job flags it, once, however often it runs."""
    monkeypatch.setattr(core_plugin, "OVERDUE_EVERY", timedelta(seconds=0.2))
    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings.resolved_database_url)
    seed_demo(settings)

    async def move_deadline(case_node: str) -> None:
        database = Database(settings.resolved_database_url)
        async with database.transaction() as session:
            case_id = uuid.UUID(relay.GlobalID.from_id(case_node).node_id)
            past = utcnow() - timedelta(minutes=5)
            await session.execute(update(Case).where(Case.id == case_id).values(sla_due_at=past))
        await database.dispose()

    with serving(settings) as address, httpx.Client(base_url=f"http://{address}", timeout=30) as client:
        api = Api(client)  # type: ignore[arg-type]
        mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
        queue = Follower(address, clinician, QUEUE)

        def overdue() -> list[dict[str, Any]]:
            return [u for u in queue.received if u["type"] == "case.overdue"]

        def late(case_id: str) -> None:
            asyncio.run(move_deadline(case_id))
            api.wait_for(overdue, "the overdue case")
            time.sleep(0.6)  # the job runs three more times

        consultation(api, mother, clinician, "fake", None, None, before_answer=late)
        api.wait_for(lambda: [u for u in queue.received if u["type"] == "case.answered"], "the answer")
        received = queue.close()
    assert [(u["type"], u["status"]) for u in received] == [
        ("case.submitted", "SUBMITTED"),
        ("case.claimed", "IN_REVIEW"),
        ("case.overdue", "IN_REVIEW"),
        ("case.answered", "ANSWERED"),
    ]


def test_an_operator_follows_the_figures_and_a_clinician_may_not(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_api, "FIGURES_EVERY", 0.1)
    with httpx.Client(base_url=f"http://{address}", timeout=30) as client:
        api = Api(client)  # type: ignore[arg-type]
        mother, clinician, operator = api.login(MOTHER), api.login(CLINICIAN), api.login(OPERATOR)
        figures = Follower(address, operator, FIGURES)
        closed = {"status": "CLOSED", "count": 1}

        def shown_open(case_id: str) -> None:  # the figures tick while the case is open, however fast it is
            api.wait_for(lambda: figures.received and figures.received[-1]["openCases"] == 1, "the open case")

        consultation(api, mother, clinician, "fake", None, None, before_answer=shown_open)
        api.wait_for(lambda: figures.received and figures.received[-1]["byStatus"] == [closed], "the figures")
        received = figures.close()
        refused = Follower(address, clinician, FIGURES).refusal()
    assert received[0]["openCases"] == 0  # the figures at once, before any change
    opened = [f["openCases"] for f in received]
    assert max(opened) == 1 and opened[-1] == 0
    assert "Bare driftsoperatører har tilgang." in str(refused)


def test_a_logout_closes_the_sockets_of_its_session_at_once(address: str) -> None:
    with httpx.Client(base_url=f"http://{address}", timeout=30) as client:
        api = Api(client)  # type: ignore[arg-type]
        on_the_socket, in_the_app = api.login(MOTHER), api.login(MOTHER)
        hers, her_other_device = Follower(address, on_the_socket), Follower(address, in_the_app)
        api.ok("startCase", {}, "case { id }", in_the_app)
        api.wait_for(lambda: hers.received, "the started case")
        api.gql("mutation { logout { ok } }", on_the_socket)
        ended = hers.refusal()  # no further update needed: the logout closed it
        received = her_other_device.close()  # her other session's socket stays open
    assert [u["type"] for u in hers.received] == ["case.started"]
    assert closed_with(ended) == (4403, "Session ended")
    assert [u["type"] for u in received] == ["case.started"]


def test_a_session_that_ended_unnoticed_is_closed_at_the_next_check(
    address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An expired session (or a logout signal that was lost) is found by the periodic check."""
    monkeypatch.setattr(live_sockets, "CHECK_SECONDS", 0.2)
    with httpx.Client(base_url=f"http://{address}", timeout=30) as client:
        api = Api(client)  # type: ignore[arg-type]
        token = api.login(MOTHER)
        hers = Follower(address, token)
        asyncio.run(expire_sessions(Settings(data_dir=tmp_path / "data").resolved_database_url))
        ended = hers.refusal()
    assert closed_with(ended) == (4403, "Session ended")


def test_idle_sockets_and_one_too_many_are_closed(address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_sockets, "CHECK_SECONDS", 0.2)
    monkeypatch.setattr(live_sockets, "IDLE_SECONDS", 0.5)

    async def open_sockets(token: str, count: int, subscribe: bool) -> list[tuple[int | None, str]]:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        sockets = []
        for number in range(count):
            ws = await websockets.connect(f"ws://{address}/graphql", subprotocols=["graphql-transport-ws"])
            await ws.send(json.dumps(init))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            if subscribe:
                query = {"query": "subscription { caseUpdates { caseId } }"}
                await ws.send(json.dumps({"type": "subscribe", "id": str(number), "payload": query}))
            sockets.append(ws)
        await asyncio.sleep(1.5)  # several checks, and idle for longer than IDLE_SECONDS
        ends = []
        for ws in sockets:
            with contextlib.suppress(asyncio.TimeoutError, websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 0.5)
            ends.append((ws.close_code, ws.close_reason))
            await ws.close()
        return ends

    with httpx.Client(base_url=f"http://{address}", timeout=30) as client:
        api = Api(client)  # type: ignore[arg-type]
        mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
    idle = asyncio.run(open_sockets(clinician, 1, subscribe=False))
    busy = asyncio.run(open_sockets(mother, live_sockets.MAX_CONNECTIONS_PER_PERSON + 1, subscribe=True))
    assert idle == [(1000, "Idle")]
    # Subscribed sockets are not idle; the sixth closed the oldest.
    assert busy[0] == (4429, "Too many connections: the oldest was closed")
    assert {code for code, _ in busy[1:]} == {None}


@pytest.mark.redis
def test_an_update_committed_through_one_api_process_reaches_a_subscriber_of_another(
    tmp_path: Path, fresh_postgres_url: str, redis_url: str
) -> None:
    """Two `legetime serve` processes and a `legetime worker` on PostgreSQL and Redis, as deployed: she
    follows her case on one, while her requests (and the jobs they cause, in the worker) go to the
    other; the updates reach her through Redis."""
    with (
        deployed(tmp_path, fresh_postgres_url, redis_url) as deployment,
        httpx.Client(base_url=deployment.first, timeout=30) as client,
    ):
        api = Api(client)  # type: ignore[arg-type]
        mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
        hers = Follower(deployment.second.removeprefix("http://"), mother)
        consultation(api, mother, clinician, "fake", None, None)
        api.wait_for(lambda: [u for u in hers.received if u["type"] == "case.closed"], "the closed case")
        received = hers.close()
    kinds = [u["type"] for u in received if u["type"].startswith("case.")]
    assert kinds == ["case.started", "case.submitted", "case.claimed", "case.answered", "case.closed"]


def test_nothing_is_accepted_before_a_login_over_the_socket(address: str) -> None:
    async def attempt(init: dict[str, Any] | None) -> tuple[int | None, list[Any]]:
        messages: list[Any] = []
        async with websockets.connect(f"ws://{address}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            if init is not None:
                await ws.send(json.dumps({"type": "connection_init", "payload": init}))
            subscribe = {"query": "subscription { caseUpdates { caseId } }"}
            await ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": subscribe}))
            try:
                async for message in ws:
                    messages.append(json.loads(message))
            except websockets.ConnectionClosed:
                pass
            return ws.close_code, messages

    assert asyncio.run(attempt(None)) == (4401, [])  # subscribe before connection_init
    assert asyncio.run(attempt({"Authorization": "Bearer not-a-token"})) == (4403, [])
    assert asyncio.run(attempt({})) == (4403, [])


def test_the_legacy_protocol_and_a_flood_of_subscriptions_are_refused(address: str) -> None:
    """The strawberry advisories CVE-2026-35523 (the legacy graphql-ws protocol ran subscriptions without
    connection_init) and CVE-2026-35526 (no limit on subscriptions per socket): only graphql-transport-ws
    is offered, and a socket holds at most ten operations."""

    async def legacy() -> tuple[int | None, list[Any]]:
        messages: list[Any] = []
        async with websockets.connect(f"ws://{address}/graphql", subprotocols=["graphql-ws"]) as ws:
            start = {"query": "subscription { caseUpdates { caseId } }"}
            try:
                await ws.send(json.dumps({"type": "start", "id": "1", "payload": start}))  # no init
                async for message in ws:
                    messages.append(json.loads(message))
            except websockets.ConnectionClosed:
                pass
            return ws.close_code, messages

    assert asyncio.run(legacy()) == (4406, [])  # "Subprotocol not acceptable", before anything runs

    async def flood(token: str) -> list[Any]:
        answers: list[Any] = []
        async with websockets.connect(f"ws://{address}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            init = {"Authorization": f"Bearer {token}"}
            await ws.send(json.dumps({"type": "connection_init", "payload": init}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            subscribe = {"query": "subscription { caseUpdates { caseId } }"}
            for n in range(12):
                await ws.send(json.dumps({"type": "subscribe", "id": str(n), "payload": subscribe}))
            while len(answers) < 2:
                answers.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        return answers

    with httpx.Client(base_url=f"http://{address}", timeout=30) as client:
        token = Api(client).login(MOTHER)  # type: ignore[arg-type]
    refused = asyncio.run(flood(token))
    assert [(a["type"], a["id"], a["payload"][0]["message"]) for a in refused] == [
        ("error", "10", "Subscription limit reached"),
        ("error", "11", "Subscription limit reached"),
    ]
