"""The start-up floor: the minimal app (``bench.minimal_app``) after importing what ``legetime serve``
cannot start without: the CLI (Typer, Rich), logging (structlog), settings (pydantic-settings, limits),
the database (SQLAlchemy's ORM and asyncio, aiosqlite, the PostgreSQL dialect the models' partial indexes
name), plugins (pluggy), keys (cryptography), the in-process jobs (dramatiq, APScheduler) and Starlette.
No Legetime code: what ``legetime serve`` takes beyond this is the platform's own (its models, schema and
plugins). Started as the minimal app is (``python -m bench.dependencies_app --port N``)."""

from __future__ import annotations

import argparse
import gc
import importlib

import uvicorn

DEPENDENCIES = (
    "typer",
    "rich.console",
    "structlog",
    "pydantic_settings",
    "limits",
    "sqlalchemy.orm",
    "sqlalchemy.ext.asyncio",
    "sqlalchemy.dialects.sqlite.aiosqlite",
    "sqlalchemy.dialects.postgresql",
    "pluggy",
    "cryptography.hazmat.primitives.kdf.hkdf",
    "cryptography.hazmat.primitives.ciphers.aead",
    "dramatiq.brokers.stub",
    "dramatiq.middleware",
    "apscheduler.schedulers.asyncio",
    "starlette.applications",
)

if __name__ == "__main__":
    gc.disable()  # as ``legetime serve`` imports
    for name in DEPENDENCIES:
        importlib.import_module(name)
    gc.enable()
    from bench.minimal_app import app

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8000)
    uvicorn.run(app, host="127.0.0.1", port=parser.parse_args().port, log_level="warning")
