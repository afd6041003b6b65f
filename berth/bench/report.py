"""Result lines -> a Markdown report: one table per kind of measurement, plus plots.

Lines measuring the same thing (same kind, target and settings) are
repeats: the tables show the median of each figure and how many runs it
summarises, because a small shared machine is noisy.  Every row carries
its conditions (the server and its workers, the database, the load average
during the runs), and runs that changed a setting are tabled apart, under
a title naming the settings.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

from berth.bench import plots as plots_mod
from berth.bench import report_cost, report_hoststate, report_tables, seed
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


def candidates_key(x: Line) -> Key:
    """What makes two candidates lines repeats of each other."""
    s = x["settings"]
    filt = s.get("filter", "") if x["target"] in ("inproc", "serve") else ""
    return (target_label(x), filt, server_of(x), db_kind(x), s.get("hosts"), s.get("query"),
            s.get("concurrency"))  # fmt: skip


def candidates_table(lines: list[Line]) -> str:
    """Per group of changed settings: candidates figures per target, filter, hosts, query, c."""
    return sectioned(of_kind(lines, "candidates"), _candidates_rows, shown=("candidates_filter",))


def _candidates_rows(lines: list[Line]) -> str:
    """Median latency percentiles and throughput, with the conditions."""
    rows = []
    for key, same in group(lines, candidates_key).items():
        figures = [median_of(same, f) for f in ("p50_ms", "p90_ms", "p99_ms", "throughput_rps")]
        cands = int(same[-1]["result"].get("candidates", -1))
        rows.append([*key, cands, *figures, load_of(same), len(same)])
    head = ["target", "filter", "server", "database", "hosts", "query", "c", "candidates",
            "p50 ms", "p90 ms", "p99 ms", "req/s", "load", "runs"]  # fmt: skip
    return table(head, rows)


def startup_table(lines: list[Line]) -> str:
    """Cold start and worker memory of servers the lab started."""
    rows = []
    for x in of_kind(lines, "startup"):
        s, r = x["settings"], x["result"]
        rss = max(r.get("worker_rss_mb") or [0.0])
        rows.append([target_label(x), s.get("filter", ""), s.get("hosts"), s.get("server_workers"),
                     r["first_answer_s"], r["first_request_ms"], rss])  # fmt: skip
    head = ["target", "filter", "hosts", "workers", "spawn to first answer s",
            "first request ms", "max worker RSS MB"]  # fmt: skip
    return table(head, rows)


def claims_key(x: Line) -> Key:
    """What makes two claims lines repeats of each other (the changed settings apart)."""
    s = x["settings"]
    mode = s.get("mode", "")
    if mode == "placement":
        mode = f"{mode} limit={s.get('limit', 0)}"
    elif s.get("batch", 1) != 1:
        mode = f"{mode} batch={s['batch']}"
    return (target_label(x), mode, s.get("hosts"), s.get("strategy"), s.get("partitioning"),
            f"{s.get('workers')}x{s.get('concurrency', 1)}", server_of(x), db_kind(x))  # fmt: skip


CLAIM_FIGURES = ("claims_per_s", "conflicts_per_s", "conflict_pct", "retries", "give_ups",
                 "server_errors", "p50_ms", "p99_ms")  # fmt: skip


def claims_table(lines: list[Line], kind: str = "claims") -> str:
    """Per group of changed settings: claims figures per target, mode, hosts, strategy..."""
    return sectioned(of_kind(lines, kind), _claims_rows)


def _claims_rows(lines: list[Line]) -> str:
    """Median claims figures, with the conditions."""
    rows = []
    for key, same in group(lines, claims_key).items():
        figures = [median_of(same, f) for f in CLAIM_FIGURES]
        over = max(int(x["result"].get("over_capacity", 0)) for x in same)
        rows.append([*key, *figures, over, load_of(same), len(same)])
    head = ["target", "mode", "hosts", "strategy", "partitioning", "clients x at once",
            "server", "database", "claims/s", "conflicts/s", "conflict %", "retries",
            "give-ups", "5xx", "p50 ms", "p99 ms", "over capacity", "load", "runs"]  # fmt: skip
    return table(head, rows)


def compute_table(lines: list[Line]) -> str:
    """The old design vs claiming in the scheduler: retries per successful boot."""
    rows = []
    for key, same in group(of_kind(lines, "compute-claims"), claims_key).items():
        claimed = median_of(same, "claimed")
        retries = median_of(same, "retries")
        delay = same[0]["settings"].get("delay", 0.0) if key[1] == "compute" else 0.0
        rows.append([key[0], key[1], key[2], int(delay * 1000), median_of(same, "claims_per_s"),
                     retries / claimed if claimed else 0.0, median_of(same, "give_ups"),
                     median_of(same, "p50_ms"), key[7], load_of(same), len(same)])  # fmt: skip
    head = ["target", "design", "hosts", "claim delay ms", "claims/s", "retries per boot",
            "give-ups", "p50 ms", "database", "load", "runs"]  # fmt: skip
    return table(head, rows)


def workers_table(lines: list[Line]) -> str:
    """Throughput against worker processes per HTTP server."""

    def key(x: Line) -> Key:
        """What makes two workers lines repeats of each other."""
        s = x["settings"]
        return (s["server"], s["workers"], s["query"], s["concurrency"])

    rows = []
    for k, same in group(of_kind(lines, "workers"), key).items():
        rows.append([*k, median_of(same, "throughput_rps"), median_of(same, "p50_ms"),
                     median_of(same, "p99_ms"), db_kind(same[0]), load_of(same),
                     len(same)])  # fmt: skip
    head = ["server", "workers", "query", "c", "req/s", "p50 ms", "p99 ms", "database", "load",
            "runs"]  # fmt: skip
    return table(head, rows)


def populate_table(lines: list[Line]) -> str:
    """Bulk loading speed."""
    rows = []
    for x in of_kind(lines, "populate"):
        r = x["result"]
        rows.append([target_label(x), r["path"], db_kind(x), r["providers"], r["seconds"],
                     r["providers_per_s"], load_of([x])])  # fmt: skip
    head = ["target", "path", "database", "providers", "seconds", "providers/s", "load"]
    return table(head, rows)


def fuzz_table(lines: list[Line]) -> str:
    """Hostile requests: how many, and what they found (all zeros is the goal)."""
    rows = []
    for x in of_kind(lines, "fuzz"):
        r = x["result"]
        rows.append([target_label(x), r["requests"], r["seconds"], r["server_errors"],
                     r["refused_writes"], r["refused_writes_that_changed_state"],
                     r["changes_between_writes"], r["unanswered"]])  # fmt: skip
    head = ["target", "requests", "seconds", "5xx", "refused writes", "of which changed state",
            "changes between writes", "no answer"]  # fmt: skip
    return table(head, rows)


def machine_summary(lines: list[Line]) -> str:
    """Cores, memory, python, versions and the load averages seen."""
    if not lines:
        return "No results."
    m = lines[-1]["machine"]
    loads = [x["machine"]["loadavg"][0] for x in lines]
    versions = ", ".join(f"{k} {v}" for k, v in sorted(lines[-1]["versions"].items()))
    return (
        f"{m['cores']} cores, {m['memory_mb']:,} MB, Python {m['python']} ({m['platform']}); "
        f"{versions}. 1-minute load average during the runs: {min(loads):.1f} to "
        f"{max(loads):.1f} (median {statistics.median(loads):.1f})."
    )


SECTIONS: list[tuple[str, str, Callable[[list[Line]], str]]] = [
    ("populate", "Populate", populate_table),
    ("candidates", "Allocation candidates", candidates_table),
    ("startup", "Cold start and memory", startup_table),
    ("claims", "Claims", claims_table),
    ("fill", "Filling the cloud (placement-bench's run)", report_tables.fill_table),
    ("pull", "Pull against push (berth bench pull)", report_tables.pull_table),
    (
        "hoststate",
        "Host state under scheduling (berth bench hoststate)",
        report_hoststate.hoststate_table,
    ),
    ("register", "Registration storm", report_tables.register_table),
    ("compute-claims", "Claims in the compute host (the old design)", compute_table),
    ("workers", "Worker processes", workers_table),
    ("cost", "Cost per request (berth bench cost)", report_cost.cost_table),
    (
        "scale",
        "Several berth hosts behind HAProxy (berth bench hosts scale)",
        report_cost.scale_table,
    ),
    ("fuzz", "Hostile requests (berth bench fuzz)", fuzz_table),
]


NOTE = (
    "Every row names its conditions: the target, the server and its worker processes, the "
    "database, the clients (processes x requests at once) and the 1-minute load average "
    "during its runs. Runs that changed a berth setting are tabled apart under the settings "
    "they changed; berth's scheduler implements a strategy and a partitioning through its "
    "settings (weighers, partitioning), which those titles leave out and the strategy "
    "column names. The targets table counts only runs with every setting at its default."
)


def render(lines: list[Line], plots: Path | None = None, relative_to: Path | None = None) -> str:
    """The whole report; plots are drawn into ``plots`` when given."""
    parts = ["# berth benchmark report", "", machine_summary(lines), "", NOTE, ""]
    if report_tables.has_targets(lines):
        parts += ["## Issue 12's and 13's targets (berth serve, HTTP)", ""]
        parts += [report_tables.targets_table(lines), ""]
    if any(x["settings"].get("query") == "seed" for x in of_kind(lines, "candidates")):
        parts += ["## The seed's table: filtering in the database vs in Python (ms)", ""]
        parts += [seed.seed_filtering_table(lines), ""]
    if of_kind(lines, "candidates"):
        parts += ["## Filtering in the database, in Python and in memory (p50 ms, c=1)", ""]
        parts += [seed.filtering_table(lines), ""]
    if of_kind(lines, "claims"):
        parts += [
            "## Successful claims/s, 8 schedulers, pack-first",
            "",
            seed.claims_table(lines),
            "",
        ]
    for kind, title, make in SECTIONS:
        if of_kind(lines, kind):
            parts += [f"## {title}", "", make(lines), ""]
    if plots is not None:
        drawn = plots_mod.draw_all(lines, plots)
        if drawn:
            parts += ["## Plots", ""]
        for title, path in drawn:
            shown = _relative(path, relative_to)
            parts += [f"![{title}]({shown})", ""]
    return "\n".join(parts)


def _relative(path: Path, base: Path | None) -> str:
    """``path`` as the report links it: relative to ``base`` when it lies below it."""
    if base is None:
        return str(path)
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)
