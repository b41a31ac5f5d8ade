"""The machinery of ``python -m bench``: processes it starts (and always stops), wrk runs, the figures.

Every process is started in a session of its own and stopped by its own process group id (SIGTERM,
then SIGKILL), so nothing else on the machine is touched and nothing of ours outlives the run, even on
Ctrl-C or a failure halfway.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent  # the environment `python -m bench` runs in (its `legetime`, `uvicorn`)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def pinned(core: int | None, command: Sequence[str]) -> list[str]:
    """``command`` pinned to one core with taskset (when there is more than one core and taskset)."""
    taskset = shutil.which("taskset")
    if core is None or taskset is None or cpu_count() < 2:
        return list(command)
    return [taskset, "-c", str(core), *command]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    _log_file: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss_mb(self) -> float | None:
        """Resident memory of the process (VmRSS), in MB; None when it is gone."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Processes:
    """The processes of one run. ``stop`` (and leaving the ``with``) ends them all."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[Proc] = []
        self._counter = 0

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(self, name: str, command: Sequence[str], env: dict[str, str] | None = None) -> Proc:
        self._counter += 1
        log = self.logs / f"{self._counter:02d}-{name}.log"
        log_file = log.open("wb")
        popen = subprocess.Popen(
            list(command),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: we stop exactly it and its children
        )
        proc = Proc(name, popen, log, log_file)
        self.running.append(proc)
        return proc

    def stop(self, proc: Proc, timeout: float = 15.0) -> float:
        """SIGTERM, wait (SIGKILL after ``timeout``); returns the seconds the process took to exit."""
        started = time.perf_counter()
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.popen.wait()
        elapsed = time.perf_counter() - started
        # Children of the group that outlived their leader (a worker's threads are threads, but be sure).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc._log_file.close()
        if proc in self.running:
            self.running.remove(proc)
        return elapsed

    def stop_all(self) -> None:
        for proc in reversed(list(self.running)):
            self.stop(proc, timeout=10.0)


def wait_http(url: str, proc: Proc | None = None, timeout: float = 60.0) -> None:
    """Wait until ``url`` answers 200 (or fail with the process's log when it died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s" + (f":\n{proc.tail()}" if proc else ""))


# --- wrk ---------------------------------------------------------------------------------------------

WRK_SCRIPT = """\
-- Generated by bench: one GraphQL POST with a bearer token, and the latency distribution as JSON.
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = {auth}

function done(summary, latency, requests)
  io.write(string.format(
    "BENCH_JSON {{\\"requests\\":%d,\\"duration_us\\":%d,\\"errors\\":%d,\\"non2xx\\":%d,"
    .. "\\"p50_us\\":%d,\\"p90_us\\":%d,\\"p99_us\\":%d,\\"max_us\\":%d}}\\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for ASCII text


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is needed for the HTTP measurements: install it (Debian: apt-get install wrk).")
    return found


@dataclass(frozen=True)
class Load:
    """One wrk run's figures."""

    label: str
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def write_wrk_script(path: Path, body: str, token: str) -> Path:
    path.write_text(WRK_SCRIPT.format(body=lua_string(body), auth=lua_string(f"Bearer {token}")))
    return path


def wrk_command(url: str, script: Path, *, seconds: float, connections: int, core: int | None) -> list[str]:
    return pinned(
        core,
        [
            wrk_binary(),
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
    )


def parse_wrk(label: str, output: str) -> Load:
    match = re.search(r"^BENCH_JSON (\{.*\})$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk gave no figures for {label}:\n{output}")
    figures: dict[str, Any] = json.loads(match.group(1))
    return Load(
        label=label,
        requests=int(figures["requests"]),
        seconds=figures["duration_us"] / 1e6,
        errors=int(figures["errors"]) + int(figures["non2xx"]),
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
    )


def run_wrk(
    label: str, url: str, script: Path, *, seconds: float, connections: int, core: int | None
) -> Load:
    command = wrk_command(url, script, seconds=seconds, connections=connections, core=core)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed for {label}: {done.stderr}{done.stdout}")
    return parse_wrk(label, done.stdout)


def median_loads(label: str, loads: Sequence[Load]) -> Load:
    """The run with the median throughput of several interleaved rounds."""
    ordered = sorted(loads, key=lambda load: load.rps)
    chosen = ordered[len(ordered) // 2]
    return Load(label, chosen.requests, chosen.seconds, chosen.errors, chosen.p50_ms, chosen.p99_ms)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@contextlib.contextmanager
def timer() -> Iterator[list[float]]:
    """``with timer() as t: ...`` then ``t[0]`` is the elapsed seconds."""
    box: list[float] = []
    started = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - started)
