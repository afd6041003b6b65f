"""The report's tables for issue 15's measurements: the cost of each request kind
(``berth bench cost``) and several hosts (``berth bench hosts scale``).

As elsewhere in the report each row is a median over repeats with its
conditions; a figure the run could not measure (statements without
pg_stat_statements, database counters on SQLite, server CPU of a URL target)
is shown as "-", never as 0.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from berth.bench.summary import (
    Key,
    Line,
    db_kind,
    group,
    load_of,
    of_kind,
    sectioned,
    server_of,
    table,
    target_label,
)

COST_FIGURES = (
    ("requests_per_s", "ops/s"),
    ("server_cpu_ms_per_request", "server CPU ms"),
    ("database_cpu_ms_per_request", "database CPU ms"),
    ("client_cpu_ms_per_request", "client CPU ms"),
    ("statements_per_request", "statements"),
    ("commits_per_request", "commits"),
    ("rollbacks_per_request", "rollbacks"),
    ("rows_read_per_request", "rows read"),
    ("rows_written_per_request", "rows written"),
    ("database_active_ms_per_request", "database active ms"),
)
SCALE_FIGURES = (
    ("rate", "req/s or claims/s"),
    ("hosts_cpu_ms_per_request", "berth CPU ms (all hosts)"),
    ("front_cpu_ms_per_request", "HAProxy CPU ms"),
    ("database_cpu_ms_per_request", "database CPU ms"),
    ("client_cpu_ms_per_request", "client CPU ms"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
)


def measured(lines: Sequence[Line], field: str) -> float | str:
    """The median of ``field`` over the lines that have it; "-" when none has."""
    values = [float(x["result"][field]) for x in lines if x["result"].get(field) is not None]
    return statistics.median(values) if values else "-"


def _cost_key(x: Line) -> Key:
    """What makes two cost lines repeats of each other."""
    s = x["settings"]
    clients = f"{s.get('clients')}x{s.get('threads')}"
    return (target_label(x), s.get("request"), s.get("hosts"), clients, server_of(x), db_kind(x))


def cost_table(lines: list[Line]) -> str:
    """Per group of changed settings: the cost of one operation of each request kind."""
    return sectioned(of_kind(lines, "cost"), _cost_rows)


def _cost_rows(lines: list[Line]) -> str:
    """Median figures per operation, with the conditions."""
    rows = []
    for key, same in group(lines, _cost_key).items():
        figures = [measured(same, field) for field, _ in COST_FIGURES]
        errors = max(int(x["result"].get("errors", 0)) for x in same)
        rows.append([*key, *figures, errors, load_of(same), len(same)])
    head = ["target", "request", "hosts", "clients x threads", "server", "database",
            *(label for _, label in COST_FIGURES), "errors (max)", "load",
            "runs"]  # fmt: skip
    return table(head, rows)


def _scale_key(x: Line) -> Key:
    """What makes two scale lines repeats of each other."""
    s = x["settings"]
    return (s.get("workload"), s.get("berth_hosts"), s.get("workers_per_host"), s.get("hosts"),
            s.get("clients_label", ""), db_kind(x))  # fmt: skip


def scale_table(lines: list[Line]) -> str:
    """Several berth hosts behind HAProxy: throughput and CPU per request per host count."""
    return sectioned(of_kind(lines, "scale"), _scale_rows)


def _scale_rows(lines: list[Line]) -> str:
    """Median rate and CPU per request, and the rate per berth host."""
    rows = []
    for key, same in group(lines, _scale_key).items():
        figures = [measured(same, field) for field, _ in SCALE_FIGURES]
        errors = max(int(x["result"].get("errors", 0)) for x in same)
        over = max(int(x["result"].get("over_capacity", 0)) for x in same)
        rows.append([*key, *figures, errors, over, load_of(same), len(same)])
    head = ["workload", "berth hosts", "workers per host", "cloud hosts", "clients", "database",
            *(label for _, label in SCALE_FIGURES), "errors (max)", "over capacity", "load",
            "runs"]  # fmt: skip
    return table(head, rows)
