"""A local fake of the Example SMS gateway: its message API on a free port, and what it sent.

The provider under test talks to it over a real socket, with its own HTTP client, as in production.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from legetime_example_sms.gateway import SIGNATURE_HEADER, ExampleGatewaySettings

from legetime.sdk import DeliveryStatus


class GatewayFake:
    """The gateway's side: it accepts messages (once per ``client_ref``) and signs delivery reports."""

    api_key = "test-api-key"
    webhook_secret = "test-webhook-secret"

    def __init__(self) -> None:
        self.base_url = ""
        self.sent: list[dict[str, str]] = []
        """Every message the gateway accepted (and would have sent), with its ``id``."""
        self._lock = threading.Lock()

    def settings(self) -> ExampleGatewaySettings:
        """The provider's settings, pointed at this fake."""
        return ExampleGatewaySettings(
            base_url=self.base_url, api_key=self.api_key, webhook_secret=self.webhook_secret
        )

    def sent_count(self, client_ref: str) -> int:
        return sum(message["client_ref"] == client_ref for message in self.sent)

    def delivery_report(
        self, provider_id: str, status: DeliveryStatus, at: datetime
    ) -> tuple[dict[str, str], bytes]:
        """A delivery report as the gateway POSTs it: headers and body."""
        body = json.dumps({"id": provider_id, "status": status.value, "timestamp": at.isoformat()}).encode()
        signature = hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        return {SIGNATURE_HEADER: f"sha256={signature}", "Content-Type": "application/json"}, body

    def post_message(self, authorization: str, payload: Any) -> tuple[int, dict[str, str]]:
        """``POST /v1/messages``: status and JSON answer."""
        if authorization != f"Bearer {self.api_key}":
            return 401, {"error": "unauthorized"}
        fields = ("to", "from", "text", "client_ref")
        if not isinstance(payload, dict) or not all(isinstance(payload.get(f), str) for f in fields):
            return 400, {"error": "to, from, text and client_ref are required"}
        message = {field: payload[field] for field in fields}
        with self._lock:
            earlier = next((m for m in self.sent if m["client_ref"] == message["client_ref"]), None)
            if earlier is None:
                self.sent.append({**message, "id": f"msg_{uuid.uuid4().hex}"})
                return 201, {"id": self.sent[-1]["id"]}
        if {field: earlier[field] for field in fields} != message:
            return 409, {"error": "client_ref already used for another message"}
        return 200, {"id": earlier["id"]}

    @contextmanager
    def serve(self) -> Iterator[GatewayFake]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/v1/messages":
                    self._answer(404, {"error": "not found"})
                    return
                length = int(self.headers.get("Content-Length", "0"))
                try:
                    payload = json.loads(self.rfile.read(length))
                except ValueError:
                    payload = None
                self._answer(*fake.post_message(self.headers.get("Authorization", ""), payload))

            def _answer(self, status: int, answer: dict[str, str]) -> None:
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: pytest shows what matters

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits for the serving loop to look up (0.5 s by default).
        thread = threading.Thread(target=server.serve_forever, args=(0.01,), name="gateway-fake", daemon=True)
        thread.start()
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
