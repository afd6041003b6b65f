"""``berth bench hosts up|down|cut|heal|kill|scale`` (also ``python -m berth.bench.multihost ...``).

``up`` runs in the foreground until Ctrl-C or SIGTERM, then stops what it
started; the other commands act on a run by its name (``bmh<slot>``, printed
by ``up``) from another shell.  ``scale`` measures 1, 2, 4 ... hosts
(:mod:`berth.bench.scale`) and stops them on Ctrl-C or SIGTERM too.  Needs
root, iproute2 and HAProxy.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator

import typer

from berth.bench import multihost, netns, runs, scale
from berth.bench.cli_options import OUT, console, stop_on_sigterm

app = typer.Typer(
    help="Several berth hosts on this machine, each in a network namespace (root only).",
    no_args_is_help=True,
)


@contextlib.contextmanager
def _galera_urls(database: str) -> Iterator[list[str]]:
    from berth.bench import galera

    cluster = galera.start_cluster()
    try:
        cluster.create_database(database)
        yield cluster.urls(database, sync_wait=True)
    finally:
        cluster.stop()


@app.command()
def up(
    hosts: int = typer.Option(3, "--hosts", "-n", help="berth hosts to start."),
    database_url: list[str] = typer.Option(
        [], help="The database as this shell reaches it (repeat: host i on URL i mod count)."
    ),
    galera: bool = typer.Option(
        False, help="Start a 3-node Galera cluster (scripts/galera) and put host i on node i mod 3."
    ),
    workers: int = typer.Option(1, help="BERTH_WORKERS of each host."),
    front: bool = typer.Option(True, help="HAProxy in front (off: clients round robin)."),
    setting: list[str] = typer.Option(
        [], "--set", help="NAME=VALUE, a BERTH_ setting of every host (repeatable)."
    ),
) -> None:
    """Start the hosts (and the front), print their URLs, stop everything on Ctrl-C."""
    problem = multihost.unavailable()
    if problem:
        raise typer.BadParameter(problem)
    if not database_url and not galera:
        raise typer.BadParameter("give --database-url (PostgreSQL or MariaDB) or --galera")
    env = {}
    for pair in setting:
        name, _, value = pair.partition("=")
        env[f"BERTH_{name.strip().upper().removeprefix('BERTH_')}"] = value
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    databases = _galera_urls("berth") if galera else contextlib.nullcontext(database_url)
    with databases as urls, multihost.deploy(urls, hosts, workers, env, front) as run:
        console.print(f"run {run.plan.run}: {len(run.hosts)} hosts, files in {run.directory}")
        for host in run.hosts:
            console.print(f"  host {host.index}: {host.url}  (database {host.database_url})")
        if run.front_url:
            console.print(f"  front: {run.front_url}")
        console.print("Ctrl-C or SIGTERM stops everything.")
        with contextlib.suppress(KeyboardInterrupt):
            while not stopping.wait(1.0):
                pass


@app.command()
def down(
    run: str = typer.Option(
        "", help="This run only, whoever owns it (default: runs whose owner is gone)."
    ),
    everything: bool = typer.Option(False, "--all", help="Every run, even those still owned."),
) -> None:
    """Stop what runs left behind: processes, namespaces, links, files (by name prefix)."""
    if run:
        runs.teardown(run)
        gone = [run]
    else:
        gone = runs.teardown_stale(everything=everything)
    console.print(f"removed: {', '.join(gone) if gone else 'nothing'}")


def _plan(run: str) -> netns.Plan:
    if not run.startswith(netns.PREFIX) or not run[len(netns.PREFIX) :].isdigit():
        raise typer.BadParameter(f"a run is named {netns.PREFIX}<slot>, not {run!r}")
    return netns.Plan(int(run[len(netns.PREFIX) :]))


@app.command()
def cut(
    run: str = typer.Argument(..., help="The run (bmh<slot>)."),
    host: int = typer.Argument(..., help="The host's index."),
    seconds: float = typer.Option(
        0, help="Give the link back after this long (e.g. 60); 0: leave it down (see heal)."
    ),
) -> None:
    """Cut a host off from its database: its db link down inside its namespace."""
    plan = _plan(run)
    netns.set_db_link(plan, host, up=False)
    console.print(f"{plan.namespace(host)}: database link down")
    if seconds > 0:
        try:
            time.sleep(seconds)
        finally:
            netns.set_db_link(plan, host, up=True)
            console.print(f"{plan.namespace(host)}: database link up after {seconds:g} s")


@app.command()
def heal(run: str = typer.Argument(...), host: int = typer.Argument(...)) -> None:
    """Give a host its database link back."""
    plan = _plan(run)
    netns.set_db_link(plan, host, up=True)
    console.print(f"{plan.namespace(host)}: database link up")


@app.command()
def kill(run: str = typer.Argument(...), host: int = typer.Argument(...)) -> None:
    """SIGKILL every process of a host at once (a crash)."""
    plan = _plan(run)
    killed = netns.kill_all_in(plan.namespace(host))
    console.print(f"{plan.namespace(host)}: {killed} processes killed")


@app.command("scale")
def scale_command(
    database_url: str = typer.Option(..., help="One PostgreSQL (or MariaDB) for every host."),
    hosts: str = typer.Option("1,2,4", "--hosts", help="berth host counts, comma-separated."),
    workers: int = typer.Option(1, help="BERTH_WORKERS of each host."),
    cloud_hosts: int = typer.Option(10000, help="placement-bench hosts in the cloud."),
    seconds: float = typer.Option(20.0, help="Each workload, each host count."),
    clients: int = typer.Option(4, help="Reads: client processes."),
    threads: int = typer.Option(2, help="Reads: threads per client process."),
    claim_workers: int = typer.Option(8, help="Claims: client processes."),
    mode: str = typer.Option(
        "placement",
        help="Claims: placement (GET /allocation_candidates + PUT /allocations) or scheduler "
        "(POST /scheduler/select_destinations, the hosts' default weighers).",
    ),
    strategy: str = typer.Option("pack", help="Claims, placement mode: pack, spread, random."),
    partitioning: str = typer.Option("none", help="Claims, placement mode: none, modulo..."),
    idle: float = typer.Option(10.0, help="Seconds of the idle hosts measured first."),
    out: str = OUT,
) -> None:
    """Read throughput and claims/s with 1, 2, 4 ... hosts behind HAProxy, CPU per request."""
    problem = multihost.unavailable()
    if problem:
        raise typer.BadParameter(problem)
    try:
        counts = tuple(int(n) for n in hosts.split(",") if n.strip())
    except ValueError:
        raise typer.BadParameter(f"not host counts: {hosts!r}", param_hint="--hosts") from None
    if not counts or min(counts) < 1 or max(counts) > netns.MAX_HOSTS:
        raise typer.BadParameter(f"1 to {netns.MAX_HOSTS} hosts", param_hint="--hosts")
    if mode not in ("placement", "scheduler"):
        raise typer.BadParameter("placement or scheduler", param_hint="--mode")
    plan = scale.ScalePlan(
        database_url, counts, workers, cloud_hosts, seconds, clients, threads, claim_workers,
        mode, strategy, partitioning, idle=idle,
    )  # fmt: skip
    with stop_on_sigterm():
        found = scale.run_all(plan, out)
    console.print(scale.table(found))
