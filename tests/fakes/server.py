"""Serve an ASGI app (a provider fake) on a real local port, over HTTP or HTTPS with client certificates.

A real socket, not an in-process transport: the plugin under test builds its own HTTP client exactly as in
production (base URL, TLS, mutual TLS), so what is tested is what runs.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import uvicorn


@dataclass(frozen=True)
class Tls:
    """Server certificate and key (PEM files); ``client_ca`` makes the server demand a client certificate
    signed by that CA (mutual TLS)."""

    certfile: Path
    keyfile: Path
    client_ca: Path | None = None


class ProviderFake(Protocol):
    """A local fake of a provider's API: an ASGI app that knows its own address, and the plugin settings
    that point the provider at it (``LEGETIME_<prefix>_<NAME>`` names without the prefix)."""

    base_url: str

    @property
    def app(self) -> Any: ...

    def plugin_settings(self) -> dict[str, str]: ...


F = TypeVar("F", bound=ProviderFake)


@contextmanager
def serve_fake(fake: F) -> Iterator[F]:
    """Serve a provider fake on a free port, with its ``base_url`` set before anyone uses it."""
    with serve(fake.app) as url:
        fake.base_url = url
        yield fake


@contextmanager
def serve(app: Any, *, tls: Tls | None = None) -> Iterator[str]:
    """Run ``app`` in a background thread on 127.0.0.1 and a free port; yield its base URL."""
    options: dict[str, Any] = {}
    if tls is not None:
        options = {"ssl_certfile": str(tls.certfile), "ssl_keyfile": str(tls.keyfile)}
        if tls.client_ca is not None:
            options |= {"ssl_ca_certs": str(tls.client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False, **options
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, name="provider-fake", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the provider fake did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
