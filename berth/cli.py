"""The ``berth`` command line."""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from berth import server as server_mod
from berth import settings as settings_mod
from berth.agent.cli import agent as agent_command
from berth.db import migrate
from berth.db.engine import Database
from berth.logging import configure as configure_logging
from berth.placement import catalog
from berth.placement.errors import PlacementError
from berth.reporter.cli import report as report_command
from berth.scheduler.namespaces import StateRules


class LazyBench(TyperGroup):
    """``berth bench``: its commands (and the many modules behind them) are imported only
    when a bench command or its help is asked for, not by ``berth serve`` and the rest."""

    @functools.cached_property
    def _bench(self) -> TyperGroup:
        from berth.bench.cli import app as bench_app

        command = typer.main.get_command(bench_app)
        assert isinstance(command, TyperGroup)
        return command

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        return self._bench.list_commands(ctx)

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:  # type: ignore[override]
        return self._bench.get_command(ctx, cmd_name)


app = typer.Typer(help="berth: a fast placement and scheduling service.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(
    typer.Typer(
        cls=LazyBench,
        help="The benchmark lab: measure berth and any Placement.",
        no_args_is_help=True,
    ),
    name="bench",
)
app.command("agent")(agent_command)
queues_app = typer.Typer(help="Pull dispatch's work queues (docs/pull.md).", no_args_is_help=True)
app.add_typer(queues_app, name="queues")
host_app = typer.Typer(
    help="Commands run on a compute host (docs/scheduler.md).", no_args_is_help=True
)
app.add_typer(host_app, name="host")
host_app.command("report")(report_command)
console = Console()


def _settings(**overrides: Any) -> settings_mod.Settings:
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return settings_mod.load(**clean)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def serve(
    bind: str = typer.Option(None, help="host:port to listen on (BERTH_BIND)."),
    workers: int = typer.Option(None, help="Worker processes (BERTH_WORKERS)."),
    threads: int = typer.Option(None, help="Requests each worker serves at once (BERTH_THREADS)."),
    database_url: str = typer.Option(None, help="Database URL (BERTH_DATABASE_URL)."),
    server: str = typer.Option(None, help="gunicorn or granian (BERTH_SERVER)."),
    migrate_first: bool = typer.Option(
        True, "--migrate/--no-migrate", help="Upgrade the schema first."
    ),
) -> None:
    """Serve the Placement API with several worker processes, until SIGINT or SIGTERM."""
    settings = _settings(
        bind=bind, workers=workers, threads=threads, database_url=database_url, server=server
    )
    try:  # each worker reads the host-state schemas too: say what is wrong once, here
        StateRules.from_settings(settings)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if migrate_first:
        _upgrade(settings)
    for field in dataclasses.fields(settings):
        os.environ[f"BERTH_{field.name.upper()}"] = str(getattr(settings, field.name))
    _fresh_metrics_dir(settings)
    configure_logging(settings)
    console.print(
        f"berth serving on http://{settings.bind} with {settings.workers} workers"
        f" of {settings.threads} threads"
    )
    raise typer.Exit(server_mod.serve(settings))


def _fresh_metrics_dir(settings: settings_mod.Settings) -> None:
    """Give this server's workers an empty shared Prometheus directory."""
    port = settings.host_port[1]
    path = Path(settings.data_dir) / f"metrics-{port}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def _upgrade(settings: settings_mod.Settings) -> None:
    db = Database(settings.effective_database_url)
    migrate.upgrade(db)
    catalog.sync(db)
    db.dispose()


@db_app.command("upgrade")
def db_upgrade(
    database_url: str = typer.Option(None, help="Database URL (BERTH_DATABASE_URL)."),
) -> None:
    """Create or upgrade the schema and load the standard classes and traits."""
    settings = _settings(database_url=database_url)
    _upgrade(settings)
    url = Database(settings.effective_database_url).engine.url
    console.print(f"schema at {migrate.head_revision()} on {url!r}")


