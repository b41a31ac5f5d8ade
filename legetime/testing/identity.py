"""The contract every identity provider keeps.

Its driver knows how to drive one provider's login: which national ID to use, what the frontend passes
while polling, how a login is made to expire or be refused by the user.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from legetime.sdk import (
    AssuranceLevel,
    ErrorCode,
    IdentityProvider,
    IdentityRejected,
    LoginPending,
    LoginRequest,
    LoginStart,
    ProviderSpec,
    VerifiedIdentity,
    parse_national_id,
    parse_swedish_personal_number,
)
from legetime.testing._common import BuildProvider, build_default, in_event_loop

State = Mapping[str, Any]
Params = Mapping[str, str]


@dataclass(frozen=True)
class IdentityDriver:
    """How the suite makes one identity provider do what the contract needs."""

    request: Callable[[], LoginRequest]
    """A login request that the (simulated or sandboxed) user will approve."""
    expected_national_id: str | None
    """The national ID that login verifies, when the driver knows it."""
    poll_params: Callable[[LoginStart, int], Params]
    """What the frontend passes to ``complete`` on the n-th call (1-based): poll counters, redirect query…"""
    expired: Callable[[LoginStart], tuple[State, Params]]
    """State and params of the same login after its time ran out."""
    cancelled_by_user: Callable[[LoginStart], tuple[State, Params]]
    """State and params of the same login after the user refused it (in the app or on the provider's page)."""
    max_polls: int = 10
    build: BuildProvider = build_default
    """Builds the provider (and starts whatever fake it talks to) for one test."""


def verified_birth_date(identity: VerifiedIdentity) -> tuple[str, Any]:
    """The normalised national ID and the birth date it encodes, by the country that issued it."""
    if identity.country == "NO":
        national_id = parse_national_id(identity.national_id)  # raises if not a valid national ID
        return national_id.value, national_id.birth_date
    if identity.country == "SE":
        number = parse_swedish_personal_number(identity.national_id)  # Luhn and date
        return number.value, number.birth_date
    pytest.fail(f"no national ID rules for country {identity.country!r}")


def json_round_trip(state: State) -> dict[str, Any]:
    """What the core hands back: it stores the state as JSON."""
    restored: dict[str, Any] = json.loads(json.dumps(state))
    return restored


async def drive_to_success(provider: Any, driver: IdentityDriver, start: LoginStart) -> VerifiedIdentity:
    state = json_round_trip(start.state)
    for n in range(1, driver.max_polls + 1):
        result = await provider.complete(state, driver.poll_params(start, n))
        if isinstance(result, VerifiedIdentity):
            return result
        assert isinstance(result, LoginPending), f"complete returned {result!r}"
        assert result.message
    pytest.fail(f"login still pending after {driver.max_polls} polls")


class IdentityContract:
    """The identity contract (see ``legetime.testing`` for how to run it against a provider)."""

    pytestmark = pytest.mark.legetime_contract

    def test_provider_implements_the_protocol(
        self, legetime_spec: ProviderSpec, legetime_provider: Any
    ) -> None:
        assert isinstance(legetime_provider, IdentityProvider)
        assert legetime_provider.name == legetime_spec.name

    @in_event_loop
    async def test_start_returns_a_challenge_to_follow(
        self, legetime_provider: Any, legetime_driver: IdentityDriver
    ) -> None:
        start = await legetime_provider.start(legetime_driver.request())
        assert isinstance(start, LoginStart)
        challenge = start.challenge
        assert challenge.redirect_url or (
            challenge.poll_interval_seconds and challenge.poll_interval_seconds > 0
        )
        if challenge.expires_at is not None:
            assert challenge.expires_at.tzinfo is not None
            assert challenge.expires_at > datetime.now(UTC)

    @in_event_loop
    async def test_state_is_json(self, legetime_provider: Any, legetime_driver: IdentityDriver) -> None:
        start = await legetime_provider.start(legetime_driver.request())
        assert isinstance(start.state, dict)
        assert json_round_trip(start.state) == start.state

    @in_event_loop
    async def test_two_logins_do_not_share_state(
        self, legetime_provider: Any, legetime_driver: IdentityDriver
    ) -> None:
        first = await legetime_provider.start(legetime_driver.request())
        second = await legetime_provider.start(legetime_driver.request())
        assert first.state != second.state

    @in_event_loop
    async def test_complete_returns_a_verified_identity(
        self, legetime_spec: ProviderSpec, legetime_provider: Any, legetime_driver: IdentityDriver
    ) -> None:
        start = await legetime_provider.start(legetime_driver.request())
        identity = await drive_to_success(legetime_provider, legetime_driver, start)
        national_id, birth_date = verified_birth_date(identity)
        assert identity.national_id == national_id
        assert identity.birth_date == birth_date
        assert identity.provider == legetime_spec.name
        assert isinstance(identity.assurance_level, AssuranceLevel)
        assert identity.given_name.strip()
        assert identity.family_name.strip()
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in identity.extra.items())
        if legetime_driver.expected_national_id is not None:
            assert identity.national_id == legetime_driver.expected_national_id

    @in_event_loop
    async def test_expired_login_is_rejected(
        self, legetime_provider: Any, legetime_driver: IdentityDriver
    ) -> None:
        start = await legetime_provider.start(legetime_driver.request())
        state, params = legetime_driver.expired(start)
        with pytest.raises(IdentityRejected) as caught:
            await legetime_provider.complete(json_round_trip(state), params)
        assert caught.value.code is ErrorCode.IDENTITY_REJECTED
        assert caught.value.message

    @in_event_loop
    async def test_login_refused_by_the_user_is_rejected(
        self, legetime_provider: Any, legetime_driver: IdentityDriver
    ) -> None:
        start = await legetime_provider.start(legetime_driver.request())
        state, params = legetime_driver.cancelled_by_user(start)
        with pytest.raises(IdentityRejected) as caught:
            await legetime_provider.complete(json_round_trip(state), params)
        assert caught.value.code is ErrorCode.IDENTITY_REJECTED
        assert caught.value.message

    @in_event_loop
    async def test_cancel_does_not_raise(
        self, legetime_provider: Any, legetime_driver: IdentityDriver
    ) -> None:
        start = await legetime_provider.start(legetime_driver.request())
        assert await legetime_provider.cancel(json_round_trip(start.state)) is None
