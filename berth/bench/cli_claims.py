"""``berth bench claims | fill | compute-claims | workers``; :func:`register` adds them."""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import typer
from rich.table import Table

from berth.bench import candidates as cand
from berth.bench import strategies
from berth.bench.claim_runs import (
    Row,
    claims_table,
    fill_table,
    mode_for,
    numbered,
    one_run,
    split,
    target_for,
)
from berth.bench.claims import ClaimsPlan
from berth.bench.cli_options import (
    AGAINST,
    DATABASE,
    OUT,
    SERVER_WORKERS,
    SETTINGS,
    TARGET,
    console,
    emit,
    overrides,
)
from berth.bench.progress import clock
from berth.bench.targets import berth_database, berth_server

MODE = typer.Option(
    "auto",
    help="scheduler (berth's: POST /scheduler/select_destinations, or its Python API in "
    "process), placement (the client claims: GET /allocation_candidates, PUT /allocations) "
    "or auto (scheduler for berth, placement for any other).",
)
STRATEGY = typer.Option(
    "pack",
    help="pack, spread, random or default (berth's default weighers; a client takes the "
    "first candidate), comma-separated.",
)
WORKERS = typer.Option(8, help="Client (scheduler) processes.")
CONCURRENCY = typer.Option(
    [1], help="Requests each client process makes at once, one thread each (repeatable)."
)
HOSTS = typer.Option(
    [], help="Repopulate with this many placement-bench hosts before each run (repeatable)."
)
REPEAT = typer.Option(
    1, help="Runs per combination, each with a berth started anew (report the median)."
)


