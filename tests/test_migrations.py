"""Alembic migrations: the same migrations go up and down on SQLite and PostgreSQL, and the models
match them exactly (no drift)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import legetime.core.platform.db.appointment_models
import legetime.core.platform.db.models  # noqa: F401
from legetime.core.identity import persons
from legetime.core.platform.db.base import Base
from legetime.core.platform.db.engine import Database
from legetime.core.platform.db.migrate import (
    PLUGIN_VERSION_TABLE,
    current_head,
    downgrade,
    installed_tables,
    upgrade,
)
from legetime.core.platform.db.plugin_tables import plugin_database_url
from tests.cli import run_cli

TABLES = {
    "person",
    "staff_membership",
    "consultation_case",
    "participant",
    "consent",
    "message",
    "attachment",
    "payment_reservation",
    "journal_note",
    "audit_event",
    "outbox_job",
    "sms_attempt",
    "login_transaction",
    "auth_session",
    "notification",
    "case_statistic",
    "case_erasure",
    "retention_run",
    "domain_event",
    "case_overdue",
    "case_sla_alert",
    "on_duty_phone",
    "integrator_account",
    "runtime_settings",
    "webhook_endpoint",
    "clinic",
    "appointment_type",
    "appointment",
    "appointment_form",
    "appointment_payment",
    "appointment_text",
    "invoice",
    "survey_invitation",
    "survey_answer",
    "appointment_erasure",
    "appointment_statistic",
    "webhook_delivery",
    "webhook_attempt",
}
# On PostgreSQL the plugins' tables are in the same database (tests/test_plugin_state.py has their tests).
PLUGINS = installed_tables()
PLUGIN_TABLES = {name for tables in PLUGINS for name in tables.metadata.tables} | {PLUGIN_VERSION_TABLE}


def _core_only(name: str | None, type_: str, parent_names: Any) -> bool:
    return type_ != "table" or name not in PLUGIN_TABLES


def _inspect(url: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        database = Database(url)
        try:
            async with database.engine.connect() as connection:

                def look(sync_connection: Any) -> dict[str, Any]:
                    options = {"compare_type": True, "include_name": _core_only}
                    context = MigrationContext.configure(sync_connection, opts=options)
                    tables = set(inspect(sync_connection).get_table_names())
                    return {
                        "tables": tables - {"alembic_version"} - PLUGIN_TABLES,
                        "revision": context.get_current_revision(),
                        "diff": compare_metadata(context, Base.metadata),
                    }

                return await connection.run_sync(look)
        finally:
            await database.dispose()

    return asyncio.run(run())


def test_migrations_up_down_up(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    state = _inspect(empty_database_url)
    assert state["tables"] == TABLES
    assert state["revision"] == current_head()

    downgrade(empty_database_url, "base")
    assert _inspect(empty_database_url)["tables"] == set()

    upgrade(empty_database_url)
    assert _inspect(empty_database_url)["tables"] == TABLES


def test_models_match_the_migrations(database_url: str) -> None:
    assert _inspect(database_url)["diff"] == []


def test_the_plugins_models_match_their_migrations(database_url: str) -> None:
    """Every installed plugin's tables (``register_tables``) as its own Alembic branch makes them."""

    async def run() -> list[Any]:
        database = Database(plugin_database_url(database_url))
        try:
            async with database.engine.connect() as connection:

                def look(sync_connection: Any) -> list[Any]:
                    diffs = []
                    for tables in PLUGINS:
                        mine = set(tables.metadata.tables)
                        options = {
                            "compare_type": True,
                            "include_name": lambda name, type_, parent, mine=mine: (
                                type_ != "table" or name in mine
                            ),
                        }
                        context = MigrationContext.configure(sync_connection, opts=options)
                        diffs += compare_metadata(context, tables.metadata)
                    return diffs

                return await connection.run_sync(look)
        finally:
            await database.dispose()

    assert {"outbox", "swedbank_pay"} <= {tables.prefix for tables in PLUGINS}
    assert asyncio.run(run()) == []


