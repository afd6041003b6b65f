"""The report's tables for issue 12's workloads: fill runs, registration storms, and the targets.

Like every table of the report, each row is a median over repeats and
carries its conditions: the target, the server and its workers, the
database kind, the clients, and the load average during the runs; runs
that changed a setting are tabled apart under a title naming them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from berth.bench.summary import (
    Key,
    Line,
    db_kind,
    group,
    load_of,
    median_of,
    of_kind,
    sectioned,
    server_of,
    table,
    target_label,
)


def _fill_key(x: Line) -> Key:
    """What makes two fill lines repeats of each other."""
    s = x["settings"]
    mode = s.get("mode", "")
    if mode == "placement":
        mode = f"{mode} limit={s.get('limit', 0)}"
    return (target_label(x), mode, s.get("hosts"), f"{s.get('strategy')}/{s.get('partitioning')}",
            f"{s.get('workers')}x{s.get('concurrency', 1)}", server_of(x), db_kind(x),
            x["result"].get("list_sha256", ""))  # fmt: skip


def fill_table(lines: list[Line]) -> str:
    """Fill-until-full runs, per group of changed settings."""
    return sectioned(of_kind(lines, "fill"), _fill_rows)


def _fill_rows(lines: list[Line]) -> str:
    """Placed, unplaced, time and rate of each fill (medians), with the conditions."""
    rows = []
    for key, same in group(lines, _fill_key).items():
        r = same[-1]["result"]
        figures = [median_of(same, f) for f in ("placed", "unplaced", "give_ups", "seconds",
                                                 "placed_per_s", "memory_mb_used_pct",
                                                 "p99_ms")]  # fmt: skip
        ended = "/".join(sorted({str(x["result"].get("ended", "")) for x in same}))
        over = max(int(x["result"].get("over_capacity", 0)) for x in same)
        rows.append([*key[:-1], f"{r.get('list_length', 0):,} ({key[-1][:8]})", *figures,
                     ended, over, load_of(same), len(same)])  # fmt: skip
    head = ["target", "mode", "hosts", "strategy/partitioning", "clients x at once", "server",
            "database", "request list", "placed", "unplaced", "give-ups", "seconds",
            "placed/s", "RAM used %", "p99 ms", "ended", "over capacity", "load",
            "runs"]  # fmt: skip
    return table(head, rows)


def _pull_key(x: Line) -> Key:
    """What makes two pull lines repeats of each other (the design and its knobs)."""
    s = x["settings"]
    if s.get("design") == "push":
        clients = f"{s.get('workers')} schedulers"
    else:
        batch = f", batch {s['batch']}" if s.get("batch", 1) != 1 else ""
        clients = (f"{s.get('enqueuers')}x{s.get('threads')} enqueuers{batch}, window "
                   f"{s.get('window')}, {s.get('agents')} agent(s), {s.get('projects')} "
                   "project(s)")  # fmt: skip
    return (s.get("hosts"), s.get("design"), s.get("strategy"), clients, server_of(x),
            db_kind(x), x["result"].get("list_sha256", ""))  # fmt: skip


PULL_BROKEN = ("over_capacity", "unsettled", "failed_without_reason", "quota_mismatches",
               "double_placed", "misplaced", "leaked")  # fmt: skip


def pull_table(lines: list[Line]) -> str:
    """Push against pull on one request list, per group of changed settings."""
    return sectioned(of_kind(lines, "pull"), _pull_rows)


def _pull_rows(lines: list[Line]) -> str:
    """Placements/s, latency, packing, queues, NATS, quota checks (medians), invariants."""
    rows = []
    for key, same in group(lines, _pull_key).items():
        figures = [
            int(median_of(same, "placed")),
            median_of(same, "placed_per_s"),
            median_of(same, "p50_ms"),
            median_of(same, "p99_ms"),
            int(median_of(same, "hosts_used")),
            median_of(same, "memory_mb_used_pct"),
        ]
        pull = key[1] == "pull"
        extra = [int(median_of(same, "queues")), median_of(same, "nats_memory_mb"),
                 median_of(same, "quota_checks_per_s")] if pull else ["-", "-", "-"]  # fmt: skip
        ended = "/".join(sorted({str(x["result"].get("ended", "")) for x in same}))
        broken = max(sum(int(x["result"].get(f) or 0) for f in PULL_BROKEN) for x in same)
        rows.append([*key[:-1], f"{same[-1]['result'].get('list_length', 0):,} ({key[-1][:8]})",
                     *figures, *extra, ended, broken, load_of(same), len(same)])  # fmt: skip
    head = ["hosts", "design", "strategy", "clients", "server", "database", "request list",
            "placed", "placed/s", "p50 ms", "p99 ms", "hosts used", "RAM used %", "queues",
            "NATS MB", "quota checks/s", "ended", "invariants broken", "load",
            "runs"]  # fmt: skip
    return table(head, rows)


KINDS = ("create", "inventories", "traits", "aggregates")


def _register_key(x: Line) -> Key:
    """What makes two storm lines repeats of each other."""
    s = x["settings"]
    clients = f"{s.get('clients')} ({s.get('processes')}x{s.get('threads')})"
    return (target_label(x), s.get("hosts"), clients, server_of(x), db_kind(x))


def register_table(lines: list[Line]) -> str:
    """Registration storms, per group of changed settings."""
    return sectioned(of_kind(lines, "register"), _register_rows)


def _register_rows(lines: list[Line]) -> str:
    """Providers/s, writes/s, errors and p50/p99 per call kind (medians), with the conditions."""
    rows = []
    for key, same in group(lines, _register_key).items():
        calls = [f"{median_of(same, f'{k}_p50_ms'):.0f} / {median_of(same, f'{k}_p99_ms'):.0f}"
                 for k in KINDS]  # fmt: skip
        errors = max(int(x["result"].get("errors", 0)) for x in same)
        rows.append([*key, median_of(same, "providers_per_s"), median_of(same, "writes_per_s"),
                     errors, *calls, load_of(same), len(same)])  # fmt: skip
    head = ["target", "hosts", "clients", "server", "database", "providers/s", "writes/s",
            "errors (max)", *(f"{k} p50 / p99 ms" for k in KINDS), "load", "runs"]  # fmt: skip
    return table(head, rows)


@dataclass(frozen=True)
class Goal:
    """One of the issue's targets: which lines measure it, which figure, what it must reach."""

    name: str
    kind: str
    match: Callable[[Line], bool]
    figure: str
    unit: str
    at_least: float
    also: Callable[[Line], str]  # the other conditions of the target, as met or not


