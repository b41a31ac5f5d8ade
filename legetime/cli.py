"""The ``legetime`` command: serve, worker, migrate, plugins, providers, demo, schema, check, audit,
purge, keys, storage, drop-plugin-tables.

The composition root: it puts core, plugins and the GraphQL app together, so it is in none of them. It
never reads or writes the source tree (an installed package has none); the repository's generated docs
come from ``tools/`` (``make docs``).

Commands import what they need beyond Typer and Rich (the settings, the platform, the ASGI app, the job
runner, Alembic, asyncio) inside their own function, so that ``legetime --help`` and the quick commands
start fast: ``--help`` loads no SQLAlchemy, pydantic, strawberry or plugin (a test holds this). None of it
is there to dodge an import cycle (``make lint`` holds the layers).
"""

from __future__ import annotations

import gc
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from legetime.core.platform.errors import ConfigError, PluginError

WS_MAX_MESSAGE = 64 * 1024
"""The largest message a client may send over a websocket (a subscription's document is small)."""
WS_PING_SECONDS = 20.0

if TYPE_CHECKING:
    from legetime.core.platform.runtime import Platform

app = typer.Typer(help="Legetime: asynchronous digital doctor consultations.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def fails_clearly(command: F) -> F:
    """Start-up errors (configuration, plugins) end the command with one clear line, exit code 2."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigError as exc:
            err.print(f"[bold red]Configuration error[/] {exc}")
            raise typer.Exit(2) from None
        except PluginError as exc:
            err.print(f"[bold red]Plugin error[/] {exc}")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def _start_up() -> Iterator[None]:
    """Start-up without the cyclic garbage collector. It makes long-lived objects (modules, plugins, the
    schema) and next to no garbage, so collecting during it frees next to nothing and costs about a tenth
    of it; what it made is then frozen out of later collections, which scan only what requests make."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _platform() -> Platform:
    from legetime.core.platform.config import load_settings
    from legetime.core.platform.logging import configure_logging
    from legetime.core.platform.runtime import Platform

    settings = load_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return Platform.create(settings)


@app.command()
@fails_clearly
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port; default $PORT or 8000.")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="API processes sharing the port (each with its own platform).")
    ] = 1,
    reuse_port: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Serve GraphQL at /graphql (GraphiQL in development), /healthz and /readyz."""
    with _start_up():
        import uvicorn

        from legetime.core.platform.config import DEFAULT_PORT
        from legetime.schema.app import create_app

        if port is not None:
            os.environ["PORT"] = str(port)  # the default public URL (links in SMS, images) follows it
        port = int(os.environ.get("PORT") or DEFAULT_PORT)
        platform = _platform()  # a bad configuration is refused here, before any process starts
        if platform.settings.graphiql and not reuse_port:
            console.print(f"GraphiQL: http://{host}:{port}/graphql")
        if workers > 1:
            _supervise(host, port, workers)
            return
        asgi = create_app(platform)
    # The app logs each request itself (path, status, time; never the query string, which may hold
    # a national ID or a signature): uvicorn's access log is off.
    # Subscriptions' sockets: the websockets library's sans-I/O implementation, no message from a client
    # larger than WS_MAX_MESSAGE (a subscription document is small), and a protocol-level ping every
    # WS_PING_SECONDS that closes a socket whose peer has gone without a word.
    config = uvicorn.Config(
        asgi,
        host=host,
        port=port,
        log_level="info",
        proxy_headers=True,
        access_log=False,
        ws="websockets-sansio",
        ws_max_size=WS_MAX_MESSAGE,
        ws_ping_interval=WS_PING_SECONDS,
        ws_ping_timeout=WS_PING_SECONDS,
    )
    uvicorn.Server(config).run(sockets=[_reuse_port_socket(host, port)] if reuse_port else None)


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket of its own that shares the port with its siblings (SO_REUSEPORT): the kernel
    spreads new connections over them. With one shared socket, whichever process wakes first takes
    every waiting connection, and keep-alive clients then stick to it (measured: all load on one of two
    processes)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _supervise(host: str, port: int, workers: int) -> None:
    """``workers`` API processes, each ``legetime serve --reuse-port`` with a platform of its own;
    one that dies is started again; SIGTERM or Ctrl-C stops them all (each finishes its requests).
    Nothing is shared between them but the database and Redis: the access log, the outbox relay, rate
    limits and persisted queries are made for that."""
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    from legetime.core.platform import metrics

    # Prometheus multiprocess mode: /metrics of any process adds up all of them. The directory is cleared
    # of ended processes' files first (a previous run's); without LEGETIME_METRICS_DIR, a temporary one.
    temporary = None
    if metrics.multiprocess_dir() is None and not os.environ.get("LEGETIME_METRICS_DIR"):
        temporary = tempfile.mkdtemp(prefix="legetime-metrics-")
        os.environ[metrics.MULTIPROC_ENV] = temporary
    directory = metrics.multiprocess_dir() or Path(os.environ["LEGETIME_METRICS_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    metrics.remove_ended_processes(directory)
    os.environ[metrics.MULTIPROC_ENV] = str(directory.resolve())

    command = [sys.executable, "-m", "legetime.cli", "serve", "--host", host, "--port", str(port)]
    command.append("--reuse-port")
    children = [subprocess.Popen(command) for _ in range(workers)]
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        for index, child in enumerate(children):
            if child.poll() is not None and not stopping:
                err.print(f"API process {child.pid} ended ({child.returncode}); starting another")
                metrics.mark_process_dead(child.pid)
                children[index] = subprocess.Popen(command)
        time.sleep(0.2)
    for child in children:
        child.wait()
        metrics.mark_process_dead(child.pid)
    if temporary is not None:
        shutil.rmtree(temporary, ignore_errors=True)


@app.command()
@fails_clearly
def worker(threads: Annotated[int | None, typer.Option(help="Worker threads.")] = None) -> None:
    """Run dramatiq workers and the outbox relay (needs LEGETIME_REDIS_URL)."""
    from legetime.core.platform.jobs.runner import run_forever

    platform = _platform()
    if not platform.settings.redis_url:
        raise ConfigError(
            "LEGETIME_REDIS_URL", "`legetime worker` needs Redis; without it `serve` runs jobs itself"
        )
    if threads:
        platform.settings.worker_threads = threads
    console.print(
        f"Worker: {platform.settings.worker_threads} threads, queue namespace "
        f"{platform.settings.queue_namespace!r}"
    )
    run_forever(platform)


@app.command()
@fails_clearly
def migrate(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply the database migrations."""
    from legetime.core.platform.config import load_settings
    from legetime.core.platform.db.migrate import upgrade

    settings = load_settings()
    upgrade(settings.resolved_database_url, revision)
    plugins = " and every installed plugin's tables" if revision == "head" else ""
    console.print(f"Database migrated to {revision}{plugins}.")


