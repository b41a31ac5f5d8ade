"""Benchmark for issue 12 (performance): one command, every measurement interleaved with its baseline.

    python -m bench                          # everything (about 6 minutes with the defaults)
    python -m bench caselist sqlite          # a subset: caselist scale sqlite jobs startup statements
    python -m bench --duration 20 --rounds 3 # longer wrk runs, more interleaved rounds
    python -m bench scale --scale-cpu 0.3    # two API processes vs one, each capped at 0.3 CPU

It starts what it needs and stops all of it at the end (also on Ctrl-C or a failure): a throwaway
PostgreSQL database (dropped afterwards), ``legetime serve`` and ``legetime worker`` on it with Redis and a
queue namespace of its own, the hand-written baseline (``bench/baseline_app.py``) with and without the
access log, and for the other parts a temporary data directory (SQLite default) and minimal apps. The
data is made through the project's own code: ``legetime migrate``, ``legetime demo`` and GraphQL
mutations (``bench/seed.py``).

Timings on a small machine are noisy; what counts is the ratio to a baseline measured in the same run.
The HTTP server under test gets core 0 and wrk core 1 (taskset), 8 connections, a warm-up before each
measured run, and the servers take turns round by round. The last thing printed is a Markdown table
for docs/performance.md.

Needs PostgreSQL (trust auth) and Redis, by default at 127.0.0.1:5432 (user postgres) and
127.0.0.1:6379, and wrk (Debian: ``apt-get install wrk``). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx

from bench.harness import (
    BIN,
    CFS_PERIOD_US,
    RESERVED_SHARES,
    CpuQuotas,
    Load,
    Proc,
    Processes,
    cpu_count,
    free_port,
    median,
    median_loads,
    pinned,
    run_wrk,
    serving_processes,
    wait_http,
    write_wrk_script,
    wrk_binary,
)
from bench.seed import CASE_LIST, Client, seed_cases
from bench.submits import run_submits

PARTS = ("caselist", "scale", "sqlite", "jobs", "startup", "statements")
SERVER_CORE, LOAD_CORE = 0, 1
POSTGRAPHILE_RPS = 335.0  # the figure for PostGraphile 4 on the same query (not run here)


# --- results ---------------------------------------------------------------------------------------


@dataclass
class Check:
    """One line of the summary: a figure, its baseline, the ratio and the target."""

    what: str
    legetime: str
    baseline: str
    ratio: float | None
    target: str
    passed: bool | None

    @property
    def verdict(self) -> str:
        return "" if self.passed is None else ("PASS" if self.passed else "FAIL")


@dataclass
class Results:
    loads: list[tuple[str, Load]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def load(self, section: str, load: Load) -> None:
        self.loads.append((section, load))
        print(
            f"  {load.label}: {load.rps:.1f} req/s, p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms"
            + (f", {load.errors} errors" if load.errors else ""),
            flush=True,
        )

    def check(self, check: Check) -> None:
        self.checks.append(check)
        ratio = "" if check.ratio is None else f" ratio {check.ratio:.2f}"
        against = f" vs {check.baseline}" if check.baseline else ""
        print(f"  {check.what}: {check.legetime}{against}{ratio} {check.target} {check.verdict}".rstrip())

    def figure(self, what: str, value: str) -> None:
        """A figure without a baseline or a target (memory, shutdown time)."""
        self.check(Check(what, value, "", None, "", None))

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def markdown(self, header: str) -> str:
        out = [header, ""]
        if self.loads:
            out += ["| part | server | req/s | p50 | p99 | errors |", "|---|---|---:|---:|---:|---:|"]
            for section, load in self.loads:
                out.append(
                    f"| {section} | {load.label} | {load.rps:.1f} | {ms(load.p50_ms)} | {ms(load.p99_ms)} "
                    f"| {load.errors} |"
                )
            out.append("")
        if self.checks:
            out += [
                "| measurement | Legetime | baseline | ratio | target | result |",
                "|---|---:|---:|---:|---|---|",
            ]
            for c in self.checks:
                ratio = "" if c.ratio is None else f"{c.ratio:.2f}"
                out.append(f"| {c.what} | {c.legetime} | {c.baseline} | {ratio} | {c.target} | {c.verdict} |")
            out.append("")
        out += [f"- {note}" for note in self.notes]
        return "\n".join(out)


def ms(value: float) -> str:
    return (
        f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"
    )


# --- configuration and environment -------------------------------------------------------------------


@dataclass
class Config:
    duration: float
    warmup: float
    rounds: int
    connections: int
    cases: int
    jobs: int
    startup_runs: int
    postgres: str  # host:port
    database: str
    redis_url: str
    baseline_log: str
    keep: bool
    work: Path
    scale_cpu: float = 0.2
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    namespace: str = field(default_factory=lambda: f"legetime-bench-{uuid.uuid4().hex[:8]}")

    @property
    def pg_host(self) -> str:
        return self.postgres.rpartition(":")[0] or "127.0.0.1"

    @property
    def pg_port(self) -> int:
        return int(self.postgres.rpartition(":")[2])

    def database_url(self, port: int | None = None, *, driver: str = "postgresql+asyncpg") -> str:
        url = f"{driver}://postgres@{self.pg_host}:{port or self.pg_port}/{self.database}"
        if port is None:
            return url
        # The counting proxy reads plain text: no TLS (asyncpg's keyword differs from libpq's DSN form).
        return url + ("?ssl=disable" if "+asyncpg" in driver else "?sslmode=disable")

    def env(self, data_dir: Path, *, postgres: bool, proxy_port: int | None = None) -> dict[str, str]:
        """The environment of a Legetime process: nothing LEGETIME_* inherited but what is set here."""
        # Bytecode is cached as on an installed system (pip compiles a wheel's modules at install): a shell
        # with PYTHONDONTWRITEBYTECODE would make every start compile the project's modules again.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("LEGETIME_", "BENCH_")) and k != "PYTHONDONTWRITEBYTECODE"
        }
        env.update(
            PYTHONUNBUFFERED="1",
            LEGETIME_DATA_DIR=str(data_dir),
            LEGETIME_SECRET_KEY=self.secret,
            LEGETIME_LOGIN_RATE_LIMIT="1000/minute",  # the bench logs in a few times from one address
        )
        if postgres:
            env.update(
                LEGETIME_DATABASE_URL=self.database_url(proxy_port),
                LEGETIME_REDIS_URL=self.redis_url,
                LEGETIME_QUEUE_NAMESPACE=self.namespace,
            )
        return env


def legetime_command(*args: str) -> list[str]:
    script = BIN / "legetime"
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "legetime.cli", *args]


def run_cli(cfg: Config, env: dict[str, str], *args: str) -> None:
    done = subprocess.run(legetime_command(*args), env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"legetime {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def serve(
    procs: Processes, name: str, env: dict[str, str], core: int | None, workers: int = 1
) -> tuple[Proc, str]:
    port = free_port()
    command = legetime_command("serve", "--port", str(port), "--workers", str(workers))
    proc = procs.start(name, pinned(core, command), env)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc)
    return proc, url


# --- PostgreSQL: the throwaway database, seeded --------------------------------------------------------


async def _admin(cfg: Config, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=cfg.pg_host, port=cfg.pg_port, user="postgres", database="postgres")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _fetchval(cfg: Config, query: str) -> object:
    import asyncpg

    conn = await asyncpg.connect(host=cfg.pg_host, port=cfg.pg_port, user="postgres", database=cfg.database)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


@dataclass
class Postgres:
    """The seeded database, and the patient's token for the case list."""

    token: str
    log_mode: str
    data_dir: Path


