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


# --- CPU quotas (cgroup v1 cpu controller) ----------------------------------------------------------

CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
CFS_PERIOD_US = 100_000
RESERVED_SHARES = 8 * 1024  # eight times a process's default weight (1024)


class CpuQuotas:
    """Groups of the bench's own under the cgroup v1 cpu controller, each with the same CFS quota: a
    process placed in one gets at most ``cpus`` of a CPU, as a deployment caps a container, and (its
    weight) at least that much while other processes want the cores too. ``close``
    (and leaving the ``with``) moves anything still in them back to the root group and removes them."""

    def __init__(self, prefix: str, cpus: float) -> None:
        self.prefix = prefix
        self.cpus = cpus
        self.groups: dict[str, Path] = {}

    def __enter__(self) -> CpuQuotas:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def unavailable(self) -> str | None:
        """Why quotas cannot be set here (None: they can): a probe group is made and removed."""
        if not (CGROUP_CPU / "cpu.cfs_quota_us").exists():
            return f"no cgroup v1 cpu controller at {CGROUP_CPU}"
        try:
            self._group("probe")
        except OSError as exc:
            return f"cannot make a cpu cgroup ({exc.strerror or exc})"
        finally:
            self.close()
        return None

    def _group(self, name: str) -> Path:
        group = self.groups.get(name)
        if group is None:
            group = CGROUP_CPU / f"{self.prefix}-{name}"
            group.mkdir()
            self.groups[name] = group
            (group / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(round(self.cpus * CFS_PERIOD_US)))
            # And a high weight, so that other work on a shared machine does not take the quota away:
            # the process gets its CPU as a container with that much reserved does (request = limit).
            (group / "cpu.shares").write_text(str(RESERVED_SHARES))
        return group

    def place(self, name: str, pid: int) -> None:
        """Move process ``pid`` (all its threads) into the group ``name``, made on first use."""
        (self._group(name) / "cgroup.procs").write_text(str(pid))

    def throttled(self, name: str) -> tuple[int, int]:
        """(periods the group ran in, periods it was throttled in) since it was made."""
        stat = dict(
            line.split() for line in (self.groups[name] / "cpu.stat").read_text().splitlines() if line.strip()
        )
        return int(stat.get("nr_periods", 0)), int(stat.get("nr_throttled", 0))

    def close(self) -> None:
        for name, group in list(self.groups.items()):
            with contextlib.suppress(OSError):
                for pid in (group / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):  # gone meanwhile
                        (CGROUP_CPU / "cgroup.procs").write_text(pid)
            with contextlib.suppress(OSError):
                group.rmdir()
            del self.groups[name]


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name (2nd field) may hold spaces: the parent pid is the 2nd field after ")".
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return sorted(found)


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
                    inodes.add(fields[9])
    return inodes


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on ``port``."""
    inodes = _listening_inodes(port)
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return True
    return False


def serving_processes(proc: Proc, port: int, count: int, timeout: float = 60.0) -> list[int]:
    """The ``count`` processes of ``proc`` that listen on ``port``: ``proc`` itself for one, its children
    (``legetime serve --workers N`` starts N of them) for more; waits until all of them listen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        candidates = [proc.pid] if count == 1 else children(proc.pid)
        ready = [pid for pid in candidates if listens(pid, port)]
        if len(ready) == count:
            return ready
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name}: {count} processes did not listen on {port} within {timeout:.0f} s")
