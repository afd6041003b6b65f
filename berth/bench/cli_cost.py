"""``berth bench cost``: what each kind of request costs the server and the database.

For every target (a ``berth serve`` the lab starts with default settings, the
reference, a URL): the cloud is repopulated (placement-bench's hosts), the
target's idle background is measured, then each request kind of
:mod:`berth.bench.cost_requests` runs in turn from client processes over
HTTP (:mod:`berth.bench.cost`), and each writes one result line (kind
``cost``) with its figures per operation and the target's conditions.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from berth.bench import cost, dbstats, reference
from berth.bench.cli_options import (
    AGAINST,
    DATABASE,
    OUT,
    SERVER_WORKERS,
    SETTINGS,
    TARGET,
    as_env,
    console,
    emit,
    overrides,
    stop_on_sigterm,
)
from berth.bench.cloud import from_profile
from berth.bench.cost_requests import REQUESTS
from berth.bench.populate import populate_target
from berth.bench.progress import bar
from berth.bench.summary import settings_title
from berth.bench.targets import Target, open_target

# The figures of the console table: (result field, column).
COLUMNS = (
    ("requests_per_s", "req/s"),
    ("server_cpu_ms_per_request", "server CPU ms"),
    ("database_cpu_ms_per_request", "DB CPU ms"),
    ("client_cpu_ms_per_request", "client CPU ms"),
    ("statements_per_request", "statements"),
    ("commits_per_request", "commits"),
    ("rollbacks_per_request", "rollbacks"),
    ("rows_read_per_request", "rows read"),
    ("rows_written_per_request", "rows written"),
    ("database_active_ms_per_request", "DB active ms"),
)


def kinds_of(text: str) -> list[str]:
    """The request kinds named (comma-separated), in the order a run makes them."""
    asked = {k.strip() for k in text.split(",") if k.strip()}
    unknown = sorted(asked - set(REQUESTS))
    if unknown:
        raise typer.BadParameter(f"unknown request kinds {unknown}; choose from {list(REQUESTS)}")
    if "delete" in asked and "claim" not in asked:
        raise typer.BadParameter("delete removes what claim made: name claim too")
    return [k for k in REQUESTS if k in asked]


def server_parts(target: Target) -> dict[str, list[int]]:
    """The processes whose CPU is the server's: a berth the lab started, or the reference."""
    if target.pid:
        return {"server": [target.pid]}
    state = reference.current() if target.name == "reference" else None
    return {"server": [state.pid]} if state else {}


def measure(target: Target, opts: dict[str, Any], out: str) -> list[tuple[str, dict[str, Any]]]:
    """Repopulate, measure the idle background, then every request kind; (title, result)."""
    hosts = opts["hosts"]
    populate_target(target, from_profile("placement-bench", hosts), show=False)
    changed = target.conditions()["settings"]
    counters = dbstats.counters_for(target.database_url)
    in_server = target.conditions()["db"] == "sqlite"
    meter = cost.Meter(server_parts(target), counters, database_cpu=not in_server)
    rows: list[tuple[str, dict[str, Any]]] = []
    consumers: tuple[str, ...] = ()
    try:
        with console.status(f"{target.name}: the idle background ({opts['idle']:g} s)"):
            meter.baseline(opts["idle"])
        for kind in opts["kinds"]:
            if REQUESTS[kind].berth_only and not target.is_berth:
                console.print(f"{target.name}: no {kind} (berth's scheduler API)")
                continue
            work = cost.Workload(
                target.url, kind, hosts, opts["clients"], opts["threads"], opts["requests"],
                opts["seconds"], opts["limit"], opts["warmup"], consumers,
            )  # fmt: skip
            title = f"cost {target.name} {kind} C={work.clients}x{work.threads}"
            title = f"{title} {settings_title(changed)}".strip()
            with bar(title, opts["requests"]) as advance:
                result = cost.run(work, meter, advance)
            made = result.pop("consumers")
            consumers = tuple(made) if kind == "claim" else consumers
            result.update(title=title, database_counters_from=meter.counters.name,
                          statements_counted="statements_per_request" in result)  # fmt: skip
            settings = {"request": kind, "hosts": hosts, "clients": work.clients,
                        "threads": work.threads, "requests": work.requests,
                        "seconds": work.seconds, "limit": work.limit, "warmup": work.warmup,
                        "idle_s": opts["idle"], "settle_s": meter.settle,
                        "server_workers": target.server_workers}  # fmt: skip
            emit(out, "cost", target, settings, result)
            rows.append((title, result))
    finally:
        meter.close()
    return rows


def cost_command(
    target: str = TARGET,
    against: list[str] = AGAINST,
    database_url: str = DATABASE,
    kinds: str = typer.Option(
        ",".join(REQUESTS), help=f"Request kinds, comma-separated, from {list(REQUESTS)}."
    ),
    hosts: int = typer.Option(10000, help="Repopulate with this many placement-bench hosts."),
    clients: int = typer.Option(4, help="Client processes."),
    threads: int = typer.Option(2, help="Threads per client process (a connection each)."),
    requests: int = typer.Option(2000, help="Operations per request kind, in all."),
    seconds: float = typer.Option(30.0, help="At most this long per request kind."),
    limit: int = typer.Option(50, help="candidates: limit= on GET /allocation_candidates."),
    warmup: int = typer.Option(3, help="Operations per thread before the clock starts."),
    idle: float = typer.Option(
        20.0, help="Seconds of the idle target measured first; its background is subtracted."
    ),
    server_workers: int = SERVER_WORKERS,
    settings: list[str] = SETTINGS,
    out: str = OUT,
) -> None:
    """CPU (server, database, client) and database work per request, per request kind."""
    if hosts < 1:
        raise typer.BadParameter("the lab's cloud needs a host at least", param_hint="--hosts")
    opts = {"kinds": kinds_of(kinds), "hosts": hosts, "clients": clients, "threads": threads,
            "requests": requests, "seconds": seconds, "limit": limit, "warmup": warmup,
            "idle": idle}  # fmt: skip
    rows: list[tuple[str, dict[str, Any]]] = []
    if "inproc" in [target, *against]:
        raise typer.BadParameter("cost goes over HTTP: serve, reference or a URL")
    with stop_on_sigterm():
        for name in [target, *against]:
            for extra in overrides(settings) if name == "serve" else [{}]:
                with open_target(name, database_url, server_workers, env=as_env(extra)) as tg:
                    rows += measure(tg, opts, out)
    console.print(numbered(rows), markup=False, highlight=False)
    console.print(cost_table(rows))


def cost_table(rows: list[tuple[str, dict[str, Any]]]) -> Table:
    """One row per target and request kind, numbered as :func:`numbered` lists them."""
    table = Table("#", *(label for _, label in COLUMNS), "errors", title="cost per operation")
    for n, (_, r) in enumerate(rows, 1):
        cells = [_cell(r.get(field)) for field, _ in COLUMNS]
        table.add_row(str(n), *cells, str(r["errors"]))
    return table


def numbered(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """The runs' titles, numbered as the table's rows."""
    return "\n".join(f"{n:>3}  {title}" for n, (title, _) in enumerate(rows, 1))


def _cell(value: Any) -> str:
    """A figure, or "-" where the run could not measure it."""
    if value is None:
        return "-"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3g}"


def register(app: typer.Typer) -> None:
    """Add ``cost`` to ``app``."""
    app.command("cost")(cost_command)
