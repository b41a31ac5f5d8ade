"""The journal drafting contract (``legetime.testing.JournalContract``), run against each provider the
plugins offer.

A driver per provider name builds it (an LLM drafter's driver would point it at a fake, deterministic model
server).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from legetime.core.platform.providers import Capability, ProviderSpec
from legetime.testing import JournalContract, JournalDriver, build_default
from tests.contracts.builtin import check_against_driver, fixtures_for
from tests.fakes.openai_chat import OpenAIChatFake
from tests.support import ServedFake

DRIVERS: dict[str, JournalDriver] = {
    "template": JournalDriver(build=build_default),
    # Against a local OpenAI-compatible server that answers deterministically and refuses personal data.
    "openai": JournalDriver(build=ServedFake(OpenAIChatFake).build),
}

legetime_spec, legetime_driver = fixtures_for(Capability.JOURNAL, DRIVERS, __file__)


class TestJournalContract(JournalContract):
    pass


async def test_the_check_is_ok_against_the_driver(
    legetime_spec: ProviderSpec, legetime_driver: Any, tmp_path: Path
) -> None:
    await check_against_driver(legetime_spec, legetime_driver, tmp_path)
