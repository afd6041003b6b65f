"""``berth bench hoststate`` (host-state updates against scheduling) and ``berth bench
host-updates`` (host writes/s, this tree against an older one); :func:`register` adds them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from berth import settings as settings_mod
from berth.bench import hostupdates, records
from berth.bench.cli_options import (
    DATABASE,
    OUT,
    SERVER_WORKERS,
    SETTINGS,
    as_env,
    console,
    overrides,
)
from berth.bench.cloud import from_profile
from berth.bench.hoststate import HostStatePlan, host_groups, run_one, sync_envs
from berth.bench.progress import bar
from berth.bench.targets import berth_database


def hoststate(
    database_url: str = DATABASE,
    hosts: int = typer.Option(10_000, min=1, help="placement-bench hosts, a fresh cloud per run."),
    interval: list[float] = typer.Option(
        [10.0, 1.0], help="Seconds between two reports of one host, one run each (repeatable)."
    ),
    sync: str = typer.Option(
        "db",
        help="host_state_sync backends, comma-separated, one run each (db, pg_notify, redis, "
        "nats, memcached: those the server has).",
    ),
    workers: int = typer.Option(8, min=1, help="Scheduler (client) processes."),
    concurrency: int = typer.Option(1, min=1, help="Requests each scheduler makes at once."),
    reporters: int = typer.Option(
        10, min=1, help="berth host report processes (the hosts split among them by name)."
    ),
    reporter_concurrency: int = typer.Option(
        64, min=1, help="Sends in flight per reporter process (its --concurrency)."
    ),
    seconds: float = typer.Option(60.0, min=0.5, help="The measured window of each run."),
    warmup: float = typer.Option(
        5.0, min=0.0, help="Seconds the schedulers place before the window opens."
    ),
    seed: int = typer.Option(0, help="Seed of the sizes asked for and the synthetic metrics."),
    server_workers: int = SERVER_WORKERS,
    settings: list[str] = SETTINGS,
    out: str = OUT,
) -> None:
    """N hosts reporting host state every R seconds while schedulers place instances: update
    rate held, placements/s, staleness in the workers, database write load, worker memory."""
    plan = HostStatePlan(
        berth_database(database_url), hosts=hosts, workers=workers, concurrency=concurrency,
        reporters=reporters, reporter_concurrency=reporter_concurrency, seconds=seconds,
        warmup=warmup, server_workers=server_workers, seed=seed,
    )  # fmt: skip
    known = {f.name for f in dataclasses.fields(settings_mod.Settings)}
    try:
        backends = sync_envs([v.strip() for v in sync.split(",")], known)
        host_groups(from_profile("placement-bench", hosts), reporters)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if any(r <= 0 for r in interval):
        raise typer.BadParameter("an interval above 0", param_hint="--interval")
    rows: list[dict[str, Any]] = []
    # SIGTERM unwinds as Ctrl-C does (berth.cli.main): each run's context managers stop
    # the server, the reporters and the schedulers they started.
    for _, env in backends:
        for extra in overrides(settings):
            for every in interval:
                rows.append(run_one(plan, every, {**env, **as_env(extra)}, out))
    titles = "\n".join(f"{n:>3}  {r['title']}" for n, r in enumerate(rows, 1))
    console.print(titles, markup=False, highlight=False)
    console.print(hoststate_table(rows))


def _or_dash(value: float | None, fmt: str = "{:.1f}") -> str:
    """A figure, or "-" where there is none (a percentile beyond the last bucket)."""
    return "-" if value is None else fmt.format(value)


def hoststate_table(rows: list[dict[str, Any]]) -> Table:
    """The runs side by side, numbered as listed: updates, placements, staleness, database
    load, memory."""
    table = Table("#", "updates/s offered", "accepted", "held %", "refused", "placed/s",
                  "p50/p99 ms", "staleness p50/p99 s", "db commits/s", "db rows/s",
                  "max worker RSS MB", title="hoststate")  # fmt: skip
    for n, r in enumerate(rows, 1):
        db = r["database"]
        table.add_row(
            str(n), f"{r['updates_offered_per_s']:.0f}", f"{r['updates_per_s']:.0f}",
            f"{r['updates_held_pct']:.0f}", str(r["update_refusals"]), f"{r['placed_per_s']:.0f}",
            f"{r['p50_ms']:.0f}/{r['p99_ms']:.0f}",
            f"{_or_dash(r['staleness_p50_s'], '{:g}')}/{_or_dash(r['staleness_p99_s'], '{:g}')}",
            _or_dash(db.get("commits_per_s")), _or_dash(db.get("rows_written_per_s")),
            _or_dash(max(r["worker_rss_mb"], default=None)),
        )  # fmt: skip
    return table


def host_updates(
    before: Path = typer.Option(
        ...,
        help="An older berth checkout measured beside this one, e.g. scheduler 1.2's one-row "
        "design: git worktree add /tmp/berth-1.2 7def822^",
    ),
    database_url: str = DATABASE,
    writers: int = typer.Option(8, min=1, help="Writer processes, each with its own hosts."),
    hosts: int = typer.Option(800, min=1, help="Hosts in each round's fresh database."),
    seconds: float = typer.Option(10.0, min=0.5, help="How long the writers write, each round."),
    rounds: int = typer.Option(3, min=1, help="Rounds; the trees take turns in each."),
    rtt_ms: list[float] = typer.Option(
        [0.0, 2.0],
        help="Network round trip added before each statement and commit, one run each "
        "(repeatable): the database on another machine.",
    ),
    out: str = OUT,
) -> None:
    """Host updates/s with concurrent writers, straight to the database: this berth and an
    older checkout, taking turns in one run (issue 14's "no hotspot")."""
    admin = berth_database(database_url)
    if admin.startswith("sqlite"):
        raise typer.BadParameter("a PostgreSQL or MariaDB server", param_hint="--database-url")
    try:
        trees = [hostupdates.Tree.at("before", before), hostupdates.this_tree()]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--before") from None
    trees[1] = dataclasses.replace(trees[1], label="after")
    plan = hostupdates.HostUpdatesPlan(admin, writers, hosts, seconds, rounds)
    with bar("host-updates", rounds * len(rtt_ms) * len(trees)) as advance:
        results = hostupdates.run(plan, trees, rtt_ms, lambda _: advance(1))
    table = Table("tree", "commit", "round trip ms", "updates/s (median)", "rounds",
                  "p50 ms", "p99 ms", "gave up", title="host-updates")  # fmt: skip
    db = admin.split(":", 1)[0].split("+", 1)[0]
    for tree in trees:
        for rtt in rtt_ms:
            result = results[(tree.label, rtt)]
            conditions = {"kind": "direct-db", "db": db, "tree": tree.label, "commit": tree.commit}
            line = records.record("host-updates", tree.label, plan.settings(rtt), result)
            records.append(out, {**line, "conditions": conditions})
            table.add_row(
                tree.label, tree.commit, f"{rtt:g}", f"{result['updates_per_s']:.1f}",
                " ".join(f"{r:.0f}" for r in result["updates_per_s_rounds"]),
                _or_dash(result["p50_ms"]), _or_dash(result["p99_ms"]), str(result["gave_up"]),
            )  # fmt: skip
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``hoststate`` and ``host-updates`` to ``app``."""
    app.command()(hoststate)
    app.command("host-updates")(host_updates)
