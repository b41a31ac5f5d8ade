"""`legetime --help` starts fast: it loads Typer and Rich, and none of the platform's heavier parts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.cli import ROOT, serving

# What the commands themselves need, and `--help` does not: the settings (pydantic), the database, the
# schema, the job system, the plugins and the libraries behind them.
NOT_FOR_HELP = (
    "asyncio",
    "sqlalchemy",
    "alembic",
    "pydantic",
    "pydantic_settings",
    "strawberry",
    "graphql",
    "starlette",
    "uvicorn",
    "dramatiq",
    "apscheduler",
    "structlog",
    "pluggy",
    "cryptography",
    "phonenumbers",
    "PIL",
    "httpx",
    "limits",
    "stripe",
    "authlib",
    "legetime.core.platform.config",
    "legetime.core.platform.runtime",
    "legetime.plugins",
    "legetime.schema",
)

LOADED_BY_HELP = """
import json, sys
from legetime.cli import main
sys.argv = ["legetime", "--help"]
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def modules_loaded_by(script: str, tmp_path: Path) -> list[str]:
    """The modules a Python snippet has loaded when it ends (it prints them as JSON on stderr), run with
    this checkout on a clean environment and a data directory of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGETIME_")} | {
        "PYTHONPATH": str(ROOT),
        "LEGETIME_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stderr.splitlines()[-1]))


def among(loaded: list[str], packages: tuple[str, ...]) -> list[str]:
    """The loaded modules that are, or are inside, one of ``packages``."""
    return sorted(name for name in loaded if any(name == p or name.startswith(p + ".") for p in packages))


def test_help_loads_none_of_the_platform() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGETIME_")} | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", LOADED_BY_HELP], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "serve" in done.stdout and "migrate" in done.stdout  # the help itself
    assert among(json.loads(done.stderr.splitlines()[-1]), NOT_FOR_HELP) == []


# The libraries of the built-in providers that are not enabled by default: a default plugin registers its
# provider (spec, settings, hooks) without them; they are imported when the provider is constructed.
NOT_FOR_DEFAULT_PROVIDERS = ("stripe", "authlib", "joserfc", "httpx")

LOADED_BY_DEFAULT_START = """
import json, sys
from legetime.core.platform.config import load_settings
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
create_app(Platform.create(load_settings()))
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def test_default_start_loads_no_sdk_of_a_provider_not_enabled(tmp_path: Path) -> None:
    """Creating the platform and the app with default settings loads every default plugin, and none of
    the SDKs behind the providers that are not enabled (Stripe, Vipps, Swedbank Pay, both BankIDs)."""
    loaded = modules_loaded_by(LOADED_BY_DEFAULT_START, tmp_path)
    plugins = {
        "legetime.plugins.bankid.swedish",
        "legetime.plugins.bankid.oidc",
        "legetime.plugins.payments.stripe_cards",
        "legetime.plugins.payments.vipps",
        "legetime.plugins.payments.swedbank_pay",
    }
    assert plugins <= set(loaded)  # the plugins themselves are loaded
    assert among(loaded, NOT_FOR_DEFAULT_PROVIDERS) == []


# What the embedded default (SQLite, no Redis URL) does not use before its first request: Redis, image
# decoding, phone-number metadata, migrations, PostgreSQL's driver, the HTTP client and the SDKs behind
# the providers not enabled. Each is imported where it is first used (start-up time, issue 12). (SQLite's
# driver is: the start reads the settings operators stored.)
NOT_FOR_DEFAULT_START = (
    "redis",
    "PIL",
    "phonenumbers",
    "alembic",
    "asyncpg",
    "httpx",
    "boto3",
    "botocore",
    "stripe",
    "twilio",
    "openai",
    "authlib",
    "joserfc",
    "legetime.core.consultation.images",
)

LOADED_UNTIL_SERVING = """
import asyncio, json, sys
from legetime.core.platform.config import load_settings
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app

app = create_app(Platform.create(load_settings()))

async def start():
    async with app.router.lifespan_context(app):  # the platform's start, the in-process jobs
        return sorted(sys.modules)

print(json.dumps(asyncio.run(start())), file=sys.stderr)
"""


def test_embedded_default_serves_without_what_it_does_not_use(tmp_path: Path) -> None:
    """Started as `legetime serve` starts it (the app and its lifespan, jobs in-process), the embedded
    default has loaded none of ``NOT_FOR_DEFAULT_START`` when it is ready for its first request."""
    loaded = modules_loaded_by(LOADED_UNTIL_SERVING, tmp_path)
    assert "legetime.core.platform.jobs.runner" in loaded  # it did start
    assert among(loaded, NOT_FOR_DEFAULT_START) == []


def test_serve_stops_without_idle_waiting(tmp_path: Path) -> None:
    """SIGTERM to an idle `legetime serve` (the embedded default, in-process workers): it exits well
    within a second, not after the job workers' idle polling (2 s before)."""
    process: list[subprocess.Popen[bytes]] = []
    env = {"LEGETIME_DATA_DIR": str(tmp_path / "data")}
    with serving(tmp_path / "serve.log", env=env, process=process) as base:
        assert httpx.post(f"{base}/graphql", json={"query": "{ __typename }"}).status_code == 200
        (server,) = process
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        stopped_in = time.monotonic() - started
    # uvicorn shuts down gracefully, then re-raises the signal it caught (hence -SIGTERM).
    assert server.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in (tmp_path / "serve.log").read_text()
    assert stopped_in < 1.0, stopped_in


def test_serve_runs_several_api_processes_on_one_port(tmp_path: Path) -> None:
    env = {"LEGETIME_DATA_DIR": str(tmp_path / "data")}
    log = tmp_path / "serve.log"
    with serving(log, env=env, options=("--workers", "2")) as base:
        for _ in range(4):
            assert httpx.post(f"{base}/graphql", json={"query": "{ __typename }"}).status_code == 200
        deadline = time.monotonic() + 30
        while log.read_text().count("Application startup complete") < 2:  # the second may come later
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
