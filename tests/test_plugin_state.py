"""Plugins keep their state in the platform's database, not in files of their own: two API processes with
separate working directories on one PostgreSQL database share a provider's state, so a retry that lands
on the other process reaches the same payment order; and no provider leaves a state file behind."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, inspect, select
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.testclient import TestClient

from legetime.core.hookspecs import hookimpl
from legetime.core.platform.config import Settings
from legetime.core.platform.db.migrate import drop_plugin_tables, installed_tables, upgrade
from legetime.core.platform.db.plugin_tables import PluginTables, plugin_database_url
from legetime.core.platform.errors import PluginError, ProviderUnavailable
from legetime.core.platform.providers import PAYMENT
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.api import Api, complete_answers
from tests.cli import run_cli
from tests.conftest import seed_demo
from tests.fakes.server import serve_fake
from tests.fakes.swedbank_pay import SwedbankPayFake
from tests.test_flow_per_provider import CLINICIAN, MOTHER, _prefix
from tests.test_flow_per_provider import PAYMENT as PAYMENT_FIELDS

RETURN_URL = "https://legetime.example/betaling/ferdig"


class AnswerLost:
    """The process dies after the provider made the order and before the case recorded it: the provider's
    answer never reaches the core (as a crash, a deploy or a dropped connection would have it)."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider

    async def __call__(self, request: Any) -> Any:
        await self.provider.__class__.reserve(self.provider, request)
        raise ProviderUnavailable("the process stopped before it recorded the order")


@contextmanager
def two_api_processes(tmp_path: Path, database_url: str, **settings: Any) -> Iterator[tuple[Api, Api]]:
    """Two API processes on one database, each with a working directory of its own (as on two machines);
    they share what a deployment shares: the database and the secret key. Demo data included."""
    secret = secrets.token_urlsafe(48)
    upgrade(database_url)
    seed_demo(Settings(data_dir=tmp_path / "seed", database_url=database_url, secret_key=secret))
    with ExitStack() as stack:
        apis = []
        for name in ("a", "b"):
            setup = Settings(
                data_dir=tmp_path / name, database_url=database_url, secret_key=secret, **settings
            )
            platform = Platform.create(setup, load_entry_points=False)
            apis.append(Api(stack.enter_context(TestClient(create_app(platform)))))
        yield apis[0], apis[1]