@app.command("drop-plugin-tables")
@fails_clearly
def drop_plugin_tables(
    prefix: Annotated[str, typer.Argument(help="The plugin's table prefix (see `legetime plugins`).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do it: the tables and their rows are deleted.")] = False,
) -> None:
    """Delete a plugin's tables (its migrations down to base), before its package is uninstalled."""
    from legetime.core.platform.config import load_settings
    from legetime.core.platform.db.migrate import drop_plugin_tables as drop

    if not yes:
        raise typer.BadParameter(f"this deletes the tables of {prefix!r} and every row in them: add --yes")
    settings = load_settings()
    try:
        drop(settings.resolved_database_url, prefix)
    except LookupError as exc:
        raise typer.BadParameter(str(exc)) from None
    console.print(f"Dropped the tables of {prefix!r}. The plugin's package can be uninstalled now.")


@app.command()
@fails_clearly
def plugins() -> None:
    """List loaded plugins, their versions and hooks, and the providers they offer."""
    from legetime.core.platform.plugins import describe_plugins

    platform = _platform()
    table = Table(title="Plugins")
    for column in ("plugin", "version", "source", "hooks"):
        table.add_column(column)
    for plugin in describe_plugins(platform.pm):
        table.add_row(plugin.name, plugin.version, plugin.source, ", ".join(plugin.hooks))
    console.print(table)

    enabled = {
        (p.spec.capability, p.spec.name): i
        for caps in platform.providers.enabled.values()
        for i, p in enumerate(caps)
    }
    providers = Table(title="Providers")
    for column in ("capability", "provider", "plugin", "status", "note"):
        providers.add_column(column)
    for spec in sorted(platform.providers.offered, key=lambda s: (s.capability, s.name)):
        index = enabled.get((spec.capability, spec.name))
        status = "disabled" if index is None else ("enabled, default" if index == 0 else "enabled")
        providers.add_row(
            spec.capability.value,
            spec.name,
            spec.plugin,
            status,
            "simulation: refused in production" if spec.test_only else "",
        )
    console.print(providers)