@contextlib.contextmanager
def postgres_database(cfg: Config, procs: Processes) -> Iterator[Postgres]:
    asyncio.run(_admin(cfg, f'DROP DATABASE IF EXISTS "{cfg.database}" WITH (FORCE)'))
    asyncio.run(_admin(cfg, f'CREATE DATABASE "{cfg.database}"'))
    try:
        data_dir = cfg.work / "pg-data"
        data_dir.mkdir(exist_ok=True)
        env = cfg.env(data_dir, postgres=True)
        print(
            f"PostgreSQL database {cfg.database}: migrate, demo, {cfg.cases} cases through GraphQL",
            flush=True,
        )
        run_cli(cfg, env, "migrate")
        run_cli(cfg, env, "demo")
        proc, url = serve(procs, "seed-serve", env, None)
        client = Client(url)
        try:
            token = seed_cases(client, cfg.cases)
        finally:
            client.close()
            procs.stop(proc)
        nullable = asyncio.run(
            _fetchval(
                cfg,
                "SELECT is_nullable FROM information_schema.columns "
                "WHERE table_name = 'audit_event' AND column_name = 'hash'",
            )
        )
        mode = cfg.baseline_log
        if mode == "auto":
            # Match what this tree's Legetime does: unchained appends once `hash` may be NULL (0008).
            mode = "unchained" if nullable == "YES" else "chained"
        yield Postgres(token=token, log_mode=mode, data_dir=data_dir)
    finally:
        if not cfg.keep:
            with contextlib.suppress(Exception):
                asyncio.run(_admin(cfg, f'DROP DATABASE IF EXISTS "{cfg.database}" WITH (FORCE)'))


