"""``berth host report``: the command line of the host-state reporter (docs/scheduler.md)."""

from __future__ import annotations

import asyncio

import typer

from berth import settings as settings_mod
from berth.logging import configure as configure_logging
from berth.reporter.options import ReportOptions


def report(
    url: str = typer.Option("http://127.0.0.1:8778", help="berth's base URL."),
    token: str = typer.Option(
        "admin", help="X-Auth-Token sent to berth (a service or admin token)."
    ),
    host: str = typer.Option(
        None, help="Real mode: the provider uuid of this machine, whose state to report."
    ),
    simulate: int = typer.Option(
        0, min=0, help="Simulated mode: report synthetic metrics for this many existing hosts."
    ),
    prefix: str = typer.Option(
        None, help="With --simulate: the hosts are the root providers named PREFIX* (by name)."
    ),
    namespace: str = typer.Option("compute", help="The host-state namespace to merge-patch."),
    interval: float = typer.Option(10.0, help="Seconds between two sends of one host."),
    jitter: float = typer.Option(0.1, help="Each interval moves by up to this fraction of it."),
    max_backoff: float = typer.Option(
        60.0, help="Longest wait (seconds) between tries while the server is unreachable."
    ),
    disk_path: str = typer.Option("/", help="Real mode: disk_free_gb is of this path."),
    concurrency: int = typer.Option(
        64, min=1, help="Sends in flight at once (and HTTP connections kept alive)."
    ),
    timeout: float = typer.Option(10.0, help="Seconds one request may take."),
    duration: float = typer.Option(
        0.0, help="Stop after this many seconds (0: run until a signal)."
    ),
    seed: int = typer.Option(None, help="Seed of the synthetic metrics (default: unseeded)."),
) -> None:
    """Report host state (metrics) to berth every interval, until SIGINT or SIGTERM; print
    the stats (sent, failed, rate, p50/p99 latency) as one JSON line at exit."""
    options = ReportOptions(
        url=url, token=token, host=host, simulate=simulate, prefix=prefix, namespace=namespace,
        interval=interval, jitter=jitter, max_backoff=max_backoff, disk_path=disk_path,
        concurrency=concurrency, timeout=timeout, duration=duration, seed=seed,
    )  # fmt: skip
    try:
        options.check()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    configure_logging(settings_mod.load())
    # The runner is imported here, as the agent's: only this command pays for it.
    from berth.reporter.runner import run

    raise typer.Exit(asyncio.run(run(options)))
