"""``berth bench ...``: the benchmark lab's commands (populate, candidates, reference, report).

The claims-side commands (claims, compute-claims, workers) are in
:mod:`berth.bench.cli_claims`, ``pull`` in :mod:`berth.bench.cli_pull`,
``hoststate`` in :mod:`berth.bench.cli_hoststate`, registered on the same app.  Every
measurement is printed and appended as a JSON line to ``--out``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from berth.bench import candidates as cand
from berth.bench import (
    cli_claims,
    cli_cost,
    cli_hosts,
    cli_hoststate,
    cli_pull,
    cloud,
    cloud_api,
    cloud_db,
    fuzz,
    plots,
    procfs,
    records,
    reference,
    report,
)
from berth.bench import register as storm
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
)
from berth.bench.populate import cloud_size, populate_target
from berth.bench.progress import bar
from berth.bench.summary import settings_title
from berth.bench.targets import Target, berth_database, open_target

app = typer.Typer(help="The benchmark lab: measure berth and any Placement.", no_args_is_help=True)
reference_app = typer.Typer(help="The real OpenStack Placement, side by side.")
app.add_typer(reference_app, name="reference")
app.add_typer(cli_hosts.app, name="hosts")
cli_claims.register(app)
cli_cost.register(app)
cli_pull.register(app)
cli_hoststate.register(app)
fuzz.register(app)
DEFAULT_PLOTS = Path("docs/bench")


@app.command()
def populate(
    target: str = typer.Option(
        "inproc", help="inproc (berth's database, written directly), reference or a URL."
    ),
    database_url: str = DATABASE,
    profile: str = typer.Option("placement-bench", help="placement-bench or candidates."),
    hosts: int = typer.Option(
        0, "--hosts", "-n", help="Exactly this many hosts (0: rows x racks x hosts-per-rack)."
    ),
    rows: int = typer.Option(None, help="Rows (default 1)."),
    racks: int = typer.Option(None, help="Racks per row (default 5)."),
    hosts_per_rack: int = typer.Option(None, help="Hosts per rack (default 20)."),
    vcpus: int = typer.Option(None, help="VCPU per host."),
    vcpu_ratio: float = typer.Option(None, help="VCPU allocation ratio."),
    memory_mb: int = typer.Option(None, help="MEMORY_MB per host."),
    memory_ratio: float = typer.Option(None, help="MEMORY_MB allocation ratio."),
    disk_gb: int = typer.Option(None, help="DISK_GB per host (0: none)."),
    gpu_fraction: float = typer.Option(None, help="Share of hosts with CUSTOM_GPU."),
    aggregates: int = typer.Option(None, help="Aggregates the hosts are spread over."),
    numa: int = typer.Option(None, help="NUMA children per host (0: none)."),
    shared_storage_gb: int = typer.Option(None, help="One sharing DISK_GB pool per rack."),
    concurrency: int = typer.Option(8, help="Concurrent API calls (URL targets)."),
    out: str = OUT,
) -> None:
    """Replace the target's cloud with a rows x racks x hosts topology."""
    topo = cloud.from_profile(
        profile, hosts, rows=rows, racks=racks, hosts_per_rack=hosts_per_rack, vcpus=vcpus,
        vcpu_ratio=vcpu_ratio, memory_mb=memory_mb, memory_ratio=memory_ratio, disk_gb=disk_gb,
        gpu_fraction=gpu_fraction, aggregates=aggregates, numa_nodes=numa,
        shared_storage_gb=shared_storage_gb,
    )  # fmt: skip
    with open_target(target, database_url) as tg:
        result = populate_target(tg, topo, concurrency)
        emit(out, "populate", tg, {"topology": topo.as_dict(), "profile": profile}, result)
    console.print(
        f"{result['providers']} providers in {result['seconds']:.1f}s "
        f"({result['providers_per_s']:.0f}/s, {result['path']})"
    )


def _startup(target: Target, query: str) -> dict[str, Any]:
    """Cold start of a server the lab started: spawn to first candidates answer, RSS."""
    took, status, _ = cand.timed_get(target.transport(), cand.QUERIES.get(query, query))
    return {
        "first_answer_s": round(time.monotonic() - target.started, 3),
        "first_request_ms": round(took * 1000, 1),
        "status": status,
        "worker_rss_mb": [round(x, 1) for x in procfs.worker_rss_mb(target.pid)],
    }


Rows = dict[tuple[str, int], dict[str, Any]]


