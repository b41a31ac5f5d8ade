"""The video contract (``legetime.testing.VideoContract``), run against each provider the plugins offer.

A driver per provider name knows how to build it and how to read its join tokens as its service would:
the simulation verifies with its own derived key, LiveKit's fake with the API secret (its own HS256
reader, not the plugin's JOSE library) and tells which rooms are open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from legetime.core.platform.providers import Capability, ProviderSpec
from legetime.testing import GrantedAccess, VideoContract, VideoDriver, build_default
from tests.contracts.builtin import check_against_driver, fixtures_for
from tests.fakes import livekit as livekit_fake


def _simulated_token(provider: Any, token: str) -> GrantedAccess:
    return GrantedAccess.from_claims(provider.verify(token))


DRIVERS: dict[str, VideoDriver] = {
    "video-test": VideoDriver(verify_token=_simulated_token, build=build_default),
    "livekit": livekit_fake.contract_driver(),  # against a local LiveKit server API (tests/fakes/livekit.py)
}

legetime_spec, legetime_driver = fixtures_for(Capability.VIDEO, DRIVERS, __file__)


class TestVideoContract(VideoContract):
    pass


async def test_the_check_is_ok_against_the_driver(
    legetime_spec: ProviderSpec, legetime_driver: Any, tmp_path: Path
) -> None:
    await check_against_driver(legetime_spec, legetime_driver, tmp_path)
