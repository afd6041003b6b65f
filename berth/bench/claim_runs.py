"""One claims (or fill) run end to end: the target served for it, the cloud, the run, the line.

A berth the lab serves is started for each run (each combination of strategy,
partitioning and ``--set`` values, each host count, concurrency and repeat), with
exactly that combination's settings in its environment (berth's scheduler
implements pack/spread/random and the partitionings through settings;
client-side claims change nothing on the server).  Each run repopulates the
cloud, claims, checks that no provider ended over capacity, and writes one
result line carrying the conditions.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import typer
from rich.table import Table

from berth.bench import fill as fill_mod
from berth.bench import invariants, strategies
from berth.bench.claims import ClaimsPlan, run
from berth.bench.cli_options import as_env, emit
from berth.bench.cloud import from_profile
from berth.bench.populate import host_count, populate_target
from berth.bench.progress import bar, timed
from berth.bench.summary import settings_title
from berth.bench.targets import IN_PROCESS, Target, non_default, open_target
from berth.settings import load

RESULT_COLUMNS = ("claims_per_s", "conflicts_per_s", "conflict_pct", "retries", "give_ups")


def split(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    """Comma-separated choices, each one of ``allowed``."""
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad:
        raise typer.BadParameter(f"unknown {what} {bad}; choose from {list(allowed)}")
    return values


def mode_for(asked: str, name: str) -> str:
    """The claims mode for target ``name`` (``auto``: berth's scheduler where there is one)."""
    if asked != "auto":
        return asked
    return "scheduler" if name in ("inproc", "serve") else "placement"


@contextlib.contextmanager
def target_for(
    name: str,
    database_url: str,
    mode: str,
    strategy: str,
    partitioning: str,
    server_workers: int,
    extra: dict[str, str],
) -> Iterator[Target]:
    """The target; a berth the lab serves gets the scheduler's settings for this run.

    Those are the strategy's and the partitioning's (berth's scheduler only)
    and ``extra`` (``--set``).  URLs and the reference get none.
    """
    env = strategies.server_env(strategy, partitioning) if mode == "scheduler" else {}
    with open_target(name, database_url, server_workers, env={**env, **as_env(extra)}) as target:
        if mode == "scheduler" and not target.is_berth:
            raise typer.BadParameter(f"{name} has no berth scheduler: use --mode placement")
        yield target


def strategy_settings(plan: ClaimsPlan) -> dict[str, Any]:
    """The settings ``plan``'s strategy and partitioning imply for berth's scheduler."""
    if plan.mode != "scheduler" or not plan.target.is_berth:
        return {}
    chosen = strategies.scheduler_settings(plan.strategy, plan.partitioning, 0, plan.workers)
    if plan.target.kind == "berth-http":
        return {k: v for k, v in chosen.items() if k not in ("scheduler_worker_index",
                                                             "scheduler_worker_count")}  # fmt: skip
    return chosen


def conditions(plan: ClaimsPlan) -> dict[str, Any]:
    """The target's conditions; in process, the settings scheduler 0 runs with."""
    found = plan.target.conditions()
    if plan.target.kind == "berth-inproc" and plan.mode == "scheduler":
        loaded = load(**plan.in_process_settings())
        found["settings"] = non_default(loaded, IN_PROCESS | {"scheduler_worker_index"})
    return found


def changed_beyond_strategy(plan: ClaimsPlan, changed: dict[str, Any]) -> dict[str, Any]:
    """The settings a run changed that its strategy/partitioning do not account for."""
    implied = load(environ={}, **strategy_settings(plan))
    return {k: v for k, v in changed.items() if getattr(implied, k, _MISSING) != v}


_MISSING = object()


def title(kind: str, plan: ClaimsPlan, changed: dict[str, Any]) -> str:
    """``claims serve pack/none W=4x8 [scheduler_scan_limit=10]``: what ran, what it changed."""
    extra = changed_beyond_strategy(plan, changed)
    batch = f" batch={plan.batch}" if plan.batch != 1 else ""
    limit = f" limit={plan.limit}" if plan.mode != "scheduler" else ""
    head = f"{kind} {plan.target.name} {plan.mode} {plan.strategy}/{plan.partitioning}"
    return (
        f"{head} W={plan.workers}x{plan.concurrency}{limit}{batch} {settings_title(extra)}".strip()
    )


def one_run(plan: ClaimsPlan, hosts: int, out: str, kind: str) -> dict[str, Any]:
    """Repopulate (``hosts`` > 0), claim (or fill), check capacity, write the result line."""
    target = plan.target
    if hosts:
        topo = from_profile("placement-bench", hosts)
        populate_target(target, topo, show=False)
        if kind == "fill":
            plan = dataclasses.replace(plan, fill=fill_mod.request_list(topo, plan.seed))
    found = conditions(plan)
    label = title(kind, plan, found["settings"])
    progress = bar(label, len(plan.fill)) if plan.fill else timed(label, plan.seconds)
    with progress as advance:
        result = run(plan, advance)
    result.update(
        invariants.check(None if target.is_berth else target.transport(), target.database_url)
    )
    if plan.fill and target.database_url:
        result.update(fill_mod.fill_level(target.database_url))
    result["hosts"] = hosts or host_count(target)
    result["title"] = label
    settings = {**plan.settings(), "hosts": result["hosts"]}
    emit(out, kind, target, settings, result, found)
    return result


# (title, hosts, result)
Row = tuple[str, int, dict[str, Any]]


def numbered(rows: list[Row]) -> str:
    """The runs' titles, numbered as the table's rows (titles are too long for a column)."""
    return "\n".join(f"{n:>3}  {label}" for n, (label, _, _) in enumerate(rows, 1))


def claims_table(rows: list[Row], heading: str) -> Table:
    """The claims runs side by side, numbered as :func:`numbered` lists them."""
    table = Table("#", "hosts", "claims/s", "confl./s", "confl. %", "retries", "give-ups",
                  "5xx", "p50 ms", "p99 ms", "over cap.", title=heading)  # fmt: skip
    for n, (_, hosts, r) in enumerate(rows, 1):
        figures = [r[c] for c in (*RESULT_COLUMNS, "server_errors", "p50_ms", "p99_ms")]
        cells = [f"{v:.1f}" if isinstance(v, float) else str(v) for v in figures]
        table.add_row(str(n), str(hosts), *cells, str(r["over_capacity"]))
    return table


def fill_table(rows: list[Row], heading: str) -> Table:
    """Fill-until-full runs side by side, numbered as :func:`numbered` lists them."""
    table = Table("#", "hosts", "requests", "placed", "unplaced", "give-ups", "seconds",
                  "placed/s", "ended", "RAM used %", "p99 ms", "over cap.",
                  title=heading)  # fmt: skip
    for n, (_, hosts, r) in enumerate(rows, 1):
        table.add_row(
            str(n), str(hosts), str(r["list_taken"]), str(r["placed"]), str(r["unplaced"]),
            str(r["give_ups"]), f"{r['seconds']:.1f}", f"{r['placed_per_s']:.1f}", r["ended"],
            str(r.get("memory_mb_used_pct", "")), f"{r['p99_ms']:.0f}", str(r["over_capacity"]),
        )  # fmt: skip
    return table