@app.command()
@fails_clearly
def providers() -> None:
    """Every provider the plugins offer, with every setting (variable, type, default, secret or not)."""
    from legetime.core.platform.providers.settings_rows import setting_rows

    platform = _platform()
    for spec in sorted(platform.providers.offered, key=lambda s: (s.capability, s.name)):
        table = Table(title=f"{spec.capability.value}: {spec.name} ({spec.plugin})", title_justify="left")
        for column in ("variable", "type", "default", "secret", "meaning"):
            table.add_column(column)
        for row in setting_rows(spec):
            table.add_row(row.variable, row.kind, row.default, "yes" if row.secret else "", row.description)
        console.print(table)


@app.command()
@fails_clearly
def check() -> None:
    """Validate the configuration and plugins, and show the settings (secrets masked)."""
    platform = _platform()
    table = Table(title="Settings")
    table.add_column("variable")
    table.add_column("value")
    for name, value in platform.settings.model_dump().items():
        table.add_row(f"LEGETIME_{name.upper()}", _show(value))
    for provider in platform.providers.all_enabled():
        prefix = str(provider.spec.settings_model.model_config.get("env_prefix", ""))
        for name, value in provider.settings.model_dump().items():
            table.add_row(f"{prefix}{name.upper()}", _show(value))
    console.print(table)
    console.print("[green]Configuration is valid.[/]")


def _show(value: Any) -> str:
    return "(not set)" if value is None else str(value)  # SecretStr prints as **********


@app.command()
@fails_clearly
def demo() -> None:
    """Create demo data (idempotent) and print how to log in."""
    import asyncio

    from legetime.core.demo import create_demo_data

    platform = _platform()
    people = asyncio.run(_run_demo(platform, create_demo_data))
    table = Table(title="Demo users (log in with the simulated BankID, provider `bankid-test`)")
    for column in ("role", "name", "national ID"):
        table.add_column(column)
    for person in people:
        table.add_row(person.role, person.name, person.national_id)
    console.print(table)
    console.print(
        f"In GraphiQL ({platform.settings.public_url}/graphql) log in with one of these synthetic national "
        "IDs through the test BankID provider; see the README for the operations."
    )


async def _run_demo(platform: Platform, create: Callable[..., Any]) -> Any:
    from legetime.core.platform.providers import IDENTITY, Capability

    identity = None
    if "bankid-test" in platform.providers.names(Capability.IDENTITY):
        identity = platform.providers.get(IDENTITY, "bankid-test")
    try:
        return await create(platform, identity)
    finally:
        await platform.close()


