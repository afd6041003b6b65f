"""The report's table of ``berth bench hoststate`` runs: one row per backend, interval and
workload (medians over repeats), tabled apart per group of other changed settings."""

from __future__ import annotations

from typing import Any

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
)

# Shown in a column of its own, not in the section's title.
SYNC = ("host_state_sync",)


def _key(x: Line) -> Key:
    """What makes two hoststate lines repeats of each other."""
    s = x["settings"]
    clients = f"{s.get('workers')}x{s.get('concurrency', 1)}"
    reporters = f"{s.get('reporters')} ({s.get('reporter_concurrency')} at once)"
    return (s.get("sync"), s.get("interval"), s.get("hosts"), clients, reporters, server_of(x),
            db_kind(x))  # fmt: skip


def _bound(lines: list[Line], field: str) -> str:
    """The median of a percentile read from buckets, as the bound it is ("-" if some run's
    lay beyond the last bucket or observed nothing)."""
    values = [x["result"].get(field) for x in lines]
    if any(v is None for v in values):
        return "-"
    return f"{median_of(lines, field):g}"


def _database(lines: list[Line], field: str) -> Any:
    """The median of a database rate ("-" where the database kind has none)."""
    values = [x["result"].get("database", {}).get(field) for x in lines]
    known = sorted(float(v) for v in values if v is not None)
    return known[len(known) // 2] if known else "-"


def hoststate_table(lines: list[Line]) -> str:
    """Host-state runs, per group of settings changed besides the backend."""
    return sectioned(of_kind(lines, "hoststate"), _rows, shown=SYNC)


def _rows(lines: list[Line]) -> str:
    """Updates held, placements, staleness, database write load, memory (medians)."""
    rows = []
    for key, same in group(lines, _key).items():
        refused = max(int(x["result"].get("update_refusals", 0)) for x in same)
        rss = max(max(x["result"].get("worker_rss_mb") or [0.0]) for x in same)
        rows.append([
            *key, median_of(same, "updates_offered_per_s"), median_of(same, "updates_per_s"),
            median_of(same, "updates_held_pct"), refused, median_of(same, "placed_per_s"),
            median_of(same, "p50_ms"), median_of(same, "p99_ms"),
            _bound(same, "staleness_p50_s"), _bound(same, "staleness_p99_s"),
            _database(same, "commits_per_s"), _database(same, "rows_written_per_s"),
            _database(same, "state_log_rows_per_s"), rss, load_of(same), len(same),
        ])  # fmt: skip
    head = ["sync", "interval s", "hosts", "schedulers x at once", "reporters", "server",
            "database", "updates offered/s", "accepted/s", "held %", "refused (max)",
            "placed/s", "p50 ms", "p99 ms", "staleness p50 s (at most)",
            "staleness p99 s (at most)", "db commits/s", "db rows written/s",
            "host-state writes logged/s", "max worker RSS MB", "load", "runs"]  # fmt: skip
    return table(head, rows)