def measure_candidates(target: Target, opts: dict[str, Any], out: str) -> Rows:
    """Every query at every concurrency against ``target``; results by (query, c)."""
    hosts, providers = cloud_size(target)
    opts = {**opts, "providers": providers}
    if target.pid:
        startup = _startup(target, opts["queries"][0])
        emit(out, "startup", target, {**opts, "hosts": hosts}, startup)
        console.print(f"{target.name}: first answer {startup['first_answer_s']}s after spawn")
    transport = target.transport()
    found: Rows = {}
    for query in opts["queries"]:
        for c in cand.concurrency_steps(opts["concurrency"]):
            with bar(f"{target.name} {query} c={c}", opts["requests"]) as advance:
                cell = cand.run_cell(
                    transport, query, c, opts["requests"], opts["seconds"], advance
                )
            settings = {**opts, "query": query, "concurrency": c, "hosts": hosts}
            settings["query_string"] = cand.QUERIES.get(query, query)
            result = cell.result()
            if target.pid:
                result["worker_rss_mb"] = [round(x, 1) for x in procfs.worker_rss_mb(target.pid)]
            emit(out, "candidates", target, settings, result)
            found[(query, c)] = result
    return found


def comparison(
    names: list[str], runs: list[Rows], metric: str, label: str, title: str = ""
) -> Table:
    """One row per (query, concurrency): the metric per target and its ratio to the first."""
    table = Table(
        label, "c", "found", *names, *(f"{n} / {names[0]}" for n in names[1:]), title=title or None
    )
    for key in runs[0]:
        values = [run.get(key, {}).get(metric, 0.0) for run in runs]
        found = "/".join(str(run.get(key, {}).get("candidates", "-")) for run in runs)
        ratios = [f"{v / values[0]:.3g}x" if values[0] else "-" for v in values[1:]]
        table.add_row(key[0], str(key[1]), found, *(f"{v:.2f}" for v in values), *ratios)
    return table


@app.command()
def candidates(
    target: str = TARGET,
    against: list[str] = AGAINST,
    database_url: str = DATABASE,
    queries: str = typer.Option(
        ",".join(cand.DEFAULT_MIX),
        help=f"Names from {list(cand.QUERIES)} or raw query strings, comma-separated.",
    ),
    concurrency: int = typer.Option(1, help="Highest concurrency (1, 2, 4, ... up to it)."),
    requests: int = typer.Option(200, help="Requests per query and concurrency."),
    seconds: float = typer.Option(20.0, help="At most this long per query and concurrency."),
    server_workers: int = SERVER_WORKERS,
    server: str = typer.Option("granian", help="granian or gunicorn (serve)."),
    filter_: str = typer.Option(
        "",
        "--filter",
        help="berth: memory (its index), sql (in the database) or python (every host read "
        "and filtered in Python per request); default: the server's setting.",
    ),
    settings: list[str] = SETTINGS,
    out: str = OUT,
) -> None:
    """Latency percentiles and throughput of GET /allocation_candidates."""
    opts = {
        "queries": [q for q in queries.split(",") if q] if "&" not in queries else [queries],
        "concurrency": concurrency, "requests": requests, "seconds": seconds,
        "server_workers": server_workers, "server": server,
    }  # fmt: skip
    for extra in overrides(settings):
        chosen = {**extra, **({"candidates_filter": filter_} if filter_ else {})}
        names, runs, titles = [], [], []
        for name in [target, *against]:
            with open_target(name, database_url, server_workers, server, as_env(chosen)) as tg:
                changed = tg.conditions()["settings"]
                found = changed.get("candidates_filter", "memory")
                run_opts = {**opts, "filter": found if tg.is_berth else ""}
                runs.append(measure_candidates(tg, run_opts, out))
                names.append(tg.name)
                titles.append(f"{tg.name} {settings_title(changed)}".strip())
        title = escape("candidates " + ", ".join(titles))
        console.print(comparison(names, runs, "p50_ms", "p50 ms", title))
        console.print(comparison(names, runs, "throughput_rps", "req/s", title))


@app.command("register")
def register_command(
    target: str = TARGET,
    database_url: str = DATABASE,
    hosts: int = typer.Option(1000, "--hosts", "-n", help="Hosts that register."),
    clients: int = typer.Option(64, help="Concurrent clients (processes x threads)."),
    processes: int = typer.Option(2, help="Client processes the clients are spread over."),
    server_workers: int = SERVER_WORKERS,
    repeat: int = typer.Option(1, help="Runs (the cloud emptied before each)."),
    settings: list[str] = SETTINGS,
    out: str = OUT,
) -> None:
    """The registration storm: hosts registering through the API as nova-compute does."""
    if clients % processes:
        raise typer.BadParameter(f"{clients} clients do not split over {processes} processes")
    if target == "inproc":
        raise typer.BadParameter("the storm goes over HTTP: serve, reference or a URL")
    rows: list[tuple[str, dict[str, Any]]] = []
    for extra in overrides(settings) if target == "serve" else [{}]:
        with open_target(target, database_url, server_workers, env=as_env(extra)) as tg:
            changed = tg.conditions()["settings"]
            title = f"register {tg.name} C={processes}x{clients // processes} "
            title = (title + settings_title(changed)).strip()
            for _ in range(repeat):
                rows.append((title, _storm(tg, hosts, processes, clients, title, out)))
    console.print(_storm_table(rows))