def _served_defaults(x: Line) -> bool:
    """berth serve, 2 workers, every setting at its default (the strategy's too), 10,000 hosts."""
    conditions = x.get("conditions")
    if conditions is None or conditions.get("settings") or conditions.get("server_workers") != 2:
        return False
    return bool(x["target"] == "serve" and x["settings"].get("hosts") == 10000)


def _clients(x: Line) -> int:
    """How many requests the clients make at once."""
    s = x["settings"]
    return int(s.get("workers", 0)) * int(s.get("concurrency", 1))


def _select(x: Line) -> bool:
    """select_destinations over HTTP, 32 requests at once, default settings, 10,000 hosts."""
    s = x["settings"]
    return _served_defaults(x) and s.get("mode") == "scheduler" and _clients(x) == 32


def _api_claims(partitioning: str) -> Callable[[Line], bool]:
    """Matches the Placement API claim path as the issue defines it, with ``partitioning``."""

    def match(x: Line) -> bool:
        """Whether ``x`` is such a line."""
        s = x["settings"]
        return (_served_defaults(x) and s.get("mode") == "placement" and _clients(x) == 8
                and s.get("strategy") == "pack" and s.get("partitioning") == partitioning
                and s.get("limit") == 50)  # fmt: skip

    return match


def _storm(x: Line) -> bool:
    """The storm from 64 clients against a default-settings berth, 10,000 hosts."""
    s = x["settings"]
    return _served_defaults(x) and s.get("clients") == 64


def _pulled(x: Line) -> bool:
    """berth bench pull's pull design at 10,000 hosts against a default-settings berth."""
    return _served_defaults(x) and x["settings"].get("design") == "pull"


def _no_broken_invariant(x: Line) -> str:
    """Issue 13's other condition: none of the pull invariants broken."""
    broken = sum(int(x["result"].get(f) or 0) for f in PULL_BROKEN)
    return f"{broken} invariants broken" + ("" if broken == 0 else " (missed)")


def _p99_and_conflicts(x: Line) -> str:
    """select_destinations' other targets: p99 <= 200 ms, conflicts <= 1 %."""
    r = x["result"]
    ok = r.get("p99_ms", 1e9) <= 200 and r.get("conflict_pct", 100) <= 1
    return f"p99 {r.get('p99_ms', 0):,.0f} ms, conflicts {r.get('conflict_pct', 0)} %" + (
        "" if ok else " (missed)"
    )


def _no_errors(x: Line) -> str:
    """The storm's other target: no errors."""
    errors = int(x["result"].get("errors", 0))
    return f"{errors} errors" + ("" if errors == 0 else " (missed)")


GOALS = [
    Goal("select_destinations, 32 clients", "claims", _select, "claims_per_s",
         "instances/s", 1000, _p99_and_conflicts),
    Goal("API claims, 8 clients, pack, modulo", "claims", _api_claims("modulo"), "claims_per_s",
         "claims/s", 400, lambda x: ""),
    Goal("API claims, 8 clients, pack, no partitioning", "claims", _api_claims("none"),
         "claims_per_s", "claims/s", 200, lambda x: ""),
    Goal("registration storm, 64 clients", "register", _storm, "providers_per_s",
         "providers/s", 300, _no_errors),
    Goal("pull dispatch, filling the cloud (issue 13)", "pull", _pulled, "placed_per_s",
         "instances/s", 1000, _no_broken_invariant),
]  # fmt: skip


def has_targets(lines: list[Line]) -> bool:
    """Whether some line measures one of the targets."""
    return any(goal.match(x) for goal in GOALS for x in of_kind(lines, goal.kind))


def targets_table(lines: list[Line]) -> str:
    """Each target per database kind: the median figure, whether it is met, the conditions."""
    rows = []
    for goal in GOALS:
        chosen = [x for x in of_kind(lines, goal.kind) if goal.match(x)]
        for (db,), same in group(chosen, lambda x: (db_kind(x),)).items():
            value = median_of(same, goal.figure)
            met = "met" if value >= goal.at_least else "missed"
            worst = min(same, key=lambda x: float(x["result"].get(goal.figure, 0.0)))
            rows.append([goal.name, db, f">= {goal.at_least:,.0f} {goal.unit}", value, met,
                         goal.also(worst), server_of(same[0]), load_of(same),
                         len(same)])  # fmt: skip
    head = ["target", "database", "goal", "measured (median)", "", "also (worst run)",
            "server", "load", "runs"]  # fmt: skip
    return table(head, rows)