def _heading(kind: str, database_url: str) -> str:
    """What every row of a console table shares: the database kind and the load now."""
    db = berth_database(database_url).split(":", 1)[0].split("+", 1)[0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return f"{kind}: database {db}, load average {load:.1f} on {os.cpu_count()} cores"


def _plans(
    kind: str, targets: list[str], database_url: str, mode: str, strategy: str,
    partitioning: str, settings: list[str], server_workers: int, make: Any,
    runs: Any,
) -> list[Row]:  # fmt: skip
    """Every target x strategy x partitioning x ``--set`` combination, run by ``runs``.

    ``runs(fresh, plan_on)`` opens the target with ``fresh()`` for each of
    its runs (a berth the lab serves is started anew: a server kept across a
    repopulated cloud would claim with query plans its database made for the
    tables the previous run left) and makes the run's plan with ``plan_on(target)``.
    """
    rows: list[Row] = []
    for name in targets:
        chosen = mode_for(mode, name)
        for s in split(strategy, strategies.STRATEGIES, "strategy"):
            for p in split(partitioning, strategies.PARTITIONINGS, "partitioning"):
                for extra in overrides(settings) if name in ("inproc", "serve") else [{}]:
                    fresh = functools.partial(
                        target_for, name, database_url, chosen, s, p, server_workers, extra
                    )
                    plan_on = functools.partial(_plan_on, make, chosen, s, p, extra)
                    rows += runs(fresh, plan_on)
    return rows


def _plan_on(make: Any, chosen: str, s: str, p: str, extra: dict[str, str], tg: Any) -> Any:
    return make(tg, chosen, s, p, extra)


def _each_run(kind: str, hosts: list[int], concurrency: list[int], repeat: int, out: str) -> Any:
    """``runs`` for :func:`_plans`: every host count and concurrency, ``repeat`` times each."""

    def runs(fresh: Any, plan_on: Any) -> list[Row]:
        found: list[Row] = []
        for n in hosts or [0]:
            for c in concurrency:
                for _ in range(repeat):
                    with fresh() as tg:
                        plan = dataclasses.replace(plan_on(tg), concurrency=c)
                        result = one_run(plan, n, out, kind)
                    found.append((result["title"], result["hosts"], result))
        return found

    return runs


def claims(
    target: str = TARGET,
    against: list[str] = AGAINST,
    database_url: str = DATABASE,
    mode: str = MODE,
    strategy: str = STRATEGY,
    partitioning: str = typer.Option(
        "none,modulo",
        help="none, modulo, strict (placement-bench's: own hosts only; berth's scheduler: "
        "scheduler_partition_fallback=false) or hash, comma-separated.",
    ),
    workers: int = WORKERS,
    seconds: float = typer.Option(10.0, help="How long each run claims."),
    hosts: list[int] = HOSTS,
    repeat: int = REPEAT,
    limit: int = typer.Option(
        50, help="Client-side claims: limit= on GET /allocation_candidates (0: none)."
    ),
    server_workers: int = SERVER_WORKERS,
    concurrency: list[int] = CONCURRENCY,
    settings: list[str] = SETTINGS,
    batch: int = typer.Option(
        1, help="Instances per request (num_instances; --mode scheduler only)."
    ),
    cpu_time: bool = typer.Option(
        False,
        "--cpu-time",
        help="Also CPU ms per successful claim: the client (scheduler) processes', and the "
        "database servers' on this machine (Linux /proc).",
    ),
    cprofile: str = typer.Option(
        "", help="cProfile client 0's first request stream (CPU time) into this file."
    ),
    out: str = OUT,
) -> None:
    """W clients claiming at once: claims/s, conflicts, retries, give-ups, latency."""
    if batch != 1 and mode == "placement":
        raise typer.BadParameter(f"--batch {batch} needs --mode scheduler (a berth target)")

    def make(tg: Any, chosen: str, s: str, p: str, extra: dict[str, str]) -> ClaimsPlan:
        """The run's plan on target ``tg``."""
        if batch != 1 and chosen != "scheduler":
            raise typer.BadParameter(f"--batch {batch} needs --mode scheduler (a berth target)")
        return ClaimsPlan(
            tg, chosen, s, p, workers, seconds, limit=limit, batch=batch, cpu_time=cpu_time,
            cprofile=cprofile, overrides=dict(extra),
        )  # fmt: skip

    targets = [target, *against]
    runs = _each_run("claims", hosts, concurrency, repeat, out)
    rows = _plans("claims", targets, database_url, mode, strategy, partitioning, settings,
                  server_workers, make, runs)  # fmt: skip
    console.print(numbered(rows), markup=False, highlight=False)
    console.print(claims_table(rows, _heading("claims", database_url)))


def fill(
    target: str = TARGET,
    against: list[str] = AGAINST,
    database_url: str = DATABASE,
    mode: str = MODE,
    strategy: str = STRATEGY,
    partitioning: str = typer.Option(
        "none",
        help="none, modulo, strict (placement-bench's modulo: a client, or with berth's "
        "scheduler a worker, stops when its own hosts are full) or hash, comma-separated.",
    ),
    workers: int = WORKERS,
    hosts: list[int] = typer.Option(
        [100], help="Fill a fresh placement-bench cloud of this many hosts (repeatable)."
    ),
    seed: int = typer.Option(0, help="The request list's seed (same seed, same cloud: same list)."),
    seconds: float = typer.Option(600.0, help="Stop a run that takes longer than this."),
    repeat: int = REPEAT,
    limit: int = typer.Option(
        0, help="Client-side claims: limit= on GET /allocation_candidates (0: all candidates)."
    ),
    server_workers: int = SERVER_WORKERS,
    concurrency: list[int] = CONCURRENCY,
    settings: list[str] = SETTINGS,
    out: str = OUT,
) -> None:
    """placement-bench's run: one fixed request list, until the cloud is full."""

    def make(tg: Any, chosen: str, s: str, p: str, extra: dict[str, str]) -> ClaimsPlan:
        """The run's plan on target ``tg``."""
        return ClaimsPlan(
            tg, chosen, s, p, workers, seconds, limit=limit, seed=seed, overrides=dict(extra)
        )

    if not all(n > 0 for n in hosts):
        raise typer.BadParameter("fill needs a host count above 0", param_hint="--hosts")
    runs = _each_run("fill", hosts, concurrency, repeat, out)
    rows = _plans("fill", [target, *against], database_url, mode, strategy, partitioning,
                  settings, server_workers, make, runs)  # fmt: skip
    console.print(numbered(rows), markup=False, highlight=False)
    console.print(fill_table(rows, _heading("fill", database_url)))


def compute_claims(
    target: str = TARGET,
    database_url: str = DATABASE,
    delay_ms: float = typer.Option(500.0, help="Between selection and the compute host's claim."),
    attempts: int = typer.Option(3, help="Schedules per instance (Nova's max_attempts)."),
    workers: int = typer.Option(8, help="Concurrent scheduler processes."),
    seconds: float = typer.Option(10.0, help="How long each design runs."),
    hosts: int = typer.Option(100, help="Repopulate with this many hosts before each design."),
    strategy: str = typer.Option("pack", help="pack, spread or random."),
    out: str = OUT,
) -> None:
    """The old design (compute host claims after a delay) vs claiming in the scheduler."""
    rows = []
    new = mode_for("auto", target)
    with target_for(target, database_url, new, strategy, "none", 2, {}) as tg:
        for design in ("compute", new):
            plan = ClaimsPlan(
                tg,
                design,
                strategy,
                "none",
                workers,
                seconds,
                attempts=attempts,
                delay=delay_ms / 1000,
            )
            result = one_run(plan, hosts, out, "compute-claims")
            per_boot = result["retries"] / result["claimed"] if result["claimed"] else 0.0
            rows.append((design, result, per_boot))
    table = Table(
        "design", "claims/s", "retries", "retries per boot", "give-ups", "p50 ms", "p99 ms"
    )
    for design, r, per_boot in rows:
        table.add_row(
            design,
            str(r["claims_per_s"]),
            str(r["retries"]),
            f"{per_boot:.3f}",
            str(r["give_ups"]),
            str(r["p50_ms"]),
            str(r["p99_ms"]),
        )
    console.print(table)


def workers(
    database_url: str = DATABASE,
    processes: str = typer.Option("1,2,4", help="Worker process counts to try."),
    servers: str = typer.Option("gunicorn,granian", help="HTTP servers to try."),
    query: str = typer.Option("limit", help="Query name or raw query string."),
    concurrency: int = typer.Option(8, help="Concurrent client connections."),
    seconds: float = typer.Option(10.0, help="Per server and worker count."),
    out: str = OUT,
) -> None:
    """API throughput against the number of worker processes, per HTTP server."""
    table = Table("server", "workers", "req/s", "p50 ms", "p99 ms", "errors")
    for server in split(servers, ("gunicorn", "granian"), "server"):
        for n in [int(x) for x in processes.split(",")]:
            with berth_server(berth_database(database_url), n, server) as tg:
                transport = tg.transport()
                cand.run_cell(transport, query, concurrency, 4 * n * concurrency, 30.0)  # warm
                with clock(f"{server} x{n}", seconds) as advance:
                    cell = cand.run_cell(transport, query, concurrency, 10**9, seconds, advance)
                r = cell.result()
                settings = {
                    "server": server,
                    "workers": n,
                    "query": query,
                    "concurrency": concurrency,
                    "seconds": seconds,
                }
                emit(out, "workers", tg, settings, r)
                table.add_row(
                    server,
                    str(n),
                    str(r["throughput_rps"]),
                    str(r["p50_ms"]),
                    str(r["p99_ms"]),
                    str(r["errors"]),
                )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add claims, fill, compute-claims and workers to ``app``."""
    app.command()(claims)
    app.command()(fill)
    app.command("compute-claims")(compute_claims)
    app.command()(workers)
