"""Python function calls per case-list request, counted with cProfile (a figure load does not move).

    python -m bench.profile                       # seeds legetime_profile once (kept), then counts
    python -m bench.profile --requests 50 --top 40 --sort tottime
    python -m bench.profile --database legetime_profile --drop   # drop it afterwards

The database is made as ``python -m bench`` makes its own (``legetime migrate``, ``legetime demo``, the
cases through GraphQL against a ``legetime serve`` it starts and stops), with a fixed secret key so that
a later run can log in again and reuse it. The app is then called in this process, directly through ASGI
(no HTTP server, no client: only the app's own work is profiled), one request after the other, with the
access log written as in production. Redis is not set: persisted queries and the relay are not involved.
The answer is checked (50 cases, no errors) before anything is counted.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import Processes
from bench.seed import CASE_LIST, PATIENT_ID

SECRET = "bench-profile-secret-key-0123456789abcdef"


def _env(database: str, postgres: str, data_dir: Path) -> dict[str, str]:
    return {
        "LEGETIME_DATA_DIR": str(data_dir),
        "LEGETIME_SECRET_KEY": SECRET,
        "LEGETIME_LOGIN_RATE_LIMIT": "1000/minute",
        # No TLS (a local server), so that ``--trace``'s proxy can read the protocol.
        "LEGETIME_DATABASE_URL": f"postgresql+asyncpg://postgres@{postgres}/{database}?ssl=disable",
    }


def _seed(database: str, postgres: str, work: Path) -> None:
    """The bench's own seeding, with this module's fixed secret (kept: no drop at the end)."""
    from bench import __main__ as bench

    cfg = bench.Config(
        duration=0, warmup=0, rounds=0, connections=0, cases=50, jobs=0, startup_runs=0,
        postgres=postgres, database=database, baseline_log="auto", keep=True, work=work, secret=SECRET,
        redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )  # fmt: skip
    with Processes(work) as procs, bench.postgres_database(cfg, procs):
        pass


async def _exists(database: str, postgres: str) -> bool:
    import asyncpg

    host, _, port = postgres.rpartition(":")
    connection = await asyncpg.connect(host=host, port=int(port), user="postgres", database="postgres")
    try:
        return bool(await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database))
    finally:
        await connection.close()


async def _call(app: Any, body: bytes, token: str | None) -> tuple[int, bytes]:
    """One POST /graphql straight through the ASGI app."""
    headers = [(b"content-type", b"application/json"), (b"host", b"127.0.0.1")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/graphql", "raw_path": b"/graphql", "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def _gql(app: Any, query: str, token: str | None = None, **variables: Any) -> dict[str, Any]:
    status, body = await _call(app, json.dumps({"query": query, "variables": variables}).encode(), token)
    answer = json.loads(body)
    if status != 200 or answer.get("errors"):
        raise RuntimeError(f"{status}: {body[:500]!r}")
    return dict(answer["data"])


async def _profile(args: argparse.Namespace) -> tuple[cProfile.Profile, bytes] | None:
    from legetime.cli import _platform
    from legetime.schema.app import create_app

    platform = _platform()
    app = create_app(platform, run_jobs_in_process=False)
    async with app.router.lifespan_context(app):
        started = await _gql(
            app, "mutation($n: String!) { startLogin(input: {nationalId: $n}) { handle } }", n=PATIENT_ID
        )
        handle = started["startLogin"]["handle"]
        completed = await _gql(
            app, "mutation($h: String!) { completeLogin(input: {handle: $h}) { token } }", h=handle
        )
        token = completed["completeLogin"]["token"]
        body = json.dumps({"query": CASE_LIST, "operationName": "CaseList"}).encode()
        for _ in range(args.warmup):
            status, answer = await _call(app, body, token)
        if status != 200 or b'"errors"' in answer or answer.count(b'"node"') != 50:
            raise RuntimeError(f"unexpected case list: {status} {answer[:500]!r}")
        if args.trace:
            from bench.pgcount import CountingProxy

            assert isinstance(args.proxy, CountingProxy) and args.proxy.trace is not None
            args.proxy.trace.clear()
            await _call(app, body, token)
            print(f"round trips of one case-list request ({len(args.proxy.trace)}):")
            for number, statements in enumerate(args.proxy.trace, 1):
                print(f"  {number:>2}. {' '.join(statements.split())[:160]}")
            return None
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.requests):
            await _call(app, body, token)
        profiler.disable()
    return profiler, answer


def _report(args: argparse.Namespace, profiler: cProfile.Profile, answer: bytes) -> None:
    if args.output:
        Path(args.output).write_bytes(answer)
    stats = pstats.Stats(profiler)
    calls = stats.total_calls  # type: ignore[attr-defined]
    primitive = stats.prim_calls  # type: ignore[attr-defined]
    print(
        f"{calls / args.requests:,.0f} Python function calls per case-list request "
        f"({primitive / args.requests:,.0f} primitive; {args.requests} requests, {len(answer)} bytes)"
    )
    by_package: dict[str, list[float]] = {}
    for (filename, _, _), (_, ncalls, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        package = _package(filename)
        figures = by_package.setdefault(package, [0, 0.0])
        figures[0] += ncalls
        figures[1] += tottime
    total = sum(t for _, t in by_package.values()) or 1.0
    print("calls per request and share of profiled time, by package:")
    for package, (ncalls, tottime) in sorted(by_package.items(), key=lambda item: -item[1][1]):
        print(f"  {package:<24} {ncalls / args.requests:>8,.0f} {100 * tottime / total:5.1f}%")
    if args.save:
        stats.dump_stats(args.save)
    if args.top:
        stats.sort_stats(args.sort).print_stats(args.top)


PROJECT = str(Path(__file__).resolve().parents[1]) + "/"
"""The checkout's own folders (core/, schema/ …), which profiles name without the ``legetime/`` link."""


