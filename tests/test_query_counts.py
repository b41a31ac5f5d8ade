"""The case list and the queue load with a fixed number of SQL statements, whatever the page size: nested
fields go through per-request DataLoaders and the reads are logged in one batched insert."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from starlette.testclient import TestClient

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.identity import persons
from legetime.core.platform.config import Settings
from legetime.core.platform.db import models
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.engine import Database
from legetime.core.platform.runtime import Platform
from legetime.core.protection import content
from legetime.schema.app import create_app
from tests.api import Api
from tests.conftest import seed_demo
from tests.migrated import upgrade

MOTHER, CLINICIAN = DEMO_PEOPLE[2].national_id, DEMO_PEOPLE[0].national_id

LIST = """query($n: Int!) { myCases(first: $n) { edges { cursor node { id number status overdue
  patient { age } messages { body } attachments { width } payment { status } journalNotes { status } } }
  pageInfo { hasNextPage endCursor } } }"""
QUEUE = """query($n: Int!) { caseQueue(first: $n) { edges { node { id number slaDueAt overdue patient { age }
  messages { body } payment { status } } } } }"""


def add_cases(platform: Platform, n: int) -> None:
    async def add() -> None:
        database = Database(platform.settings.resolved_database_url)
        try:
            async with database.transaction() as session:
                mother = await persons.find_person(session, platform, MOTHER)
                assert mother is not None
                now = utcnow()
                for i in range(n):
                    case = models.Case(
                        id=uuid.uuid4(),
                        number=f"LT-T{i:05d}",
                        subject_id=mother.id,
                        requester_id=mother.id,
                        requester_role=models.RequesterRole.SELF,
                        status=models.CaseStatus.SUBMITTED,
                        price_amount=35000,
                        price_currency="NOK",
                        submitted_at=now,
                        sla_due_at=now + timedelta(hours=i),
                        created_at=now - timedelta(minutes=i),
                    )
                    content.give_case_keys(platform.keyring, case)
                    session.add(case)
                    await session.flush()
                    session.add(
                        models.Message(
                            case_id=case.id,
                            author_id=mother.id,
                            author_role=models.ParticipantRole.PATIENT,
                            body_sealed=content.seal_message(platform.keyring, case, "Hei"),
                        )
                    )
                    session.add(
                        models.PaymentReservation(
                            case_id=case.id,
                            provider="fake",
                            provider_payment_id=f"p{i}",
                            idempotency_key=f"k{i}",
                            amount=35000,
                            currency="NOK",
                            authorized_amount=35000,
                            status="authorized",
                        )
                    )
        finally:
            await database.dispose()

    asyncio.run(add())


@pytest.fixture
def quiet(tmp_path: Path) -> Iterator[tuple[Api, Platform]]:
    """The embedded platform without in-process jobs: the outbox relay's polling would be counted too."""
    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    platform = Platform.create(settings, load_entry_points=False)
    with TestClient(create_app(platform, run_jobs_in_process=False)) as client:
        yield Api(client), platform


@pytest.fixture
def counter(quiet: tuple[Api, Platform]) -> Iterator[list[str]]:
    statements: list[str] = []
    db = quiet[1].db
    engines = {db.engine.sync_engine, db.read_engine.sync_engine}  # on SQLite reads have their own

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    yield statements
    for engine in engines:
        event.remove(engine, "before_cursor_execute", count)


def test_statements_do_not_grow_with_the_page(quiet: tuple[Api, Platform], counter: list[str]) -> None:
    api, platform = quiet
    add_cases(platform, 100)
    mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
    figures = {}
    for size in (1, 10, 100):
        for name, query, token, field in (
            ("myCases", LIST, mother, "myCases"),
            ("caseQueue", QUEUE, clinician, "caseQueue"),
        ):
            counter.clear()
            data = api.gql(query, token, n=size)
            assert len(data[field]["edges"]) == size
            figures[(name, size)] = len(counter)
    for name in ("myCases", "caseQueue"):
        assert figures[(name, 1)] == figures[(name, 10)] == figures[(name, 100)], figures
    # And no more than needed. myCases on SQLite: BEGIN and one SELECT for the bearer token (with the
    # staff roles); BEGIN, the page, then one SELECT per relation asked for (patient, messages,
    # attachments, payment, journal notes); BEGIN IMMEDIATE and one INSERT for the access log.
    assert figures[("myCases", 1)] <= 11 and figures[("caseQueue", 1)] <= 9, figures
    print(figures)
