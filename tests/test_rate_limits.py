"""Starting logins is rate-limited per client, and the count is shared by every API process when Redis is
configured: the caller gets a typed RATE_LIMITED error and ``Retry-After``; polling has its own limit.
``allows`` (for what degrades instead of failing) counts exactly as ``check`` does, with a cost."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from legetime.core.platform.config import Settings
from legetime.core.platform.rate_limits import (
    LOGIN_START,
    PERSISTED_QUERY_REGISTER,
    RateLimited,
    RateLimits,
)
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.migrated import upgrade

START = 'mutation { startLogin(input: {nationalId: "17889200022"}) { handle errors { field code message } } }'
POLL = 'mutation { completeLogin(input: {handle: "nope"}) { token errors { field code message } } }'


def _app(settings: Settings) -> TestClient:
    return TestClient(
        create_app(Platform.create(settings, load_entry_points=False), run_jobs_in_process=False)
    )


def _errors(client: TestClient, query: str) -> tuple[list[str], str | None]:
    response = client.post("/graphql", json={"query": query})
    payload = next(iter(response.json()["data"].values()))
    return [error["code"] for error in payload["errors"]], response.headers.get("retry-after")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(
        data_dir=tmp_path / "data", login_rate_limit="3/minute", login_poll_rate_limit="5/minute"
    )
    upgrade(settings.resolved_database_url)
    return settings


def test_starting_logins_is_limited_with_retry_after(settings: Settings) -> None:
    with _app(settings) as client:
        answers = [_errors(client, START) for _ in range(4)]
    assert [codes for codes, _ in answers[:3]] == [[], [], []]
    codes, retry_after = answers[3]
    assert codes == ["RATE_LIMITED"] and retry_after is not None and 1 <= int(retry_after) <= 60


def test_polling_has_a_limit_of_its_own(settings: Settings) -> None:
    with _app(settings) as client:
        for _ in range(3):
            _errors(client, START)
        polls = [_errors(client, POLL)[0] for _ in range(6)]
    assert "RATE_LIMITED" not in [code for codes in polls[:5] for code in codes]  # not the start's count
    assert polls[5] == ["RATE_LIMITED"]


def test_the_count_is_shared_by_every_process_through_redis(settings: Settings, redis_url: str) -> None:
    shared = settings.model_copy(
        update={"redis_url": redis_url, "queue_namespace": f"test-{uuid.uuid4().hex[:8]}"}
    )
    with _app(shared) as first, _app(shared) as second:
        codes = [_errors(first, START)[0], _errors(second, START)[0], _errors(first, START)[0]]
        codes.append(_errors(second, START)[0])
    assert codes == [[], [], [], ["RATE_LIMITED"]]


async def test_allows_and_check_count_alike(settings: Settings) -> None:
    limits = RateLimits(settings.model_copy(update={"persisted_query_rate_limit": "3/minute"}))
    for rule in (LOGIN_START, PERSISTED_QUERY_REGISTER):  # both "3/minute"
        assert await limits.allows(rule, "one", cost=2)
        await limits.check(rule, "one")  # the third: within
        assert not await limits.allows(rule, "one")
        with pytest.raises(RateLimited):
            await limits.check(rule, "one")
        assert await limits.allows(rule, "another")  # per client
    assert not await limits.allows(PERSISTED_QUERY_REGISTER, "a third", cost=4)  # more than the limit
    assert await limits.allows(PERSISTED_QUERY_REGISTER, "a third", cost=3)  # and it was not counted


async def test_an_unreachable_counter_lets_both_through(settings: Settings) -> None:
    limits = RateLimits(
        settings.model_copy(
            update={"redis_url": "redis://127.0.0.1:1/0", "persisted_query_rate_limit": "1/hour"}
        )
    )
    for _ in range(3):
        assert await limits.allows(PERSISTED_QUERY_REGISTER, "one")
        await limits.check(LOGIN_START, "one")
