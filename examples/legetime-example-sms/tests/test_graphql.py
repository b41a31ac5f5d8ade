"""The plugin's GraphQL field, served by ``legetime serve`` with the plugin installed (found through its
entry point) and its provider enabled from the environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

QUERY = '{ exampleSmsSegments(text: "Hei 😀") { encoding segments } }'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """``legetime migrate`` and ``legetime serve`` on a free port, as an operator runs them, with the
    example gateway as the SMS provider; the base URL."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("LEGETIME_")}
    env |= {
        "LEGETIME_DATA_DIR": str(tmp_path / "data"),
        "LEGETIME_SMS_PROVIDERS": "example-gateway",
        "LEGETIME_SMS_EXAMPLE_GATEWAY_API_KEY": "test-api-key",
        "LEGETIME_SMS_EXAMPLE_GATEWAY_WEBHOOK_SECRET": "test-webhook-secret",
    }
    log_path = tmp_path / "legetime.log"
    legetime = [sys.executable, "-m", "legetime.cli"]
    with log_path.open("w") as log:
        subprocess.run([*legetime, "migrate"], env=env, stdout=log, stderr=log, check=True, timeout=60)
        port = free_port()
        server = subprocess.Popen([*legetime, "serve", "--port", str(port)], env=env, stdout=log, stderr=log)
        try:
            yield wait_until_up(f"http://127.0.0.1:{port}", server, log_path)
        finally:
            server.terminate()
            server.wait(timeout=10)


def wait_until_up(url: str, server: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"legetime serve exited:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return url
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.1)
    pytest.fail(f"legetime serve did not start:\n{log_path.read_text()}")


def test_the_contributed_field_is_served(served: str) -> None:
    response = httpx.post(f"{served}/graphql", json={"query": QUERY})
    assert response.status_code == 200
    assert response.json() == {"data": {"exampleSmsSegments": {"encoding": "UCS-2", "segments": 1}}}
