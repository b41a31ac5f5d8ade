"""Abandoned logins (whose sealed provider state may hold a national ID) and ended sessions are deleted by
the core's periodic job ``identity.purge_logins``, on SQLite and PostgreSQL, also with several runs at
once; fresh ones are left alone. An expired login or session was refused before its row is purged."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from starlette.testclient import TestClient

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.identity.purge import LOGIN_PURGE_EVERY, PURGE_LOGINS_JOB
from legetime.core.platform.config import Settings
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import AuthSession, LoginTransaction
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.api import Api

MOTHER = DEMO_PEOPLE[2].national_id
ME = "{ me { givenName } }"


@pytest.fixture
def settings_on(tmp_path: Any, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url)


@pytest.fixture
def api(settings_on: Settings) -> Iterator[Api]:
    platform = Platform.create(settings_on, load_entry_points=False)
    with TestClient(create_app(platform, run_jobs_in_process=False)) as client:
        yield Api(client)


def purge(settings: Settings, runs: int = 1) -> list[Any]:
    """The registered periodic job, run ``runs`` times at once (as several workers would)."""

    async def run() -> list[Any]:
        platform = Platform.create(settings, load_entry_points=False)
        try:
            (job,) = [job for job in platform.periodic_jobs if job.name == PURGE_LOGINS_JOB]
            assert job.every(settings) == LOGIN_PURGE_EVERY
            return list(await asyncio.gather(*(job.run(platform) for _ in range(runs))))
        finally:
            await platform.close()

    return asyncio.run(run())


def expire_everything_so_far(settings: Settings) -> None:
    """Move every login and session there is now past its expiry (as if the TTLs had gone by)."""

    async def run() -> None:
        platform = Platform.create(settings, load_entry_points=False)
        try:
            async with platform.db.transaction() as session:
                past = utcnow() - timedelta(hours=1)
                await session.execute(update(LoginTransaction).values(expires_at=past))
                await session.execute(update(AuthSession).values(expires_at=past))
        finally:
            await platform.close()

    asyncio.run(run())


def rows(settings: Settings) -> dict[str, int]:
    """How many logins and sessions are stored, and how many of them are past expiry or logged out."""

    async def run() -> dict[str, int]:
        platform = Platform.create(settings, load_entry_points=False)
        now = utcnow()
        try:
            async with platform.db.transaction() as session:

                async def count(*where: Any, model: Any) -> int:
                    return int(
                        await session.scalar(select(func.count()).select_from(model).where(*where)) or 0
                    )

                return {
                    "logins": await count(model=LoginTransaction),
                    "expired_logins": await count(LoginTransaction.expires_at <= now, model=LoginTransaction),
                    "sessions": await count(model=AuthSession),
                    "ended_sessions": await count(
                        (AuthSession.expires_at <= now) | AuthSession.revoked_at.is_not(None),
                        model=AuthSession,
                    ),
                }
        finally:
            await platform.close()

    return asyncio.run(run())


def complete(api: Api, handle: str) -> dict[str, Any]:
    return api.mutate("completeLogin", {"handle": handle}, "token", None)


def test_expired_logins_and_ended_sessions_are_purged_and_fresh_ones_stay(
    api: Api, settings_on: Settings
) -> None:
    abandoned = api.ok("startLogin", {"nationalId": MOTHER}, "handle")["handle"]  # never completed
    old_token = api.login(MOTHER)
    expire_everything_so_far(settings_on)
    waiting = api.ok("startLogin", {"nationalId": MOTHER}, "handle")["handle"]
    token, logged_out = api.login(MOTHER), api.login(MOTHER)
    assert api.gql("mutation { logout { ok } }", logged_out)["logout"]["ok"]

    # Refused already before the purge: an expired login cannot be completed, an expired token is nobody.
    assert [e["code"] for e in complete(api, abandoned)["errors"]] == ["IDENTITY_REJECTED"]
    assert api.gql(ME, old_token)["me"] is None
    assert api.gql(ME, logged_out)["me"] is None
    before = rows(settings_on)
    assert before == {"logins": 5, "expired_logins": 2, "sessions": 3, "ended_sessions": 2}

    (purged,) = purge(settings_on)

    assert (purged.logins, purged.sessions) == (2, 2)
    assert rows(settings_on) == {"logins": 3, "expired_logins": 0, "sessions": 1, "ended_sessions": 0}
    assert api.gql(ME, old_token)["me"] is None  # a purged session's token is still nobody
    assert api.gql(ME, token)["me"]["givenName"]  # the open session works on
    assert complete(api, waiting)["token"]  # and the login in progress can be completed
    assert [e["code"] for e in complete(api, abandoned)["errors"]] == ["IDENTITY_REJECTED"]
    assert purge(settings_on)[0].logins == 0  # nothing more to delete


def test_several_runs_at_once_delete_each_row_once(api: Api, settings_on: Settings) -> None:
    """More rows than one batch, three runs side by side: every expired row goes, each counted once."""
    api.login(MOTHER)
    many = 1300

    async def add_expired() -> None:
        platform = Platform.create(settings_on, load_entry_points=False)
        try:
            async with platform.db.transaction() as session:
                person_id = await session.scalar(select(AuthSession.person_id))
                past = utcnow() - timedelta(hours=1)
                await session.execute(
                    insert(LoginTransaction),
                    [
                        {
                            "handle_hash": secrets.token_hex(32),
                            "provider": "bankid-test",
                            "state_sealed": b"x",
                        }
                        | {"expires_at": past}
                        for _ in range(many)
                    ],
                )
                await session.execute(
                    insert(AuthSession),
                    [
                        {
                            "token_hash": secrets.token_hex(32),
                            "person_id": person_id,
                            "provider": "bankid-test",
                        }
                        | {"assurance_level": "high", "expires_at": past}
                        for _ in range(many)
                    ],
                )
        finally:
            await platform.close()

    asyncio.run(add_expired())
    results = purge(settings_on, runs=3)
    assert sum(r.logins for r in results) == many and sum(r.sessions for r in results) == many
    assert rows(settings_on) == {"logins": 1, "expired_logins": 0, "sessions": 1, "ended_sessions": 0}