@app.command()
@fails_clearly
def schema(
    output: Annotated[Path | None, typer.Option(help="Write the SDL to this file instead of stdout.")] = None,
    check: Annotated[
        Path | None, typer.Option(help="Compare this file with the SDL; exit 1 if it differs.")
    ] = None,
) -> None:
    """Print the GraphQL SDL this installation serves (its plugins and settings): what frontends build
    against."""
    from legetime.schema.build import build_schema

    if output is not None and check is not None:
        raise typer.BadParameter("give --output or --check, not both")
    sdl = build_schema(_platform()).as_str() + "\n"
    if check is not None:
        if not check.exists() or check.read_text() != sdl:
            err.print(f"{check} differs from the schema this installation serves.")
            raise typer.Exit(1)
        console.print(f"{check} matches the schema this installation serves.")
    elif output is not None:
        output.write_text(sdl)
        console.print(f"Wrote {output}.")
    else:
        typer.echo(sdl, nl=False)


audit_app = typer.Typer(help="The access log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
@fails_clearly
def audit_verify(
    expected_head: Annotated[str | None, typer.Option(help="The head hash kept from the last check.")] = None,
) -> None:
    """Chain what was written since the sequencer last ran, then check the access log's hash chain;
    report the first broken link (exit 1 if any)."""
    import asyncio

    from legetime.core.protection.audit import chain_all, verify_chain

    platform = _platform()

    async def run() -> Any:
        try:
            await chain_all(platform.db)
            async with platform.db.transaction() as session:
                return await verify_chain(session, expected_head=expected_head)
        finally:
            await platform.close()

    report = asyncio.run(run())
    if report.ok:
        console.print(f"[green]The access log is intact[/]: {report.checked} entries, head {report.head}")
        if report.unchained:  # written while this ran; the sequencer chains them within a second
            console.print(f"{report.unchained} newer entries are not chained yet.")
        return
    where = f" at entry {report.first_broken_id}" if report.first_broken_id is not None else ""
    err.print(f"[bold red]The access log is broken{where}[/]: {report.reason}")
    err.print(f"{report.checked} entries are sound before it.")
    raise typer.Exit(1)


@app.command()
@fails_clearly
def purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what is due; delete nothing.")] = False,
    batch_size: Annotated[int | None, typer.Option(help="Cases (or appointments) per transaction.")] = None,
) -> None:
    """Delete the communication (answers, messages, images) of cases, and the content (message, forms,
    invoice copy) of appointments, past their retention time.

    Journal notes, payments, invoices' bookkeeping fields, the access log and anonymised statistics stay;
    each case and appointment keeps a tombstone.
    """
    import asyncio

    from rich.progress import Progress

    from legetime.core.appointments.retention import run_appointment_retention
    from legetime.core.identity.actors import SYSTEM
    from legetime.core.protection.retention import run_retention

    platform = _platform()

    async def run() -> Any:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("Sletter kommunikasjon", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            try:
                cases = await run_retention(
                    platform,
                    actor=SYSTEM,
                    trigger="cli",
                    dry_run=dry_run,
                    batch_size=batch_size,
                    progress=progress,
                )
                bar.update(task, description="Sletter timedata", completed=0, total=None)
                appointments = await run_appointment_retention(
                    platform,
                    actor=SYSTEM,
                    trigger="cli",
                    dry_run=dry_run,
                    batch_size=batch_size,
                    progress=progress,
                )
                return cases, appointments
            finally:
                await platform.close()

    summary, appointments = asyncio.run(run())
    verb = "Would delete" if dry_run else "Deleted"
    console.print(f"{verb} the communication of {summary.cases} case(s).")
    table = Table()
    table.add_column("what")
    table.add_column("count", justify="right")
    for what, count in (("cases", summary.cases), ("messages", summary.messages), ("images", summary.images)):
        table.add_row(what, str(count))
    console.print(table)
    if summary.storage_failures:
        console.print(
            f"[yellow]{summary.storage_failures} stored image(s) could not be deleted; they are unreadable "
            "(their key is gone) and are retried by a `storage.delete` job.[/]"
        )
    console.print(f"Run {summary.run_id} is recorded (operators: `retentionRuns`).")
    console.print(f"{verb} the content of {appointments.appointments} appointment(s).")
    table = Table()
    table.add_column("what")
    table.add_column("count", justify="right")
    for what, count in (
        ("appointments", appointments.appointments),
        ("messages", appointments.messages),
        ("forms", appointments.forms),
        ("invoice copies", appointments.documents),
    ):
        table.add_row(what, str(count))
    console.print(table)
    if appointments.storage_failures:
        console.print(
            f"[yellow]{appointments.storage_failures} stored invoice copies could not be deleted; they are "
            "unreadable (their key is gone) and are retried by a `storage.delete` job.[/]"
        )
    console.print(f"Run {appointments.run_id} is recorded (operators: `retentionRuns`).")


keys_app = typer.Typer(help="Master keys of the encryption at rest.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("generate")
def keys_generate(
    key_id: Annotated[str, typer.Argument(help="A name for the new key, e.g. 2027-01.")],
) -> None:
    """Print a new master key entry for LEGETIME_MASTER_KEYS (put it first to make it active)."""
    from legetime.core.platform.crypto import generate_master_key_entry

    console.print(generate_master_key_entry(key_id), soft_wrap=True)


@keys_app.command("rotate")
@fails_clearly
def keys_rotate() -> None:
    """Rewrap every data key under the active (first) master key. Content is not re-encrypted."""
    import asyncio

    from rich.progress import Progress

    from legetime.core.protection.keys import rotate

    platform = _platform()

    async def run() -> Any:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("Pakker om nøkler", total=None)
            try:
                return await rotate(
                    platform, progress=lambda done, total: bar.update(task, completed=done, total=total)
                )
            finally:
                await platform.close()

    summary = asyncio.run(run())
    console.print(f"Rewrapped {summary.rewrapped} row(s) under master key {summary.active_key!r}.")
    if summary.remaining:
        console.print(f"[yellow]{summary.remaining} row(s) still use another key; run it again.[/]")
        raise typer.Exit(1)
    console.print("Older master keys can now be removed from LEGETIME_MASTER_KEYS.")


storage_app = typer.Typer(help="Stored images (the storage provider).", no_args_is_help=True)
app.add_typer(storage_app, name="storage")


@storage_app.command("migrate")
@fails_clearly
def storage_migrate(
    source: Annotated[str, typer.Option("--from", help="The provider the images are in now, e.g. local.")],
    target: Annotated[str, typer.Option("--to", help="The provider to move them to, e.g. s3.")],
    delete_source: Annotated[
        bool,
        typer.Option(
            "--delete-source",
            help="Delete each image from the source once its copy is verified (only once the platform "
            "reads from the target).",
        ),
    ] = False,
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Images copied at once.")] = 4,
) -> None:
    """Copy every live image (from the database's attachments) to another storage provider, verifying each
    copy by its SHA-256. Resumable: run it again to skip what is done and retry what failed."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from legetime.core.consultation.storage_migration import migrate_storage
    from legetime.core.platform.errors import LegetimeError

    platform = _platform()

    async def run() -> Any:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(f"{source} → {target}", total=None)
            try:
                return await migrate_storage(
                    platform,
                    source,
                    target,
                    delete_source=delete_source,
                    concurrency=concurrency,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
            finally:
                await platform.close()

    try:
        summary = asyncio.run(run())
    except LegetimeError as exc:  # the target refuses every object: a missing bucket, refused credentials
        err.print(f"[bold red]Stopped[/]: {exc.message} Nothing more was copied; fix it and run again.")
        raise typer.Exit(1) from None
    table = Table(title=f"Images {source} → {target}")
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [("copied", summary.copied), ("skipped", summary.skipped), ("failed", summary.failed)]
    if delete_source:
        rows.append(("deleted from the source", summary.source_deleted))
    for what, count in rows:
        table.add_row(what, str(count))
    console.print(table)
    for attachment_id, why in summary.failures[:20]:
        err.print(f"failed: attachment {attachment_id} ({why})")
    if summary.failed:
        err.print(f"[bold red]{summary.failed} image(s) were not copied[/]; run the command again to retry.")
        raise typer.Exit(1)
    console.print(f"[green]Every image is in {target!r}[/] (copied or already there, each verified).")


@storage_app.command("rekey")
@fails_clearly
def storage_rekey() -> None:
    """Re-encrypt images stored before images had keys of their own (sealed with their case's key), each
    with a new key of its own, so withdrawing image consent shreds them at once. Resumable."""
    import asyncio

    from legetime.core.consultation.image_rekey import rekey_images

    platform = _platform()

    async def run() -> Any:
        try:
            return await rekey_images(platform)
        finally:
            await platform.close()

    summary = asyncio.run(run())
    console.print(
        f"Re-encrypted {summary.rekeyed} image(s) of {summary.total}; {summary.skipped} erased meanwhile, "
        f"{summary.failed} failed, {summary.old_left} old object(s) left to delete."
    )
    for attachment_id, why in summary.failures[:20]:
        err.print(f"failed: attachment {attachment_id} ({why})")
    if summary.failed:
        raise typer.Exit(1)


staff_app = typer.Typer(help="The staff: clinicians, operators, privacy officers.", no_args_is_help=True)
app.add_typer(staff_app, name="staff")
STAFF_ROLES = ("operator", "clinician", "privacy_officer")


@staff_app.command("add")
@fails_clearly
def staff_add(
    national_id: Annotated[str, typer.Argument(help="Her national ID: she logs in with BankID.")],
    role: Annotated[str, typer.Option(help="operator, clinician or privacy_officer.")] = "operator",
    hpr: Annotated[
        str | None, typer.Option(help="A clinician's HPR number (required for clinicians).")
    ] = None,
) -> None:
    """Give a person a staff role: how an installation gets its first operator (no default password).
    Later staff are invited by an operator in GraphQL (`inviteStaff`). In the access log."""
    import asyncio

    from legetime.core.identity.actors import SYSTEM
    from legetime.core.identity.ctx import Ctx
    from legetime.core.platform.db.models import StaffRole
    from legetime.core.platform.errors import LegetimeError
    from legetime.core.protection import staff

    if role not in STAFF_ROLES:
        err.print(f"[bold red]Unknown role[/] {role}: one of {', '.join(STAFF_ROLES)}.")
        raise typer.Exit(2)
    platform = _platform()

    async def run() -> Any:
        try:
            async with platform.db.transaction() as session:
                ctx = Ctx(session=session, platform=platform, actor=SYSTEM)
                return await staff.invite(ctx, national_id, StaffRole(role), hpr, from_command_line=True)
        finally:
            await platform.close()

    try:
        member = asyncio.run(run())
    except LegetimeError as exc:
        err.print(f"[bold red]Refused[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"Person {member.person.id} has the role {role}; she logs in with BankID.")


@staff_app.command("list")
@fails_clearly
def staff_list() -> None:
    """The staff and their roles."""
    import asyncio

    from legetime.core.identity.actors import SYSTEM
    from legetime.core.identity.ctx import Ctx
    from legetime.core.protection import staff

    platform = _platform()

    async def run() -> Any:
        try:
            async with platform.db.transaction() as session:
                ctx = Ctx(session=session, platform=platform, actor=SYSTEM)
                return await staff.members(ctx, from_command_line=True)
        finally:
            await platform.close()

    table = Table(title="Staff")
    for column in ("person", "name", "roles"):
        table.add_column(column)
    for member in asyncio.run(run()):
        name = f"{member.person.given_name} {member.person.family_name}".strip() or "(not logged in yet)"
        roles = ", ".join(
            m.role.value + (f" (HPR {m.hpr_number})" if m.hpr_number else "") for m in member.active
        )
        table.add_row(str(member.person.id), name, roles)
    console.print(table)


def main() -> None:
    app(prog_name="legetime")


if __name__ == "__main__":
    main()