@pytest.mark.postgres
def test_a_retry_on_the_other_process_reaches_the_same_swedbank_pay_order(
    tmp_path: Path, fresh_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_fake(SwedbankPayFake()) as fake:
        for key, value in fake.plugin_settings().items():
            monkeypatch.setenv(f"{_prefix(PAYMENT.capability, 'swedbank-pay')}{key}", value)
        with two_api_processes(tmp_path, fresh_postgres_url, payment_providers=["swedbank-pay"]) as (a, b):
            mother, clinician = a.login(MOTHER), a.login(CLINICIAN)
            case_id = a.ok("startCase", {}, "case { id }", mother)["case"]["id"]
            answers = complete_answers(a, for_child=False)
            a.ok("answerQuestionnaire", {"caseId": case_id, "answers": answers}, "case { id }", mother)
            texts = {
                t["purpose"]: t["version"]
                for t in a.gql("{ consentTexts { purpose version } }")["consentTexts"]
            }
            consent = {"purpose": "COMMUNICATION_STORAGE", "textVersion": texts["COMMUNICATION_STORAGE"]}
            a.ok("grantConsent", {**consent, "caseId": case_id}, "consent { granted }", mother)
            submit = {
                "caseId": case_id,
                "idempotencyKey": "submit-1",
                "paymentProvider": "swedbank-pay",
                "paymentMethod": "card",
                "returnUrl": RETURN_URL,
            }
            provider_a = a.client.app.state.platform.providers.get(PAYMENT)  # type: ignore[attr-defined]
            monkeypatch.setattr(provider_a, "reserve", AnswerLost(provider_a))
            lost = a.mutate("submitCase", submit, "case { id }", mother)
            assert [e["code"] for e in lost["errors"]] == ["PROVIDER_UNAVAILABLE"]
            assert len(fake.orders) == 1

            # Her app retries; the load balancer sends it to the other process.
            submitted = b.ok("submitCase", submit, PAYMENT_FIELDS, mother)["case"]
            assert len(fake.orders) == 1, "the retry made a second payment order"
            (order,) = fake.orders.values()
            assert submitted["payment"]["actionUrl"].rstrip("/").endswith(order.guid)

            fake.pay_at(submitted["payment"]["actionUrl"])
            confirmed = a.ok("confirmPayment", {"caseId": case_id}, PAYMENT_FIELDS, mother)["case"]
            assert confirmed["status"] == "SUBMITTED" and confirmed["payment"]["authorized"] == 35000
            again = a.ok("submitCase", submit, PAYMENT_FIELDS, mother)["case"]
            assert again["payment"]["authorized"] == 35000 and len(fake.orders) == 1
            b.ok("claimCase", {"caseId": case_id}, "case { id }", clinician)
            answer = {"caseId": case_id, "body": "Hvile og væske.", "outcome": "ADVICE"}
            a.ok("answerCase", answer, "case { id }", clinician)
            b.ok("closeCase", {"caseId": case_id}, "case { status }", mother)
            query = "query($id: ID!) { case(id: $id) { payment { status captured } } }"
            captured = a.wait_for(
                lambda: (
                    (p := a.gql(query, mother, id=case_id)["case"]["payment"])["status"] == "captured" and p
                ),
                "the capture",
            )
            assert captured["captured"] == 35000 and len(fake.orders) == 1


# --- register_tables -----------------------------------------------------------------------------------

REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "visits_0001"
down_revision = None
branch_labels = ("visits",)
depends_on = None


def upgrade():
    op.create_table(
        "visits_count",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("page", sa.String(100), nullable=False, unique=True),
        sa.Column("visits", sa.Integer(), nullable=False),
    )


def downgrade():
    op.drop_table("visits_count")
"""

metadata = MetaData()
visits = Table(
    "visits_count",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("page", String(100), nullable=False, unique=True),
    Column("visits", Integer, nullable=False),
)


class Visits:
    """A plugin that keeps a table of its own."""

    def __init__(self, folder: Path, prefix: str = "visits", table: Table = visits) -> None:
        self.folder, self.prefix, self.table = folder, prefix, table

    @hookimpl
    def register_tables(self) -> PluginTables:
        return PluginTables(self.prefix, self.table.metadata, self.folder)


def tables_in(database_url: str) -> set[str]:
    async def names() -> set[str]:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(names())


def test_hook_register_tables(tmp_path: Path, empty_database_url: str) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_visits.py").write_text(REVISION)
    plugin = Visits(folder)
    upgrade(empty_database_url, plugin_tables=installed_tables([plugin]))

    where = plugin_database_url(empty_database_url)
    assert {"visits_count", "outbox_sms", "swedbank_pay_reservation"} <= tables_in(where)
    if "sqlite" in empty_database_url:  # a file beside the platform's, which holds none of them
        assert where != empty_database_url and "visits_count" not in tables_in(empty_database_url)

    settings = Settings(data_dir=tmp_path / "data", database_url=empty_database_url)
    platform = Platform.create(settings, extra_plugins=[plugin], load_entry_points=False)

    async def count_a_visit() -> list[tuple[str, int]]:
        async with platform.plugin_db.transaction() as session:
            await session.execute(visits.insert().values(page="/", visits=1))
        async with platform.plugin_db.transaction() as session:
            rows = (await session.execute(select(visits.c.page, visits.c.visits))).all()
        await platform.close()
        return [tuple(row) for row in rows]

    assert asyncio.run(count_a_visit()) == [("/", 1)]
    upgrade(empty_database_url, plugin_tables=installed_tables([plugin]))  # again: nothing to do

    drop_plugin_tables(empty_database_url, "visits", installed_tables([plugin]))
    remaining = tables_in(where)
    assert "visits_count" not in remaining and "outbox_sms" in remaining
    with pytest.raises(LookupError, match="no installed plugin keeps tables under 'nobody'"):
        drop_plugin_tables(empty_database_url, "nobody", installed_tables([plugin]))


@pytest.mark.parametrize(
    ("prefix", "table", "problem"),
    [
        ("Visits", visits, "table prefix 'Visits' is not"),
        ("counts", visits, "table 'visits_count' must start with counts_"),
        (
            "outbox",
            Table("outbox_extra", MetaData(), Column("id", Integer, primary_key=True)),
            "registered twice",
        ),
    ],
)
def test_a_plugin_that_breaks_the_table_contract_stops_start_up(
    tmp_path: Path, prefix: str, table: Table, problem: str
) -> None:
    with pytest.raises(PluginError, match=problem):
        Platform.create(Settings(data_dir=tmp_path), extra_plugins=[Visits(tmp_path, prefix, table)])


def test_legetime_migrate_creates_and_drop_plugin_tables_removes_a_plugins_tables(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env={"LEGETIME_DATA_DIR": str(tmp_path)})

    migrated = cli("migrate")
    assert migrated.returncode == 0, migrated.stderr
    plugins_db = f"sqlite+aiosqlite:///{tmp_path / 'legetime-plugins.db'}"
    assert {"outbox_sms", "swedbank_pay_reservation"} <= tables_in(plugins_db)

    refused = cli("drop-plugin-tables", "outbox")
    assert refused.returncode != 0 and "--yes" in refused.stderr and "outbox_sms" in tables_in(plugins_db)
    dropped = cli("drop-plugin-tables", "outbox", "--yes")
    assert dropped.returncode == 0, dropped.stderr
    assert "outbox_sms" not in tables_in(plugins_db) and "swedbank_pay_reservation" in tables_in(plugins_db)
    assert cli("migrate").returncode == 0 and "outbox_sms" in tables_in(plugins_db)  # installed: back again
