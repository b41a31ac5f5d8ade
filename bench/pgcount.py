"""A counting TCP proxy in front of PostgreSQL: what a server sends on the wire, per request.

It forwards bytes untouched and reads the client's side of the protocol (v3, no TLS: the bench connects
with ``ssl=disable``): each simple ``Query`` or extended-protocol ``Sync`` is one round trip (the client
waits for ReadyForQuery), each ``Query`` or ``Execute`` one statement run. Runs in a thread of its own.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from dataclasses import dataclass


@dataclass
class Counts:
    round_trips: int = 0
    statements: int = 0
    connections: int = 0


class CountingProxy:
    def __init__(self, listen_port: int, target_host: str, target_port: int, *, trace: bool = False) -> None:
        self.listen_port, self.target = listen_port, (target_host, target_port)
        self.counts = Counts()
        self.trace: list[str] | None = [] if trace else None
        """With ``trace``: each round trip's statements as text (``Query``, or a ``Parse``'s text; a
        prepared statement's by its name), for reading what a request sends (``python -m bench.profile``)."""
        self._prepared: dict[bytes, str] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> CountingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def reset(self) -> Counts:
        with self._lock:
            counts, self.counts = self.counts, Counts()
        return counts

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", self.listen_port)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.counts.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, upstream_writer, count=True),
            self._pipe(upstream_reader, writer, count=False),
            return_exceptions=True,
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, count: bool) -> None:
        buffer = b""
        pending: list[str] = []  # the statements of the round trip under way (trace)
        bound = ""
        started = False  # the startup packets (SSLRequest, StartupMessage) have no type byte
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
                if not count:
                    continue
                buffer += data
                while True:
                    if not started:
                        if len(buffer) < 8:
                            break
                        length, code = struct.unpack("!ii", buffer[:8])
                        if len(buffer) < length:
                            break
                        buffer = buffer[length:]
                        started = code == 196608  # protocol 3.0: typed messages follow
                        continue
                    if len(buffer) < 5:
                        break
                    kind, length = buffer[:1], struct.unpack("!i", buffer[1:5])[0]
                    if len(buffer) < 1 + length:
                        break
                    body, buffer = buffer[5 : 1 + length], buffer[1 + length :]
                    if self.trace is not None:
                        if kind == b"P":  # Parse: name, text
                            name, _, rest = body.partition(b"\0")
                            self._prepared[name] = rest.partition(b"\0")[0].decode(errors="replace")
                            bound = self._prepared[name]
                        elif kind == b"B":  # Bind: portal, statement name
                            statement = body.split(b"\0", 2)[1]
                            bound = self._prepared.get(statement, f"<prepared {statement!r}>")
                        elif kind == b"E":
                            pending.append(bound)
                        elif kind == b"Q":
                            pending.append(body.rstrip(b"\0").decode(errors="replace"))
                        if kind in (b"Q", b"S"):
                            with self._lock:
                                self.trace.append(" | ".join(pending) or "(sync)")
                            pending = []
                    with self._lock:
                        if kind in (b"Q", b"S"):
                            self.counts.round_trips += 1
                        if kind in (b"Q", b"E"):
                            self.counts.statements += 1
        finally:
            writer.close()