@db_app.command("status")
def db_status(
    database_url: str = typer.Option(None, help="Database URL (BERTH_DATABASE_URL)."),
) -> None:
    """Show the schema revision of the database and the newest one shipped."""
    settings = _settings(database_url=database_url)
    db = Database(settings.effective_database_url)
    current = migrate.current_revision(db)
    head = migrate.head_revision()
    table = Table("revision", "description", "applied")
    applied = True
    for rev, doc in migrate.revisions():
        table.add_row(
            rev, doc.splitlines()[0] if doc else "", "yes" if applied and current else "no"
        )
        if rev == current:
            applied = False
    console.print(table)
    state = "up to date" if current == head else "needs upgrade (run: berth db upgrade)"
    console.print(f"database: {current or 'empty'}; newest: {head}; {state}")
    if current != head:
        raise typer.Exit(1)


@app.command()
def status(
    database_url: str = typer.Option(None, help="Database URL (BERTH_DATABASE_URL)."),
    top: int = typer.Option(5, min=0, help="How many fullest and emptiest hosts to list."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Capacity summary: providers, total / used / free per class, fullest and emptiest hosts."""
    import json

    from berth import status as status_mod

    db = Database(_settings(database_url=database_url).effective_database_url)
    try:
        summary = status_mod.gather(db, top=top)
    finally:
        db.dispose()
    if as_json:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        status_mod.render(summary, console)


@app.command("import")
def import_placement(
    source: str = typer.Option(
        ..., "--from", help="The OpenStack Placement database URL to copy from."
    ),
    database_url: str = typer.Option(None, help="berth's database URL (BERTH_DATABASE_URL)."),
    force: bool = typer.Option(
        False, "--force", help="Replace whatever berth's database holds with the import."
    ),
    allow_partial: bool = typer.Option(
        False,
        "--allow-partial",
        help="Import even if some rows cannot be copied (they are listed); "
        "without it such rows make the import change nothing and exit 1.",
    ),
) -> None:
    """Copy providers, inventories, traits, aggregates, consumers and allocations from Placement."""
    from berth import importer
    from berth.importer.progress import RichProgress

    settings = _settings(database_url=database_url)
    _upgrade(settings)
    db = Database(settings.effective_database_url)
    try:
        with RichProgress(console) as progress:
            report = importer.run(
                source, db, force=force, progress=progress, allow_partial=allow_partial
            )
    except importer.ImportRefused as exc:
        console.print(f"[red]import refused:[/red] {exc}")
        raise typer.Exit(2) from None
    except importer.ImportIncomplete as exc:
        for line in exc.skipped:
            console.print(f"[red]cannot copy[/red] {line}")
        console.print(f"[red]import failed:[/red] {exc} (--allow-partial imports the rest)")
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    table = Table("table", "rows copied")
    for name, count in report.copied.items():
        table.add_row(name, str(count))
    console.print(table)
    if report.created_classes or report.created_traits:
        console.print(
            f"created {len(report.created_classes)} custom resource classes and "
            f"{len(report.created_traits)} traits (standard ones mapped by name)"
        )
    for line in report.skipped:
        console.print(f"[yellow]skipped[/yellow] {line}")


@app.command()
def settings() -> None:
    """List every setting, its environment variable and its current value."""
    current = _settings()
    table = Table("environment variable", "type", "default", "current")
    for env, default, kind in settings_mod.describe():
        name = env.removeprefix("BERTH_").lower()
        value = getattr(current, name)
        shown = "'***'" if "password" in name and value else repr(value)
        table.add_row(env, kind, default, shown)
    console.print(table)


@app.command()
def schedule(
    flavor: str = typer.Option(..., help="Resources per instance: VCPU=2,MEMORY_MB=4096,..."),
    count: int = typer.Option(1, "--count", "-n", help="Instances to place."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Choose and explain; claim nothing."),
    explain: bool = typer.Option(False, "--explain", help="Show the stage-by-stage tally."),
    trait: list[str] = typer.Option([], help="Required trait (repeatable)."),
    forbid: list[str] = typer.Option([], help="Forbidden trait (repeatable)."),
    zone: str = typer.Option(None, "--availability-zone", help="Availability zone."),
    group: str = typer.Option(None, help="Server group uuid (created with --policy)."),
    policy: str = typer.Option(None, help="Server group policy (affinity, anti-affinity, ...)."),
    project: str = typer.Option(None, help="Project owning the instances."),
    user: str = typer.Option(None, help="User owning the instances."),
    database_url: str = typer.Option(None, help="Database URL (BERTH_DATABASE_URL)."),
) -> None:
    """Place instances with the scheduler (claims them unless --dry-run) and print a table."""
    from berth import scheduler
    from berth.scheduler import schedule_tables
    from berth.services import Services

    settings = _settings(database_url=database_url)
    try:
        spec = scheduler.RequestSpec(
            resources=scheduler.parse_flavor(flavor),
            num_instances=count,
            required_traits=set(trait),
            forbidden_traits=set(forbid),
            availability_zone=zone,
            server_group=scheduler.ServerGroupSpec(group, policy) if group else None,
            project_id=project,
            user_id=user,
            dry_run=dry_run,
            explain=explain or dry_run,
        )
        services = Services.from_settings(settings)
        answer = scheduler.select_destinations(services, spec)
    except scheduler.NoValidHost as exc:
        console.print(f"[red]{exc.message}[/red]")
        if exc.explanation is not None:
            console.print(schedule_tables.stages(exc.explanation))
        raise typer.Exit(1) from None
    except PlacementError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
    console.print(schedule_tables.selections(answer, services.db))
    if answer.explanation is not None:
        console.print(schedule_tables.stages(answer.explanation))


@queues_app.command("list")
def queues_list(
    database_url: str = typer.Option(None, help="Database URL (BERTH_DATABASE_URL)."),
    as_json: bool = typer.Option(False, "--json", help="Print the queue JSON instead."),
) -> None:
    """List the work queues the database holds (a flavor's, and its capability sets')."""
    import json

    from berth.pull import queues

    db = Database(_settings(database_url=database_url).effective_database_url)
    try:
        with db.read() as conn:
            found = queues.list_queues(conn)
    finally:
        db.dispose()
    if as_json:
        print(json.dumps([q.as_body() for q in found], indent=2))
        return
    table = Table("queue", "flavor", "resources", "required", "forbidden")
    for q in found:
        body = q.as_body()
        resources = ",".join(f"{k}={v}" for k, v in body["resources"].items())
        table.add_row(q.name, q.flavor_name, resources, ",".join(body["required"]),
                      ",".join(body["forbidden"]))  # fmt: skip
    console.print(table)


@queues_app.command("sync")
def queues_sync(
    database_url: str = typer.Option(None, help="Database URL (BERTH_DATABASE_URL)."),
    nats_url: str = typer.Option(None, help="NATS URL (BERTH_NATS_URL)."),
    prune: bool = typer.Option(
        False,
        "--prune",
        help="Also remove queue consumers and keys the database does not know (only when "
        "this NATS server serves no other berth).",
    ),
) -> None:
    """Reconcile the queues: the table from the flavors, then NATS's streams, consumers
    and key-value bucket from the table (exit 1 when NATS cannot be reached)."""
    from berth.pull import queues
    from berth.pull.bus import Bus

    settings = _settings(database_url=database_url, nats_url=nats_url)
    db = Database(settings.effective_database_url)
    bus = Bus(settings.nats_url, settings.nats_timeout_s, 0)
    try:
        report = queues.sync(db, bus, settings, prune=prune)
    except PlacementError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        bus.close()
        db.dispose()
    for label, names in (
        ("queue rows added", report.table.added),
        ("queues retired (flavor deleted)", report.table.retired),
        ("consumers created", report.consumers_created),
        ("consumers removed", report.consumers_removed),
        ("delete consumers created", report.delete_consumers_created),
        ("keys written", report.keys_written),
        ("keys removed", report.keys_removed),
    ):
        console.print(f"{label}: {len(names)}" + (f" ({', '.join(names)})" if names else ""))
    if report.table.failed:
        console.print(f"instances failed (their flavor was deleted): {report.table.failed}")


def _stop(signum: int, frame: object) -> None:
    """SIGTERM ends a command as Ctrl-C does: unwinding, so what it started is stopped."""
    raise SystemExit(128 + signum)


def main() -> None:
    """Entry point of the ``berth`` script.

    A command ended by SIGTERM (a process manager, ``kill``, ``timeout``) runs
    its ``finally`` blocks and context exits first, so the servers, client
    processes and databases a benchmark or an import started are stopped with
    it; ``berth serve`` puts its own stop handling in place.
    """
    signal.signal(signal.SIGTERM, _stop)
    app()


if __name__ == "__main__":
    main()
