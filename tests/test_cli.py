"""The operator's commands: demo data, serving the embedded default end to end, the GraphQL SDL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from legetime.core.platform.runtime import Platform
from legetime.schema.build import build_schema
from tests.cli import ROOT, run_cli


def test_demo_is_idempotent_and_prints_how_to_log_in(tmp_path: Path) -> None:
    env = {"LEGETIME_DATA_DIR": str(tmp_path)}
    assert run_cli("migrate", env=env).returncode == 0
    first = run_cli("demo", env=env)
    second = run_cli("demo", env=env)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    for national_id in ("14897800048", "02818500125", "17889200022"):
        assert national_id in first.stdout
    assert "bankid-test" in first.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_graphql_on_the_embedded_default(tmp_path: Path) -> None:
    """What `make run` does: migrate, demo, serve — then GraphiQL and a query answer."""
    env = {**os.environ, "LEGETIME_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith("LEGETIME_") or k in ("LEGETIME_DATA_DIR",)}
    assert run_cli("migrate", env={"LEGETIME_DATA_DIR": str(tmp_path)}).returncode == 0
    port = _free_port()
    env["PORT"] = str(port)  # `serve` honours $PORT
    server = subprocess.Popen(
        [sys.executable, "-m", "legetime.cli", "serve"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("server did not become ready")
        assert "graphiql" in httpx.get(f"{base}/graphql", headers={"Accept": "text/html"}).text.lower()
        answer = httpx.post(f"{base}/graphql", json={"query": "{ platform { version price { formatted } } }"})
        assert answer.json()["data"]["platform"]["price"]["formatted"] == "kr 350,00"
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0]
    assert server.returncode in (0, -15), output


def test_schema_prints_the_sdl_this_installation_serves(tmp_path: Path) -> None:
    """`legetime schema` writes only where it is told: stdout, --output FILE; --check FILE compares."""
    env = {"LEGETIME_DATA_DIR": str(tmp_path / "data")}
    served = build_schema(Platform.create()).as_str() + "\n"  # the same settings: none but the data dir

    printed = run_cli("schema", env=env)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == served

    sdl = tmp_path / "schema.graphql"
    assert run_cli("schema", "--output", str(sdl), env=env).returncode == 0
    assert sdl.read_text() == served
    assert run_cli("schema", "--check", str(sdl), env=env).returncode == 0
    sdl.write_text(served.replace("type Query", "type Kveri"))
    stale = run_cli("schema", "--check", str(sdl), env=env)
    assert stale.returncode == 1
    assert "differs" in stale.stderr
