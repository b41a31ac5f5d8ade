"""Settings through GraphQL: operators read and change the platform's editable settings and every
provider's settings; secrets are write-only; the environment wins; a value is validated by the same model
with its messages; a change is in effect at once, in every process, without a restart; stored sealed;
in the access log by name, never by value."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from legetime.core.platform.config import Settings
from legetime.core.platform.db.engine import Database
from legetime.core.platform.db.models import AuditEvent, RuntimeSettings
from legetime.core.platform.providers import SMS
from legetime.core.platform.runtime import Platform
from tests.api import Api
from tests.cli import deployed
from tests.conftest import seed_demo
from tests.migrated import upgrade
from tests.test_flow_per_provider import CLINICIAN, MOTHER, consultation
from tests.test_payment_handoff import OPERATOR

SECRET = "hemmelig-passord-som-aldri-vises-1234"
SETTING = "name locked source value isSet secret"
PROVIDER = f"provider {{ name enabled settings {{ {SETTING} }} }} changed"
PLATFORM = f"settings {{ {SETTING} }} changed"
LINK = {"capability": "SMS", "provider": "link-mobility"}
LINK_VALUES = {"username": "klinikk", "password": SECRET, "platform_id": "p1", "platform_partner_id": "pp1"}


def setting(settings: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(s for s in settings if s["name"] == name)


def test_secrets_are_write_only_and_stored_sealed(embedded: tuple[Api, Platform]) -> None:
    api, platform = embedded
    operator = api.login(OPERATOR)
    changed = api.ok("changeProviderSettings", {**LINK, "values": LINK_VALUES}, PROVIDER, operator)
    password = setting(changed["provider"]["settings"], "password")
    assert password == {
        "name": "password",
        "locked": False,
        "source": "stored",
        "value": None,
        "isSet": True,
        "secret": True,
    }
    assert changed["changed"] == sorted(LINK_VALUES)
    everything = api.raw(
        f"{{ providerSettings {{ name settings {{ {SETTING} variable kind description }} }} "
        f"platformSettings {{ {SETTING} }} }}",
        operator,
    )
    assert "errors" not in everything and SECRET not in json.dumps(everything)
    rows, audit = asyncio.run(_rows(platform.settings.resolved_database_url))
    assert rows and all(SECRET.encode() not in row.values_sealed for row in rows)
    change = [e for e in audit if e.action == "change_settings"]
    assert [e.reason for e in change] == [", ".join(sorted(LINK_VALUES))]  # names, not values
    assert all(SECRET not in (e.reason or "") for e in audit)


def test_the_environment_wins_and_values_are_checked_by_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEGETIME_SMS_LINK_MOBILITY_USERNAME", "fra-miljoet")
    settings = Settings(data_dir=tmp_path / "data", sms_sender="Miljo")  # given: locked like a variable
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    platform = Platform.create(settings, load_entry_points=False)
    from starlette.testclient import TestClient

    from legetime.schema.app import create_app

    with TestClient(create_app(platform)) as client:
        api = Api(client)
        operator = api.login(OPERATOR)
        link = api.gql(
            "{ providerSettings(capability: SMS) { name settings { name locked source value } } }", operator
        )
        username = setting(
            next(p for p in link["providerSettings"] if p["name"] == "link-mobility")["settings"], "username"
        )
        assert username == {
            "name": "username",
            "locked": True,
            "source": "environment",
            "value": "fra-miljoet",
        }
        refused = api.mutate(
            "changeProviderSettings", {**LINK, "values": {"username": "annen"}}, PROVIDER, operator
        )
        assert refused["errors"][0]["field"] == "username" and refused["provider"] is None
        sender = api.mutate("changePlatformSettings", {"values": {"sms_sender": "Annen"}}, PLATFORM, operator)
        assert sender["errors"][0]["field"] == "sms_sender"

        too_long = api.mutate(
            "changePlatformSettings", {"values": {"auto_close_hours": "mange"}}, PLATFORM, operator
        )
        assert too_long["errors"][0]["field"] == "auto_close_hours"
        assert "number" in too_long["errors"][0]["message"]  # pydantic's own message
        http = api.mutate(
            "changeProviderSettings",
            {**LINK, "values": {"base_url": "http://example.com"}},
            PROVIDER,
            operator,
        )
        assert http["errors"][0]["field"] == "base_url" and "https" in http["errors"][0]["message"]
        unknown = api.mutate(
            "changePlatformSettings", {"values": {"database_url": "sqlite://"}}, PLATFORM, operator
        )
        assert unknown["errors"][0]["field"] == "database_url"
        # Enabling a provider that cannot be built (LINK without its credentials) is refused, nothing changes.
        enable = {"values": {"sms_providers": ["link-mobility", "outbox"]}}
        assert api.mutate("changePlatformSettings", enable, PLATFORM, operator)["errors"]
        enabled = api.gql("{ platform { providers(capability: SMS) { name } } }", operator)["platform"][
            "providers"
        ]
        assert [p["name"] for p in enabled] == ["outbox"]


def test_the_next_text_uses_a_new_sender_without_a_restart(embedded: tuple[Api, Platform]) -> None:
    api, platform = embedded
    operator, mother, clinician = api.login(OPERATOR), api.login(MOTHER), api.login(CLINICIAN)
    changed = api.ok("changePlatformSettings", {"values": {"sms_sender": "Klinikken"}}, PLATFORM, operator)
    assert setting(changed["settings"], "sms_sender")["value"] == "Klinikken"
    consultation(api, mother, clinician, "fake", None, None)
    sent = api.wait_for(lambda: asyncio.run(platform.providers.get(SMS).messages()), "the answer's text")
    assert {m.sender for m in sent} == {"Klinikken"}
    back = api.ok("changePlatformSettings", {"clear": ["sms_sender"]}, PLATFORM, operator)
    assert setting(back["settings"], "sms_sender") | {"value": None} == {
        "name": "sms_sender",
        "locked": False,
        "source": "default",
        "value": None,
        "isSet": True,
        "secret": False,
    }


def test_only_operators_and_check_provider(embedded: tuple[Api, Platform]) -> None:
    api, _ = embedded
    operator, clinician = api.login(OPERATOR), api.login(CLINICIAN)
    assert (
        api.raw("{ platformSettings { name } }", clinician)["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    )
    refused = api.mutate("changePlatformSettings", {"values": {"sms_sender": "X"}}, PLATFORM, clinician)
    assert refused["errors"][0]["code"] == "FORBIDDEN"
    check = "supported ok message"
    outbox = api.mutate("checkProvider", {"capability": "SMS", "provider": "outbox"}, check, operator)
    assert outbox["supported"] and outbox["ok"] and outbox["errors"] == []
    disabled = api.mutate("checkProvider", LINK, check, operator)
    assert disabled["errors"][0]["code"] == "NOT_FOUND"
    assert api.mutate("checkProvider", {"capability": "SMS", "provider": "outbox"}, check, clinician)[
        "errors"
    ]


@pytest.mark.redis
def test_two_processes_see_a_change(tmp_path: Path, fresh_postgres_url: str, redis_url: str) -> None:
    """Two `legetime serve` and a `legetime worker` on PostgreSQL and Redis: a change made through one is
    in effect in the other at once (announced through Redis), and the worker sends with it."""
    with (
        deployed(tmp_path, fresh_postgres_url, redis_url) as deployment,
        httpx.Client(base_url=deployment.first, timeout=30) as one,
        httpx.Client(base_url=deployment.second, timeout=30) as other,
    ):
        api, api2 = Api(one), Api(other)  # type: ignore[arg-type]
        operator = api.login(OPERATOR)
        api.ok("changePlatformSettings", {"values": {"sms_sender": "Annen"}}, PLATFORM, operator)
        started = time.monotonic()
        api2.wait_for(
            lambda: (
                setting(
                    api2.gql(f"{{ platformSettings {{ {SETTING} }} }}", operator)["platformSettings"],
                    "sms_sender",
                )["value"]
                == "Annen"
            ),
            "the other process's settings",
            within=10,
        )
        assert time.monotonic() - started < 5  # announced, not found by the 30-second check
        mother, clinician = api2.login(MOTHER), api2.login(CLINICIAN)
        consultation(api2, mother, clinician, "fake", None, None)
        platform = Platform.create(deployment.settings, load_entry_points=False)
        sent = api.wait_for(lambda: asyncio.run(platform.providers.get(SMS).messages()), "the answer's text")
    assert {m.sender for m in sent} == {"Annen"}  # the worker, another process, used it too


async def _rows(url: str) -> tuple[list[RuntimeSettings], list[AuditEvent]]:
    database = Database(url)
    try:
        async with database.transaction() as session:
            rows = list(await session.scalars(select(RuntimeSettings)))
            audit = list(await session.scalars(select(AuditEvent)))
            return rows, audit
    finally:
        await database.dispose()
