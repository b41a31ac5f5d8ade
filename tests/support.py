"""Helpers shared by the tests (not fixtures: plain functions)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.hookspecs import hookimpl
from legetime.core.platform.db.plugin_tables import PluginDatabase
from legetime.core.platform.hooks import Hooks
from legetime.core.platform.jobs.runner import JobRunner
from legetime.core.platform.plugins import create_plugin_manager
from legetime.core.platform.providers import Capability, ProviderSpec
from legetime.core.platform.runtime import Platform
from legetime.testing import build_provider
from tests.fakes.server import ProviderFake, serve_fake


def offered_specs(capability: Capability) -> list[ProviderSpec]:
    """Every provider of a capability that the built-in plugins offer (entry points are not loaded: a
    third party runs the same suites against its own provider with the contract kit).

    Contract suites parametrise over this, so a new built-in provider is held to the contract at once."""
    pm = create_plugin_manager(load_entry_points=False)
    return [spec for spec in Hooks(pm).providers() if spec.capability is capability]


def settings_for_fake(spec: ProviderSpec, fake: ProviderFake, **changes: Any) -> Any:
    """``spec``'s settings pointed at a running provider fake, with ``changes`` (field names) on top."""
    values = {name.lower(): value for name, value in fake.plugin_settings().items()}
    return spec.settings_model(**(values | changes))


F = TypeVar("F", bound=ProviderFake)


class ServedFake(Generic[F]):
    """A contract driver's provider fake: ``build`` serves a fresh one around the provider built for one
    test, and the driver's callbacks (the payer approving, a webhook) reach it as ``fake``."""

    def __init__(self, make: Callable[[], F]) -> None:
        self._make = make
        self._fake: F | None = None

    @property
    def fake(self) -> F:
        assert self._fake is not None, "the driver's provider fake is not running"
        return self._fake

    @contextmanager
    def build(self, spec: ProviderSpec, data_dir: Path) -> Iterator[Any]:
        with serve_fake(self._make()) as fake:
            self._fake = fake
            try:
                yield build_provider(spec, data_dir, settings_for_fake(spec, fake))
            finally:
                self._fake = None


class ProductionProviders:
    """The default providers under other names and not marked as simulations: a stand-in for real
    providers, so production start-up can be tested before those exist."""

    def __init__(self) -> None:
        pm = create_plugin_manager(load_entry_points=False)
        self.specs = [
            replace(spec, name=f"real-{spec.name}", test_only=False) for spec in Hooks(pm).providers()
        ]

    @hookimpl
    def register_providers(self) -> list[ProviderSpec]:
        return self.specs


REAL_PROVIDERS: dict[str, Any] = {
    "identity_providers": ["real-bankid-test"],
    "payment_providers": ["real-fake"],
    "sms_providers": ["real-outbox"],
    "storage_provider": "real-local",
    "journal_provider": "real-template",
    "video_provider": "real-video-test",
}


def synthetic_national_id(born: date, *, female: bool = True, skip: int = 0) -> str:
    """A valid synthetic national ID (month + 80) for a birth date, as Test-Norge issues them; ``skip``
    gives the next ones for the same date."""
    from legetime.core.identity.nationalid import is_valid_national_id

    start = 0 if born.year < 2000 else 500
    candidates = (
        f"{born.day:02d}{born.month + 80:02d}{born.year % 100:02d}{individual:03d}{checks:02d}"
        for individual in range(start, start + 500)
        if (individual % 2 == 0) == female
        for checks in range(100)
    )
    valid = (candidate for candidate in candidates if is_valid_national_id(candidate))
    for index, candidate in enumerate(valid):
        if index == skip:
            return candidate
    raise AssertionError("no synthetic national ID found")


def person_row(
    national_id: str,
    *,
    given_name: str = "Kari",
    family_name: str = "Nordmann",
    birth_date: date = date(1990, 1, 1),
) -> Any:
    """A person row for tests that need one in the database but never log her in (her keys come from a
    throwaway key ring, so the platform cannot find or open her)."""
    from legetime.core.platform.crypto import KeyRing, keyed_hash, seal
    from legetime.core.platform.db.models import Person

    key, wrapped = KeyRing([("throwaway", bytes(32))]).new_data_key()
    return Person(
        national_id_hash=keyed_hash(b"throwaway", national_id),
        national_id_sealed=seal(key, national_id.encode(), b"throwaway"),
        key_id=wrapped.key_id,
        wrapped_key=wrapped.wrapped,
        given_name=given_name,
        family_name=family_name,
        birth_date=birth_date,
    )


class HeldOpen(PluginDatabase):
    """A process's plugin database (PostgreSQL) whose transactions stay open (``holding``), their rows
    locked, until ``commit`` is set."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.holding, self.commit = asyncio.Event(), asyncio.Event()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with super().transaction() as session:
            yield session
            self.holding.set()
            await self.commit.wait()


async def until_a_session_waits_for_a_lock(url: str) -> None:
    probe = PluginDatabase(url)
    waiting = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(10):
        while True:
            async with probe.transaction() as session:
                if await session.scalar(text(waiting)):
                    break
            await asyncio.sleep(0.02)
    await probe.dispose()


@contextmanager
def worker_process(platform: Platform, *, threads: int = 2) -> Iterator[JobRunner]:
    """What ``legetime worker`` runs beside an API process with Redis, as threads of the test process (so
    that the providers' settings in its environment reach them): dramatiq workers, and the outbox relay
    polling as the safety net (a job the API's own relay passed over is handed out at the next poll).
    The periodic jobs are left out: a test runs what it needs of them itself."""
    runner = JobRunner(platform)
    runner.start_workers(threads=threads)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="worker-relay", daemon=True)
    thread.start()
    database = platform.open_database()  # its connections belong to this loop

    async def start() -> None:
        runner.start_relay(poll=True, db=database)

    async def stop() -> None:
        await runner.stop_relay()
        await database.dispose()

    asyncio.run_coroutine_threadsafe(start(), loop).result()
    try:
        yield runner
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        runner.stop()