def _storm(
    tg: Target, hosts: int, processes: int, clients: int, title: str, out: str
) -> dict[str, Any]:
    """Empty the target's cloud, run the storm, count what registered, write the line."""
    if tg.database_url:
        cloud_db.into_database(tg.database_url, [], tg.schema)
    else:
        cloud_api.clear_through_api(tg.transport())
    plan = storm.Storm(tg.url, hosts, processes, clients // processes)
    database_cpu = procfs.database_cpu_s()
    server_cpu = procfs.tree_cpu_s(tg.pid) if tg.pid else 0.0
    with bar(title, hosts) as advance:
        result = storm.run(plan, advance)
    registered = max(1, result["registered"])
    # CPU per provider (four writes): this machine's database servers (other users' work
    # included) and, for a berth the lab serves, the server's processes.
    used = procfs.database_cpu_s() - database_cpu
    result["database_cpu_ms_per_provider"] = round(used * 1000 / registered, 3)
    if tg.pid:
        used = procfs.tree_cpu_s(tg.pid) - server_cpu
        result["server_cpu_ms_per_provider"] = round(used * 1000 / registered, 3)
    result["providers_found"] = cloud_size(tg)[1]
    result["title"] = title
    settings = {"hosts": hosts, "clients": clients, "processes": processes,
                "threads": clients // processes, "traits": list(storm.TRAITS)}  # fmt: skip
    emit(out, "register", tg, settings, result)
    return result


def _storm_table(rows: list[tuple[str, dict[str, Any]]]) -> Table:
    """Storm runs: rates, errors, and p50/p99 ms per call kind."""
    kinds = [f"{k} p50/p99" for k in storm.KINDS]
    table = Table("run", "providers/s", "writes/s", "errors", *kinds, title="register")
    for title, r in rows:
        latencies = [f"{r[f'{k}_p50_ms']:.0f}/{r[f'{k}_p99_ms']:.0f}" for k in storm.KINDS]
        table.add_row(escape(title), f"{r['providers_per_s']:.1f}", f"{r['writes_per_s']:.1f}",
                      str(r["errors"]), *latencies)  # fmt: skip
    return table


@reference_app.command("start")
def reference_start(
    database_url: str = typer.Option(
        "",
        help="berth's database; the reference gets its own one on the same server.",
    ),
    port: int = typer.Option(8792, help="Port on 127.0.0.1."),
    workers: int = typer.Option(2, help="gunicorn worker processes."),
) -> None:
    """Install (first time) and start OpenStack Placement in its own venv, noauth2."""
    url = berth_database(database_url)
    with console.status("starting the reference (the first start installs it)..."):
        state = reference.start(url, port, workers)
    console.print(f"reference Placement {reference.VERSION} on {state.url} (pid {state.pid})")
    console.print(f"its database: {state.database_url}")


@reference_app.command("stop")
def reference_stop() -> None:
    """Stop the reference started by ``berth bench reference start``."""
    console.print("stopped" if reference.stop() else "not running")


@reference_app.command("status")
def reference_status() -> None:
    """Whether the reference runs, where, on which database."""
    state = reference.current()
    console.print(f"running: {state}" if state else "not running")


@app.command("report")
def report_command(
    inputs: list[Path] = typer.Argument(..., help="JSON lines files (from --out)."),
    output: Path = typer.Option(Path("docs/bench/report.md"), help="Markdown file to write."),
    plots_dir: Path | None = typer.Option(
        None,
        "--plots",
        help=f"Directory for the PNG plots (default {DEFAULT_PLOTS}; they need matplotlib: "
        "pip install 'berth[bench]').",
    ),
    since: str | None = typer.Option(
        None,
        help="Only lines measured at or after this UTC time (ISO 8601, e.g. 2026-12-02T05:09): "
        "one run's lines out of a file that holds several runs.",
    ),
    until: str | None = typer.Option(
        None,
        help="Only lines measured before this UTC time (ISO 8601): with --since, one run's "
        "lines when later runs follow it in the file.",
    ),
) -> None:
    """Turn result lines into a Markdown report with tables and PNG plots."""
    chosen = _plots_directory(plots_dir)
    lines = records.load(inputs, since=_when(since, "'--since'"), until=_when(until, "'--until'"))
    text = report.render(lines, chosen, relative_to=output.parent)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    console.print(f"{len(lines)} results -> {output}" + (f" (plots in {chosen})" if chosen else ""))


def _when(text: str | None, option: str) -> datetime | None:
    """``--since`` / ``--until`` as an aware UTC time (a time without a zone is UTC)."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {text!r}", param_hint=option) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _plots_directory(asked: Path | None) -> Path | None:
    """Where to draw: ``--plots``, else the default; None (tables only) without matplotlib."""
    if plots.available():
        return asked or DEFAULT_PLOTS
    if asked is not None:
        raise typer.BadParameter(plots.MISSING, param_hint="'--plots'")
    console.print(f"no plots: {plots.MISSING}", markup=False, soft_wrap=True)
    return None