def _package(filename: str) -> str:
    """The top-level package a profiled function belongs to (``~``: built-ins)."""
    if filename == "~" or filename.startswith("<"):
        return "(built-ins)"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if filename.startswith(PROJECT) or "/legetime/" in filename:
        rest = filename.split("/legetime/", 1)[1] if "/legetime/" in filename else filename[len(PROJECT) :]
        return "legetime." + rest.split("/", 1)[0].removesuffix(".py")
    return "(stdlib) " + Path(filename).stem


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--database", default="legetime_profile")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES", "127.0.0.1:5432"))
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--top", type=int, default=0, help="print the top N functions")
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative, ncalls)")
    parser.add_argument("--output", help="write the last answer here (to compare before and after)")
    parser.add_argument(
        "--trace", action="store_true", help="print one request's round trips (bench.pgcount), no profile"
    )
    parser.add_argument("--save", help="write the pstats data here")
    parser.add_argument("--reseed", action="store_true", help="make the database again")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="legetime-profile-"))
    if args.reseed or not asyncio.run(_exists(args.database, args.postgres)):
        print(f"seeding {args.database} (kept for later runs)", flush=True)
        _seed(args.database, args.postgres, work)
    postgres = args.postgres
    args.proxy = None
    if args.trace:
        from bench.harness import free_port
        from bench.pgcount import CountingProxy

        host, _, port = postgres.rpartition(":")
        listen = free_port()
        args.proxy = CountingProxy(listen, host, int(port), trace=True).start()
        postgres = f"127.0.0.1:{listen}"
    os.environ.update(_env(args.database, postgres, work / "data"))
    for name in [k for k in os.environ if k.startswith("LEGETIME_REDIS")]:
        del os.environ[name]
    profiled = asyncio.run(_profile(args))
    if profiled is not None:
        _report(args, *profiled)


if __name__ == "__main__":
    main()
