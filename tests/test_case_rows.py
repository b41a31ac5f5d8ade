"""A page of cases whose nodes ask only for plain fields, the patient and the payment is read as rows, in
one query (schema/case_rows.py); any other field takes the ORM path. Both answer the same."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform.db import models
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.engine import Database
from legetime.core.platform.db.models import AuditEvent
from legetime.core.platform.runtime import Platform
from tests.api import Api
from tests.test_query_counts import add_cases

CLINICIAN, MOTHER, CHILD = (DEMO_PEOPLE[i].national_id for i in (0, 2, 3))

NODE = """id number status outcome forChild questionnaireKey questionnaireVersion
  price { amount currency formatted } slaDueAt submittedAt answeredAt closedAt cancelledAt createdAt
  retentionUntil communicationDeletedAt overdue allowedActions assignedToMe __typename
  patient { givenName familyName birthDate age }
  payment { provider status amount { amount currency } authorized captured released expiresAt actionUrl }"""
PAGE = "edges { cursor node { %s } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
MY_CASES = "query($after: String) { myCases(first: 4, after: $after) { %s } }"
QUEUE = "{ caseQueue(first: 50) { %s } }"
ORM_ONLY = " messages { id }"  # a field a row does not answer: the ORM path


def newer_reservation(platform: Platform, status: str) -> str:
    """A second, newer reservation on the newest submitted case; returns that case's number."""

    async def add() -> str:
        database = Database(platform.settings.resolved_database_url)
        try:
            async with database.transaction() as session:
                case = await session.scalar(
                    select(models.Case)
                    .where(models.Case.status == models.CaseStatus.SUBMITTED)
                    .order_by(models.Case.created_at.desc())
                )
                assert case is not None
                session.add(
                    models.PaymentReservation(
                        case_id=case.id,
                        provider="fake",
                        provider_payment_id="newer",
                        idempotency_key="newer",
                        amount=35000,
                        currency="NOK",
                        authorized_amount=35000,
                        captured_amount=35000,
                        status=status,
                        created_at=utcnow() + timedelta(minutes=1),
                    )
                )
                return case.number
        finally:
            await database.dispose()

    return asyncio.run(add())


def without_orm_only(page: dict[str, Any]) -> dict[str, Any]:
    for edge in page["edges"]:
        edge["node"].pop("messages")
    return page


def test_rows_answer_as_the_orm_path(served: tuple[Api, Platform]) -> None:
    api, platform = served
    add_cases(platform, 6)
    mother = api.login(MOTHER)
    child_case = {"child": {"nationalId": CHILD, "givenName": "Ingrid", "guardianDeclared": True}}
    api.ok("startCase", child_case, "case { id }", mother)  # a guardian's draft: the child's name, no payment
    number = newer_reservation(platform, "captured")

    pages: list[dict[str, Any]] = []
    after = None
    while True:
        rows = api.gql(MY_CASES % (PAGE % NODE), mother, after=after)["myCases"]
        orm = api.gql(MY_CASES % (PAGE % (NODE + ORM_ONLY)), mother, after=after)["myCases"]
        assert rows == without_orm_only(orm)
        pages.append(rows)
        if not rows["pageInfo"]["hasNextPage"]:
            break
        after = rows["pageInfo"]["endCursor"]
    nodes = [edge["node"] for page in pages for edge in page["edges"]]
    assert len(nodes) == 7 and len(pages) == 2
    child = next(node for node in nodes if node["forChild"])
    assert child["patient"]["givenName"] == "Ingrid" and child["payment"] is None
    newest = next(node for node in nodes if node["number"] == number)
    assert newest["payment"]["status"] == "captured"  # the newest reservation, not the first

    clinician = api.login(CLINICIAN)
    rows = api.gql(QUEUE % (PAGE % NODE), clinician)["caseQueue"]
    assert rows == without_orm_only(api.gql(QUEUE % (PAGE % (NODE + ORM_ONLY)), clinician)["caseQueue"])
    assert len(rows["edges"]) == 6


def listed(platform: Platform) -> list[tuple[Any, ...]]:
    """The access log's "list" entries so far, oldest first, as (actor, role, person, case, reason)."""

    async def read() -> list[tuple[Any, ...]]:
        database = Database(platform.settings.resolved_database_url)
        try:
            async with database.transaction() as session:
                rows = await session.execute(
                    select(
                        AuditEvent.actor_id,
                        AuditEvent.actor_role,
                        AuditEvent.person_id,
                        AuditEvent.object_id,
                        AuditEvent.reason,
                    )
                    .where(AuditEvent.action == "list", AuditEvent.object_type == "case")
                    .order_by(AuditEvent.id)
                )
                return [tuple(row) for row in rows]
        finally:
            await database.dispose()

    return asyncio.run(read())


def test_a_page_logs_the_cases_it_shows_as_the_orm_path_does(served: tuple[Api, Platform]) -> None:
    """On PostgreSQL the rows' statement writes its own entries (``audit.logging_select``); on SQLite,
    and on the ORM path, the request's buffer does. The same entries: one per case shown, not for the row
    read ahead to know there is a next page, by the reader as herself, no reason."""
    api, platform = served
    add_cases(platform, 6)
    mother = api.login(MOTHER)
    first = api.gql(MY_CASES % (PAGE % "id"), mother, after=None)["myCases"]
    by_rows = listed(platform)
    api.gql(MY_CASES % (PAGE % ("id" + ORM_ONLY)), mother, after=None)
    by_orm = listed(platform)[len(by_rows) :]
    assert len(first["edges"]) == 4 and first["pageInfo"]["hasNextPage"]
    assert sorted(by_rows, key=str) == sorted(by_orm, key=str) and len(by_rows) == 4
    shown = {str(relay_id(edge["node"]["id"])) for edge in first["edges"]}
    assert {entry[3] for entry in by_rows} == shown
    assert {(entry[1], entry[4]) for entry in by_rows} == {("patient", None)}

    clinician = api.login(CLINICIAN)
    before = len(listed(platform))
    api.gql(QUEUE % (PAGE % "id"), clinician)
    queue = listed(platform)[before:]
    assert len(queue) == 6 and {(entry[1], entry[4]) for entry in queue} == {("clinician", "treatment")}


def relay_id(global_id: str) -> str:
    from strawberry import relay

    return str(relay.GlobalID.from_id(global_id).node_id)
