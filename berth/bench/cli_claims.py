"""``berth bench claims | compute-claims | workers``; :func:`register` adds them to the app."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

import typer
from rich.table import Table

from berth.bench import candidates as cand
from berth.bench import invariants, strategies
from berth.bench.claims import ClaimsPlan, run
from berth.bench.cli_options import AGAINST, DATABASE, OUT, TARGET, console, emit
from berth.bench.cloud import from_profile
from berth.bench.populate import host_count, populate_target
from berth.bench.progress import clock, timed
from berth.bench.summary import settings_label
from berth.bench.targets import Target, berth_database, berth_server, open_target

RESULT_COLUMNS = ("claims_per_s", "conflicts_per_s", "conflict_pct", "retries", "give_ups")


def _split(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    """Comma-separated choices, each one of ``allowed``."""
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad:
        raise typer.BadParameter(f"unknown {what} {bad}; choose from {list(allowed)}")
    return values


@contextlib.contextmanager
def _target_for(
    name: str, database_url: str, strategy: str, partitioning: str, server_workers: int
) -> Iterator[Target]:
    """The target; a berth the lab serves gets this strategy and partitioning as settings."""
    env = strategies.server_env(strategy, partitioning)
    with open_target(name, database_url, server_workers, env=env) as target:
        yield target


def _one_run(plan: ClaimsPlan, hosts: int, out: str, kind: str) -> dict[str, Any]:
    """Repopulate (``hosts`` > 0), claim, check capacity, write the result line."""
    target = plan.target
    if hosts:
        populate_target(target, from_profile("placement-bench", hosts), show=False)
    label = (
        f"{kind} {target.name} {plan.strategy}/{plan.partitioning} "
        f"W={plan.workers}x{plan.concurrency} {settings_label(plan.varied())}"
    )
    with timed(label, plan.seconds) as advance:
        result = run(plan, advance)
    result.update(
        invariants.check(None if target.is_berth else target.transport(), target.database_url)
    )
    hosts = hosts or host_count(target)
    result["hosts"] = hosts
    emit(out, kind, target, {**plan.settings(), "hosts": hosts}, result)
    return result


def _overrides(pairs: list[str]) -> list[dict[str, Any]]:
    """``--set name=v1,v2`` options as one settings dict per combination."""
    combos: list[dict[str, Any]] = [{}]
    for pair in pairs:
        name, sep, values = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"--set wants NAME=VALUE[,VALUE...], got {pair!r}")
        key = name.strip().lower().removeprefix("berth_")
        combos = [{**c, key: v.strip()} for c in combos for v in values.split(",")]
    return combos


# (target, strategy, partitioning, hosts, concurrency, settings label, result)
Row = tuple[str, str, str, int, int, str, dict[str, Any]]


def _table(rows: list[Row]) -> Table:
    """The claims runs side by side."""
    table = Table("target", "strategy", "part.", "hosts", "conc.", "settings", "claims/s",
                  "confl./s", "confl. %", "retries", "give-ups", "5xx", "p50 ms", "p99 ms",
                  "over cap.")  # fmt: skip
    for name, strategy, part, hosts, conc, extra, r in rows:
        figures = [r[c] for c in (*RESULT_COLUMNS, "server_errors", "p50_ms", "p99_ms")]
        cells = [f"{v:.1f}" if isinstance(v, float) else str(v) for v in figures]
        table.add_row(
            name, strategy, part, str(hosts), str(conc), extra, *cells, str(r["over_capacity"])
        )
    return table


def claims(
    target: str = TARGET,
    against: list[str] = AGAINST,
    database_url: str = DATABASE,
    mode: str = typer.Option(
        "auto", help="scheduler (berth's), placement (client-side claims) or auto."
    ),
    strategy: str = typer.Option("pack", help="pack, spread, random (comma-separated)."),
    partitioning: str = typer.Option("none,modulo", help="none, modulo, hash (comma-separated)."),
    workers: int = typer.Option(8, help="Concurrent scheduler processes."),
    seconds: float = typer.Option(10.0, help="How long each run claims."),
    hosts: list[int] = typer.Option(
        [], help="Repopulate with this many placement-bench hosts before each run (repeatable)."
    ),
    repeat: int = typer.Option(1, help="Runs per combination (report the median)."),
    limit: int = typer.Option(0, help="Client-side: limit on GET /allocation_candidates."),
    server_workers: int = typer.Option(2, help="Worker processes of a berth the lab serves."),
    concurrency: list[int] = typer.Option(
        [1], help="Requests each scheduler serves at once, one thread each (repeatable)."
    ),
    settings: list[str] = typer.Option(
        [],
        "--set",
        help="Scheduler setting for berth in process, NAME=V1[,V2...]: one run per value "
        "(repeatable; e.g. --set scheduler_claim_batch=0,64).",
    ),
    batch: int = typer.Option(
        1, help="Instances per request (num_instances; --mode scheduler only)."
    ),
    cpu_time: bool = typer.Option(
        False,
        "--cpu-time",
        help="Also CPU ms per successful claim: the scheduler processes', and the database "
        "servers' on this machine (Linux /proc).",
    ),
    cprofile: str = typer.Option(
        "", help="cProfile scheduler 0's first request stream (CPU time) into this file."
    ),
    out: str = OUT,
) -> None:
    """W schedulers claiming at once: claims/s, conflicts, retries, give-ups, latency."""
    rows: list[Row] = []
    combos = list(itertools.product(concurrency, _overrides(settings)))
    for name in [target, *against]:
        for s in _split(strategy, strategies.STRATEGIES, "strategy"):
            for p in _split(partitioning, strategies.PARTITIONINGS, "partitioning"):
                with _target_for(name, database_url, s, p, server_workers) as tg:
                    base = ClaimsPlan(
                        tg, _mode(mode, tg, batch), s, p, workers, seconds, limit=limit,
                        batch=batch, cpu_time=cpu_time, cprofile=cprofile,
                    )  # fmt: skip
                    rows += _runs(base, hosts or [0], combos, repeat, out)
    console.print(_table(rows))


def _mode(asked: str, target: Target, batch: int) -> str:
    """The claims mode for ``target`` (``auto``: berth's scheduler where there is one)."""
    chosen = asked if asked != "auto" else ("scheduler" if target.is_berth else "placement")
    if batch != 1 and chosen != "scheduler":
        raise typer.BadParameter(f"--batch {batch} needs --mode scheduler (a berth target)")
    return chosen


def _runs(
    base: ClaimsPlan,
    hosts: list[int],
    combos: list[tuple[int, dict[str, Any]]],
    repeat: int,
    out: str,
) -> list[Row]:
    """Every host count x (concurrency, settings) of ``base``, ``repeat`` times each."""
    rows: list[Row] = []
    for n in hosts:
        for c, extra in combos:
            plan = dataclasses.replace(base, concurrency=c, overrides=extra)
            for _ in range(repeat):
                result = _one_run(plan, n, out, "claims")
                label = settings_label(plan.varied())
                rows.append(
                    (plan.target.name, plan.strategy, plan.partitioning, n, c, label, result)
                )
    return rows


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
    with _target_for(target, database_url, strategy, "none", 2) as tg:
        new = "scheduler" if tg.is_berth else "placement"
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
            result = _one_run(plan, hosts, out, "compute-claims")
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
    for server in _split(servers, ("gunicorn", "granian"), "server"):
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
    """Add claims, compute-claims and workers to ``app``."""
    app.command()(claims)
    app.command("compute-claims")(compute_claims)
    app.command()(workers)