def baseline(
    procs: Processes, cfg: Config, mode: str, core: int | None, proxy_port: int | None = None
) -> tuple[Proc, str]:
    port = free_port()
    env = cfg.env(cfg.work, postgres=False)
    env.update(BENCH_DSN=cfg.database_url(proxy_port, driver="postgresql"), BENCH_ACCESS_LOG=mode)
    command = [sys.executable, "-m", "uvicorn", "bench.baseline_app:app", "--port", str(port)]
    proc = procs.start(
        f"baseline-{mode}", pinned(core, [*command, "--no-access-log", "--log-level", "warning"]), env
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc)
    return proc, url


def case_list_body() -> str:
    import json

    return json.dumps({"query": CASE_LIST, "operationName": "CaseList"})


def fetch(url: str, token: str) -> bytes:
    response = httpx.post(
        f"{url}/graphql",
        content=case_list_body(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.content


def measure(cfg: Config, label: str, url: str, script: Path, core: int | None) -> Load:
    if cfg.warmup > 0:
        run_wrk(label, f"{url}/graphql", script, seconds=cfg.warmup, connections=cfg.connections, core=core)
    return run_wrk(
        label, f"{url}/graphql", script, seconds=cfg.duration, connections=cfg.connections, core=core
    )


# --- the parts ----------------------------------------------------------------------------------------


def part_caselist(cfg: Config, procs: Processes, pg: Postgres, results: Results) -> None:
    print(f"\n== case list on PostgreSQL (access log in the baseline: {pg.log_mode})", flush=True)
    env = cfg.env(pg.data_dir, postgres=True)
    worker = procs.start("worker", pinned(LOAD_CORE, legetime_command("worker")), env)
    app, app_url = serve(procs, "legetime-serve", env, SERVER_CORE)
    _, log_url = baseline(procs, cfg, pg.log_mode, SERVER_CORE)
    _, nolog_url = baseline(procs, cfg, "off", SERVER_CORE)
    if worker.popen.poll() is not None:
        raise RuntimeError(f"legetime worker exited:\n{worker.tail()}")

    ours, theirs = fetch(app_url, pg.token), fetch(log_url, pg.token)
    same = ours == theirs and ours == fetch(nolog_url, pg.token)
    edges = ours.count(b'"node"')
    if same:
        results.note(f"the baseline's answer is byte for byte Legetime's ({len(ours)} bytes, {edges} cases)")
    else:
        results.note("the baseline's answer DIFFERS from Legetime's; figures are not comparable")
        print(f"legetime: {ours[:600]!r}\nbaseline: {theirs[:600]!r}")
    if b'"errors"' in ours or edges != min(cfg.cases, 50):
        raise RuntimeError(f"unexpected case list from Legetime: {ours[:500]!r}")

    script = write_wrk_script(cfg.work / "caselist.lua", case_list_body(), pg.token)
    servers = [
        ("Legetime (PostgreSQL, Redis URL set)", app_url),
        (f"baseline: Starlette + asyncpg, access log ({pg.log_mode})", log_url),
        ("baseline without the access log", nolog_url),
    ]
    runs: dict[str, list[Load]] = {label: [] for label, _ in servers}
    for round_ in range(cfg.rounds):
        print(f" round {round_ + 1}/{cfg.rounds}", flush=True)
        for label, url in servers:
            load = measure(cfg, label, url, script, LOAD_CORE)
            runs[label].append(load)
            print(f"  {label}: {load.rps:.1f} req/s, p99 {load.p99_ms:.1f} ms", flush=True)
    legetime, with_log, without_log = (median_loads(label, runs[label]) for label, _ in servers)
    for load in (legetime, with_log, without_log):
        results.load("case list", load)

    rss = app.rss_mb()
    results.check(
        Check(
            "case list req/s ÷ baseline with the access log",
            f"{legetime.rps:.0f} req/s",
            f"{with_log.rps:.0f} req/s",
            legetime.rps / with_log.rps,
            "≥ 0.5",
            legetime.rps / with_log.rps >= 0.5,
        )
    )
    results.check(
        Check(
            "case list p99 ÷ baseline p99",
            ms(legetime.p99_ms),
            ms(with_log.p99_ms),
            legetime.p99_ms / with_log.p99_ms,
            "≤ 2",
            legetime.p99_ms / with_log.p99_ms <= 2,
        )
    )
    results.check(
        Check(
            "case list req/s ÷ PostGraphile's 335 req/s (the issue's figure, not run here)",
            f"{legetime.rps:.0f} req/s",
            f"{POSTGRAPHILE_RPS:.0f} req/s",
            legetime.rps / POSTGRAPHILE_RPS,
            "≥ 1 (long term)",
            legetime.rps >= POSTGRAPHILE_RPS,
        )
    )
    results.check(
        Check(
            "baseline: access log's cost (with ÷ without)",
            "",
            f"{with_log.rps:.0f} / {without_log.rps:.0f} req/s",
            with_log.rps / without_log.rps,
            "",
            None,
        )
    )
    results.figure("RSS of `legetime serve` after the load", f"{rss or 0:.0f} MB")
    shutdown = procs.stop(app)
    # The plain worker must not take the jobs part's jobs (it has no handler for them: they would fail).
    procs.stop(worker)
    results.figure("shutdown of `legetime serve` after SIGTERM (PostgreSQL, after load)", f"{shutdown:.2f} s")


def part_scale(cfg: Config, procs: Processes, pg: Postgres, results: Results) -> None:
    """Two API processes against one, on the case list and on submits. Each API process gets the same CPU
    quota in a cgroup of its own (``--scale-cpu``), as a deployment caps its containers: one process has
    that much CPU, two have twice as much, and PostgreSQL and the load keep the rest of the machine. The
    quota must leave the rest enough for the two processes' load: with 0.4 CPU each on two cores, the
    pair (about 240 case lists a second) outran what PostgreSQL and wrk could do beside them.
    Without writable cgroups: nothing capped (the API processes, PostgreSQL and the load share the
    machine's cores, which caps what a second process can add), said so in a note."""
    quotas: CpuQuotas | None = None
    if cfg.scale_cpu > 0:
        quotas = CpuQuotas(f"legetime-bench-{cfg.namespace.rpartition('-')[2]}", cfg.scale_cpu)
        if (reason := quotas.unavailable()) is not None:
            print(f"  note: {reason}; the API processes run uncapped (the old way)", flush=True)
            quotas = None
    capped = f"{cfg.scale_cpu:g} CPU" if quotas is not None else "uncapped"
    print(f"\n== two API processes vs one (PostgreSQL; each API process {capped})", flush=True)
    env = cfg.env(pg.data_dir, postgres=True)
    with contextlib.ExitStack() as stack:
        if quotas is not None:
            stack.enter_context(quotas)  # the groups go at the end, on a failure too
        single, single_url = serve(procs, "scale-single", env, None)
        pair, pair_url = serve(procs, "scale-pair", env, None, workers=2)
        # The servers are stopped before the groups are removed (the stack unwinds after this callback).
        stack.callback(procs.stop, single)
        stack.callback(procs.stop, pair)
        if quotas is not None:
            (pid,) = serving_processes(single, _port(single_url), 1)
            quotas.place("one", pid)
            for index, pid in enumerate(serving_processes(pair, _port(pair_url), 2), 1):
                quotas.place(f"pair-{index}", pid)
        one_label = f"one `legetime serve` ({capped})"
        two_label = "`legetime serve --workers 2`" + (f" ({capped} each)" if quotas else "")
        script = write_wrk_script(cfg.work / "scale.lua", case_list_body(), pg.token)
        singles, pairs = [], []
        for round_ in range(cfg.rounds):
            print(f" round {round_ + 1}/{cfg.rounds}: case list", flush=True)
            singles.append(measure(cfg, one_label, single_url, script, None))
            print(f"  one process: {singles[-1].rps:.1f} req/s", flush=True)
            pairs.append(measure(cfg, two_label, pair_url, script, None))
            print(f"  two processes: {pairs[-1].rps:.1f} req/s", flush=True)
        one, two = median_loads(one_label, singles), median_loads(two_label, pairs)
        results.load("scale: case list", one)
        results.load("scale: case list", two)
        _scale_check(results, "case list", one, two, "req/s")

        # Submits after the case list: each flow adds a case to the patient's list.
        submit_singles: list[Load] = []
        submit_pairs: list[Load] = []
        for round_ in range(cfg.rounds):
            print(f" round {round_ + 1}/{cfg.rounds}: submits", flush=True)
            for url, label, runs in (
                (single_url, one_label, submit_singles),
                (pair_url, two_label, submit_pairs),
            ):
                if cfg.warmup > 0:
                    run_submits(url, pg.token, seconds=cfg.warmup, concurrency=cfg.connections, label=label)
                runs.append(
                    run_submits(url, pg.token, seconds=cfg.duration, concurrency=cfg.connections, label=label)
                )
                print(f"  {label}: {runs[-1].rps:.1f} submitted cases/s", flush=True)
        one_s, two_s = median_loads(one_label, submit_singles), median_loads(two_label, submit_pairs)
        results.load("scale: submits (flows/s)", one_s)
        results.load("scale: submits (flows/s)", two_s)
        _scale_check(results, "submits: startCase, answers, consent, submitCase", one_s, two_s, "flows/s")

        if quotas is not None:
            throttled = []
            for name in ("one", "pair-1", "pair-2"):
                periods, limited = quotas.throttled(name)
                throttled.append(f"{name} {limited}/{periods}")
            results.note(
                f"scale: each API process in a cgroup of its own with a CPU quota of {cfg.scale_cpu:g} CPU "
                f"(cpu.cfs_quota_us {round(cfg.scale_cpu * CFS_PERIOD_US)} per {CFS_PERIOD_US} µs, "
                f"cpu.shares {RESERVED_SHARES}; periods throttled at the quota: {', '.join(throttled)}); "
                f"PostgreSQL and the load uncapped on the {cpu_count()} cores; the two share one port "
                "(`legetime serve --workers 2`) and one load"
            )
        else:
            results.note(
                f"scale: nothing capped: {cpu_count()} cores for the API processes, PostgreSQL and the load "
                "together; the two processes share one port (`legetime serve --workers 2`) and one load"
            )
        results.note(
            f"submits: {cfg.connections} patients' apps in a closed loop, each flow startCase, "
            "answerQuestionnaire, grantConsent and submitCase (a payment reserved with the fake provider); "
            "p50/p99 are a whole flow's"
        )


def _port(url: str) -> int:
    return int(url.rpartition(":")[2])


def _scale_check(results: Results, what: str, one: Load, two: Load, unit: str) -> None:
    ratio = two.rps / one.rps if one.rps else 0.0
    results.check(
        Check(
            f"two API processes ÷ one ({what})",
            f"{two.rps:.1f} {unit}",
            f"{one.rps:.1f} {unit}",
            ratio,
            "≥ 1.7",
            ratio >= 1.7,
        )
    )


def part_sqlite(cfg: Config, procs: Processes, results: Results) -> None:
    print("\n== case list on the SQLite default", flush=True)
    data_dir = cfg.work / "sqlite-data"
    data_dir.mkdir(exist_ok=True)
    env = cfg.env(data_dir, postgres=False)
    run_cli(cfg, env, "migrate")
    run_cli(cfg, env, "demo")
    proc, url = serve(procs, "sqlite-serve", env, SERVER_CORE)
    client = Client(url)
    try:
        token = seed_cases(client, cfg.cases)
    finally:
        client.close()
    script = write_wrk_script(cfg.work / "sqlite.lua", case_list_body(), token)
    runs = []
    for round_ in range(cfg.rounds):
        runs.append(measure(cfg, "Legetime on the SQLite default", url, script, LOAD_CORE))
        print(f"  round {round_ + 1}: {runs[-1].rps:.1f} req/s, p99 {runs[-1].p99_ms:.0f} ms", flush=True)
    load = median_loads("Legetime on the SQLite default", runs)
    results.load("SQLite", load)
    ratio = load.p99_ms / load.p50_ms
    results.check(
        Check(
            "SQLite default: p99 ÷ p50 at 8 connections",
            ms(load.p99_ms),
            ms(load.p50_ms),
            ratio,
            "≤ 5",
            ratio <= 5,
        )
    )
    procs.stop(proc)


def part_jobs(cfg: Config, procs: Processes, pg: Postgres, results: Results) -> None:
    from bench.jobs import run_outbox_jobs, run_raw_redis, wait_for_the_chain

    print(f"\n== {cfg.jobs} jobs: outbox → relay → dramatiq/Redis → worker vs a raw Redis loop", flush=True)
    env = cfg.env(pg.data_dir, postgres=True)
    worker = procs.start("bench-worker", [sys.executable, "-m", "bench.jobs", "worker"], env)
    # The bench process enqueues with the project's code: the same settings as the worker.
    saved = {k: v for k, v in os.environ.items() if k.startswith("LEGETIME_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("LEGETIME_")})
    try:
        time.sleep(1.0)
        if worker.popen.poll() is not None:
            raise RuntimeError(f"bench worker exited:\n{worker.tail()}")
        asyncio.run(run_outbox_jobs(20))  # warm-up: the worker's connections, the actor
        # The worker also chains the access log: what the case-list load wrote is chained first, so that
        # the jobs are measured on their own (and the sequencer's catch-up is a figure of its own).
        waiting, seconds = asyncio.run(wait_for_the_chain())
        if waiting:
            results.figure(
                "access log: entries waiting for the sequencer before the jobs, chained in",
                f"{waiting} in {seconds:.1f} s ({waiting / max(seconds, 1e-9):,.0f}/s)",
            )
        raws, ours, failures = [], [], 0
        key = f"{cfg.namespace}:raw"
        for round_ in range(cfg.rounds):
            raws.append(run_raw_redis(cfg.redis_url, cfg.jobs, key))
            seconds, failed = asyncio.run(run_outbox_jobs(cfg.jobs))
            ours.append(seconds)
            failures += failed
            print(f"  round {round_ + 1}: raw {raws[-1]:.2f} s, Legetime {ours[-1]:.2f} s", flush=True)
        raws.append(run_raw_redis(cfg.redis_url, cfg.jobs, key))
    finally:
        for k in env:
            if k.startswith("LEGETIME_"):
                os.environ.pop(k, None)
        os.environ.update(saved)
        procs.stop(worker)
    ours_s, raw_s = median(ours), median(raws)
    ratio = raw_s / ours_s  # rate ratio: (N / ours) ÷ (N / raw)
    results.check(
        Check(
            f"{cfg.jobs} jobs, trivial handler: rate ÷ raw redis-py LPUSH/BRPOP loop",
            f"{ours_s:.2f} s ({cfg.jobs / ours_s:.0f}/s)",
            f"{raw_s:.2f} s ({cfg.jobs / raw_s:.0f}/s)",
            ratio,
            "≥ 0.3",
            ratio >= 0.3 if not failures else None,
        )
    )
    if failures:
        results.note(f"jobs: {failures} failed, so the jobs figure is not valid (see the worker's log)")


def first_answer(url: str, proc: Proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    body = {"query": "{ __typename }"}
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        try:
            if httpx.post(f"{url}/graphql", json=body, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.005)
    raise RuntimeError(f"{proc.name}: no GraphQL answer within {timeout:.0f} s:\n{proc.tail()}")


def part_startup(cfg: Config, procs: Processes, results: Results) -> None:
    print("\n== start-up, --help and shutdown (SQLite default)", flush=True)
    data_dir = cfg.work / "startup-data"
    data_dir.mkdir(exist_ok=True)
    env = cfg.env(data_dir, postgres=False)
    run_cli(cfg, env, "migrate")
    # "dependencies": the minimal app after importing the platform's third-party dependencies, the floor
    # of what start-up could take without leaving one of them out (bench/dependencies_app.py).
    starts: dict[str, list[float]] = {"legetime": [], "minimal": [], "dependencies": []}
    shutdowns: list[float] = []
    for warm_up in (True,) + (False,) * cfg.startup_runs:  # the first start writes the bytecode caches
        for name in ("legetime", "minimal", "dependencies"):
            port = free_port()
            command = (
                legetime_command("serve", "--port", str(port))
                if name == "legetime"
                else [sys.executable, "-m", f"bench.{name}_app", "--port", str(port)]
            )
            started = time.perf_counter()
            proc = procs.start(f"start-{name}", command, env)
            first_answer(f"http://127.0.0.1:{port}", proc)
            took = time.perf_counter() - started
            stopped = procs.stop(proc)
            if warm_up:
                continue
            starts[name].append(took)
            if name == "legetime":
                shutdowns.append(stopped)
    helps: dict[str, list[float]] = {"legetime": [], "minimal": []}
    for _ in range(max(5, cfg.startup_runs * 2)):
        for name, command in (
            ("legetime", legetime_command("--help")),
            ("minimal", [sys.executable, "-m", "bench.minimal_cli", "--help"]),
        ):
            started = time.perf_counter()
            subprocess.run(
                command, env=env, capture_output=True, check=True, cwd=Path(__file__).parent.parent
            )
            helps[name].append(time.perf_counter() - started)
    ours, theirs = median(starts["legetime"]), median(starts["minimal"])
    results.check(
        Check(
            "cold start to the first GraphQL answer ÷ minimal strawberry + uvicorn app",
            f"{ours:.2f} s",
            f"{theirs:.2f} s",
            ours / theirs,
            "≤ 1.5",
            ours / theirs <= 1.5,
        )
    )
    floor = median(starts["dependencies"])
    results.figure(
        "cold start of the minimal app importing the platform's dependencies first (the floor) ÷ minimal app",
        f"{floor:.2f} s, ratio {floor / theirs:.2f}",
    )
    ours, theirs = median(helps["legetime"]), median(helps["minimal"])
    results.check(
        Check(
            "`legetime --help` ÷ minimal Typer app",
            f"{ours:.2f} s",
            f"{theirs:.2f} s",
            ours / theirs,
            "≤ 2",
            ours / theirs <= 2,
        )
    )
    results.figure("shutdown of `legetime serve` after SIGTERM (SQLite, idle)", f"{median(shutdowns):.2f} s")


def part_statements(cfg: Config, procs: Processes, pg: Postgres, results: Results) -> None:
    from bench.pgcount import CountingProxy

    print("\n== statements and round trips per case-list request (on the wire)", flush=True)
    requests = 20
    figures = {}
    for name in ("legetime", "baseline"):
        port = free_port()
        proxy = CountingProxy(port, cfg.pg_host, cfg.pg_port).start()
        try:
            if name == "legetime":
                proc, url = serve(
                    procs, "count-serve", cfg.env(pg.data_dir, postgres=True, proxy_port=port), None
                )
            else:
                proc, url = baseline(procs, cfg, pg.log_mode, None, proxy_port=port)
            fetch(url, pg.token)  # warm: connections open, statements prepared
            proxy.reset()
            for _ in range(requests):
                fetch(url, pg.token)
            counts = proxy.reset()
            procs.stop(proc)
        finally:
            proxy.stop()
        figures[name] = counts
        print(
            f"  {name}: {counts.round_trips / requests:.1f} round trips, "
            f"{counts.statements / requests:.1f} statements"
        )
    ours, theirs = figures["legetime"], figures["baseline"]
    results.check(
        Check(
            "round trips to PostgreSQL per case-list request",
            f"{ours.round_trips / requests:.1f}",
            f"{theirs.round_trips / requests:.1f}",
            ours.round_trips / theirs.round_trips,
            "",
            None,
        )
    )
    results.check(
        Check(
            "statements (Query/Execute) per case-list request",
            f"{ours.statements / requests:.1f}",
            f"{theirs.statements / requests:.1f}",
            ours.statements / theirs.statements,
            "",
            None,
        )
    )


# --- the command ----------------------------------------------------------------------------------------


def tree_state() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, check=False, cwd=Path(__file__).parent
        )
        return done.stdout.strip()

    if label := os.environ.get("BENCH_TREE"):  # a copy of the tree without .git says what it is
        return label
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = " with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"{commit}{dirty}"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("parts", nargs="*", metavar="part", help=f"any of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk before each measured run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (median is reported)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--cases", type=int, default=50, help="the patient's cases")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--startup-runs", type=int, default=5)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_POSTGRES", "127.0.0.1:5432"),
        help="host:port, user postgres, trust auth",
    )
    parser.add_argument("--database", default="legetime_bench", help="created and dropped by the bench")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument(
        "--baseline-log",
        choices=("auto", "unchained", "chained"),
        default="auto",
        help="how the baseline writes the access log: unchained INSERTs (hash left NULL) or the older "
        "advisory-locked hash chain; auto: what the migrated schema allows (unchained once hash is nullable)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and the temporary directory")
    parser.add_argument(
        "--scale-cpu",
        type=float,
        default=0.2,
        help="scale: the CPU quota of each API process, in CPUs (a cgroup v1 cpu group of its own each, as "
        "containers are capped); 0: uncapped, sharing the machine with PostgreSQL and the load. Small "
        "enough that two capped processes, not PostgreSQL and the load on the rest, are what limits",
    )
    args = parser.parse_args()
    parts = args.parts or list(PARTS)
    if unknown := [p for p in parts if p not in PARTS]:
        parser.error(f"unknown part(s) {', '.join(unknown)}: choose from {', '.join(PARTS)}")
    if any(p in parts for p in ("caselist", "scale", "sqlite")):
        wrk_binary()  # fail before anything starts when wrk is missing

    work = Path(tempfile.mkdtemp(prefix="legetime-bench-"))
    cfg = Config(
        duration=args.duration,
        warmup=args.warmup,
        rounds=args.rounds,
        connections=args.connections,
        cases=args.cases,
        jobs=args.jobs,
        startup_runs=args.startup_runs,
        postgres=args.postgres,
        database=args.database,
        redis_url=args.redis_url,
        baseline_log=args.baseline_log,
        keep=args.keep,
        work=work,
        scale_cpu=args.scale_cpu,
    )
    results = Results()
    print(f"tree {tree_state()}; {cpu_count()} cores; logs in {work}", flush=True)
    interrupted = failed = False
    # A SIGTERM to the bench ends it like Ctrl-C: the processes it started are stopped on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with Processes(work) as procs:
            if "startup" in parts:
                part_startup(cfg, procs, results)
            if "sqlite" in parts:
                part_sqlite(cfg, procs, results)
            if any(p in parts for p in ("caselist", "scale", "jobs", "statements")):
                with postgres_database(cfg, procs) as pg:
                    if "caselist" in parts:
                        part_caselist(cfg, procs, pg, results)
                    if "scale" in parts:
                        part_scale(cfg, procs, pg, results)
                    if "statements" in parts:
                        part_statements(cfg, procs, pg, results)
                    if "jobs" in parts:
                        part_jobs(cfg, procs, pg, results)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: every process started is stopped", file=sys.stderr)
    except Exception:
        failed = True
        traceback.print_exc()
        print(f"failed: every process started is stopped; their logs: {work} (kept)", file=sys.stderr)
    finally:
        _cleanup_redis(cfg)
        if not (cfg.keep or failed):
            shutil.rmtree(work, ignore_errors=True)
    header = (
        f"Measured on {date.today().isoformat()}, tree {tree_state()}: wrk {cfg.duration:.0f} s per run "
        f"after {cfg.warmup:.0f} s warm-up, {cfg.connections} connections, median of {cfg.rounds} "
        "interleaved rounds" + (" (partial: interrupted or failed)" if interrupted or failed else "")
    )
    print("\n" + results.markdown(header))
    if interrupted or failed:
        raise SystemExit(130 if interrupted else 1)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _cleanup_redis(cfg: Config) -> None:
    """Remove this run's keys (its own queue namespace only)."""
    with contextlib.suppress(Exception):
        import redis

        client = redis.Redis.from_url(cfg.redis_url)
        keys = list(client.scan_iter(match=f"{cfg.namespace}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


if __name__ == "__main__":
    main()
