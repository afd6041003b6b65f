"""``berth bench pull``: push against pull on the same request list; :func:`register` adds it."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from berth.bench.cli_options import DATABASE, OUT, SERVER_WORKERS, console
from berth.bench.pull import DESIGNS, PullPlan, run_pull, run_push
from berth.bench.targets import berth_database

STRATEGIES = ("pack", "spread", "random")


def _designs(text: str) -> list[str]:
    """``push,pull`` as a list, each one of DESIGNS."""
    chosen = [d.strip() for d in text.split(",") if d.strip()]
    if not chosen or any(d not in DESIGNS for d in chosen):
        raise typer.BadParameter(f"choose from {list(DESIGNS)}", param_hint="--design")
    return chosen


def pull(
    database_url: str = DATABASE,
    hosts: list[int] = typer.Option(
        [100, 1000, 10000], help="placement-bench hosts, a fresh cloud per run (repeatable)."
    ),
    design: str = typer.Option("push,pull", help="push, pull or both, comma-separated."),
    strategy: str = typer.Option(
        "pack", help="pack, spread or random: push's weighers, the agents' --choice."
    ),
    workers: int = typer.Option(8, min=1, help="push: scheduler processes."),
    enqueuers: int = typer.Option(2, min=1, help="pull: enqueuer processes."),
    threads: int = typer.Option(4, min=1, help="pull: threads (requests at once) per enqueuer."),
    window: int = typer.Option(
        2000, min=1, help="pull: instances enqueued and not yet settled, at most."
    ),
    agents: int = typer.Option(
        1, min=1, help="pull: berth agent processes (the hosts split by name prefix)."
    ),
    projects: int = typer.Option(
        1, min=1, help="pull: the requests go round this many projects, each with its limit."
    ),
    batch: int = typer.Option(
        1, min=1, help="pull: list entries per enqueue, sent as one request (count) per size."
    ),
    seed: int = typer.Option(0, help="The request list's seed (as berth bench fill's)."),
    requests: int = typer.Option(0, min=0, help="Only the list's first N requests (0: all)."),
    poll: float = typer.Option(0.05, min=0.001, help="pull: seconds between state readings."),
    settle: float = typer.Option(
        10.0, min=0.1, help="pull: seconds without a placement, the window full: the run ends."
    ),
    seconds: float = typer.Option(1800.0, help="Stop a run that takes longer than this."),
    server_workers: int = SERVER_WORKERS,
    out: str = OUT,
) -> None:
    """Push (8 schedulers) against pull (agents): one request list, until the cloud is full."""
    if strategy not in STRATEGIES:
        raise typer.BadParameter(f"choose from {list(STRATEGIES)}", param_hint="--strategy")
    if not all(n > 0 for n in hosts):
        raise typer.BadParameter("a host count above 0", param_hint="--hosts")
    plan = PullPlan(
        berth_database(database_url), server_workers=server_workers, strategy=strategy,
        workers=workers, enqueuers=enqueuers, threads=threads, window=window, agents=agents,
        projects=projects, batch=batch, seed=seed, requests=requests, poll=poll, settle=settle,
        seconds=seconds,
    )  # fmt: skip
    rows: list[tuple[int, dict[str, Any]]] = []
    # SIGTERM unwinds as Ctrl-C does (berth.cli.main), so every run's context managers
    # stop the servers, agents and NATS they started.
    for n in hosts:
        for chosen in _designs(design):
            run = run_push if chosen == "push" else run_pull
            rows.append((n, run(plan, n, out)))
    console.print(pull_table(rows, plan))


def pull_table(rows: list[tuple[int, dict[str, Any]]], plan: PullPlan) -> Table:
    """The runs side by side: rates, latencies, packing, queues, NATS, quota, invariants."""
    title = (
        f"pull against push: {plan.strategy}, push W={plan.workers}, pull "
        f"E={plan.enqueuers}x{plan.threads} window={plan.window} agents={plan.agents}"
    )
    table = Table("hosts", "design", "placed", "placed/s", "p50 ms", "p99 ms", "hosts used",
                  "RAM used %", "queues", "NATS MB", "quota checks/s", "CPU ms/placed",
                  "ceiling /s", "ended", "broken",
                  title=title)  # fmt: skip
    for hosts, r in rows:
        table.add_row(
            str(hosts), r["design"], str(r["placed"]), f"{r['placed_per_s']:.1f}",
            f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", str(r["hosts_used"]),
            str(r.get("memory_mb_used_pct", "")), str(r["queues"]),
            _or_dash(r["nats_memory_mb"]), _or_dash(r["quota_checks_per_s"]),
            _or_dash(r.get("cpu_ms_per_placed")), _or_dash(r.get("cpu_ceiling_per_s")), r["ended"],
            str(broken(r)),
        )  # fmt: skip
    return table


def _or_dash(value: float | None) -> str:
    """A figure, or "-" where the design has none."""
    return "-" if value is None else f"{value:.1f}"


BROKEN = ("over_capacity", "unsettled", "failed_without_reason", "quota_mismatches",
          "double_placed", "misplaced", "leaked")  # fmt: skip


def broken(result: dict[str, Any]) -> int:
    """How many invariant violations a line records (0: none)."""
    return sum(int(result.get(name) or 0) for name in BROKEN)


def register(app: typer.Typer) -> None:
    """Add ``pull`` to ``app``."""
    app.command()(pull)