def test_legetime_migrate_creates_the_embedded_database(tmp_path: Path) -> None:
    data = tmp_path / "embedded"
    result = run_cli("migrate", env={"LEGETIME_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr
    assert (data / "legetime.db").exists()
    assert _inspect(f"sqlite+aiosqlite:///{data / 'legetime.db'}")["tables"] == TABLES


def test_existing_plaintext_is_sealed_on_upgrade_and_restored_on_downgrade(empty_database_url: str) -> None:
    """A database from before encryption at rest: 0003 seals what is there with the configured keys."""
    import uuid
    from datetime import UTC, datetime

    from sqlalchemy import Uuid, bindparam, text

    from legetime.core.platform.config import load_settings
    from legetime.core.platform.db import models
    from legetime.core.platform.db.base import UTCDateTime
    from legetime.core.platform.runtime import Platform
    from legetime.core.protection import content

    url = empty_database_url
    upgrade(url, "0002")
    person, case, message, note = (uuid.uuid4() for _ in range(4))
    now = datetime.now(UTC)

    async def seed() -> None:
        database = Database(url)
        try:
            async with database.transaction() as session:
                statements = [
                    (
                        "INSERT INTO person (id, national_id, given_name, family_name, birth_date, "
                        "created_at, updated_at) "
                        "VALUES (:id, '17889200022', 'Sofie', 'Johansen', '1992-08-17', :now, :now)",
                        {"id": person},
                    ),
                    (
                        "INSERT INTO consultation_case (id, number, subject_id, requester_id, "
                        "requester_role, status, answers, price_amount, price_currency, created_at, "
                        "updated_at, version) VALUES "
                        "(:id, 'LT-1', :p, :p, 'self', 'closed', :answers, 35000, 'NOK', :now, :now, 1)",
                        {"id": case, "p": person, "answers": '{"main_complaint": "Vondt i halsen"}'},
                    ),
                    (
                        "INSERT INTO message (id, case_id, author_id, author_role, kind, body, "
                        "withheld_from_guardian, created_at) VALUES "
                        "(:id, :c, :p, 'patient', 'message', 'Feber i natt', false, :now)",
                        {"id": message, "c": case, "p": person},
                    ),
                    (
                        "INSERT INTO journal_note (id, case_id, status, text, sections, created_at, "
                        "updated_at) "
                        "VALUES (:id, :c, 'approved', 'Halsbetennelse', '{}', :now, :now)",
                        {"id": note, "c": case},
                    ),
                ]
                for sql, values in statements:
                    typed = text(sql).bindparams(
                        *(bindparam(name, type_=Uuid()) for name in values if name in ("id", "p", "c")),
                        bindparam("now", type_=UTCDateTime()),
                    )
                    await session.execute(typed, {**values, "now": now})
        finally:
            await database.dispose()

    asyncio.run(seed())
    upgrade(url)

    async def read() -> tuple[str, dict[str, Any], str, str]:
        platform = Platform.create(load_settings(database_url=url), load_entry_points=False)
        try:
            async with platform.db.transaction() as session:
                row = await session.get(models.Person, person)
                sealed_case = await session.get(models.Case, case)
                sealed_message = await session.get(models.Message, message)
                sealed_note = await session.get(models.JournalNote, note)
                assert row and sealed_case and sealed_message and sealed_note
                assert b"Feber" not in sealed_message.body_sealed
                ring = platform.keyring
                found = await persons.find_person(session, platform, "17889200022")
                assert found is not None and found.id == person
                return (
                    persons.national_id(ring, row),
                    content.answers(ring, sealed_case),
                    content.message_body(ring, sealed_case, sealed_message),
                    content.note_content(ring, sealed_case, sealed_note)[0],
                )
        finally:
            await platform.close()

    assert asyncio.run(read()) == (
        "17889200022",
        {"main_complaint": "Vondt i halsen"},
        "Feber i natt",
        "Halsbetennelse",
    )

    downgrade(url, "0002")

    async def plain() -> tuple[Any, ...]:
        database = Database(url)
        try:
            async with database.transaction() as session:
                national_id = await session.scalar(text("SELECT national_id FROM person"))
                body = await session.scalar(text("SELECT body FROM message"))
                note_text = await session.scalar(text("SELECT text FROM journal_note"))
                return national_id, body, note_text
        finally:
            await database.dispose()

    assert asyncio.run(plain()) == ("17889200022", "Feber i natt", "Halsbetennelse")


def test_message_keys_two_authors_share_survive_a_downgrade_from_0005(empty_database_url: str) -> None:
    """0005 makes a message's key its author's; going back to one key per case keeps every message and
    the first author's key (the later one loses only the recognition of its retries)."""
    import uuid
    from datetime import UTC, date, datetime, timedelta

    from sqlalchemy import text

    from legetime.core.platform.db import models

    url = empty_database_url
    upgrade(url)  # seeded through today's models, then taken back to 0005 below
    people = [uuid.uuid4(), uuid.uuid4()]
    case_id, now = uuid.uuid4(), datetime.now(UTC)

    async def seed() -> None:
        database = Database(url)
        try:
            async with database.transaction() as session:
                for i, person in enumerate(people):
                    session.add(
                        models.Person(
                            id=person,
                            national_id_hash=f"{i}" * 64,
                            national_id_sealed=b"x",
                            key_id="local",
                            wrapped_key=b"x",
                            given_name="",
                            family_name="",
                            birth_date=date(1990, 1, 1),
                        )
                    )
                await session.flush()
                session.add(
                    models.Case(
                        id=case_id,
                        number="LT-TEST01",
                        subject_id=people[0],
                        requester_id=people[0],
                        requester_role=models.RequesterRole.SELF,
                        record_key_id="local",
                        record_key=b"x",
                        price_amount=35000,
                        price_currency="NOK",
                        idempotency_key="start",
                    )
                )
                await session.flush()
                for i, author in enumerate(people):
                    session.add(
                        models.Message(
                            case_id=case_id,
                            author_id=author,
                            author_role=models.ParticipantRole.PATIENT,
                            body_sealed=b"x",
                            idempotency_key="same",
                            created_at=now + timedelta(seconds=i),
                        )
                    )
        finally:
            await database.dispose()

    async def keys() -> list[Any]:
        database = Database(url)
        try:
            async with database.transaction() as session:
                query = text("SELECT idempotency_key FROM message ORDER BY created_at")
                return list((await session.scalars(query)).all())
        finally:
            await database.dispose()

    asyncio.run(seed())
    downgrade(url, "0005")
    downgrade(url, "0004")
    assert asyncio.run(keys()) == ["same", None]
    upgrade(url)
    assert asyncio.run(keys()) == ["same", None]


def test_an_access_log_chained_before_the_sequencer_verifies_after_it(empty_database_url: str) -> None:
    """0008: rows chained under the old lock, in id order (ids with gaps, as rolled-back appends leave),
    get their places 1, 2, 3 …; the chain verifies, and new rows chain on from its head."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from legetime.core.protection import audit

    url = empty_database_url
    upgrade(url, "0007")

    async def seed_old_chain() -> None:
        database = Database(url)
        try:
            async with database.transaction() as session:
                previous = None
                for i, row_id in enumerate((3, 4, 9, 10)):
                    row = {
                        "occurred_at": datetime(2026, 1, 1, 12, 0, i, tzinfo=UTC),
                        "actor_id": None,
                        "actor_role": "clinician",
                        "person_id": None,
                        "object_type": "case",
                        "object_id": str(i),
                        "action": "read",
                        "reason": None,
                        "prev_hash": previous,
                    }
                    previous = audit.row_hash(row)
                    await session.execute(
                        text(
                            "INSERT INTO audit_event (id, occurred_at, actor_id, actor_role, person_id,"
                            " object_type, object_id, action, reason, prev_hash, hash) VALUES (:id,"
                            " :occurred_at, :actor_id, :actor_role, :person_id, :object_type, :object_id,"
                            " :action, :reason, :prev_hash, :hash)"
                        ),
                        row | {"id": row_id, "hash": previous},
                    )
        finally:
            await database.dispose()

    async def check() -> tuple[list[str], audit.ChainReport]:
        database = Database(url)
        try:
            async with database.transaction() as session:
                await audit.record(
                    session,
                    actor_id=None,
                    actor_role="patient",
                    person_id=None,
                    object_type="case",
                    object_id="new",
                    action="read",
                )
            await audit.chain_all(database)
            async with database.transaction() as session:
                places = (await session.scalars(text("SELECT object_id FROM audit_event ORDER BY seq"))).all()
                return list(places), await audit.verify_chain(session)
        finally:
            await database.dispose()

    asyncio.run(seed_old_chain())
    upgrade(url)
    in_chain, report = asyncio.run(check())
    assert in_chain == ["0", "1", "2", "3", "new"]
    assert (report.ok, report.checked, report.unchained) == (True, 5, 0), report
