"""``berth agent``: the command line of the host agent (docs/pull.md, "The agent")."""

from __future__ import annotations

import asyncio
import logging
import socket

import typer

from berth import settings as settings_mod
from berth.agent.options import AgentOptions, HostTemplate, NatsNames
from berth.logging import configure as configure_logging


def agent(
    url: str = typer.Option("http://127.0.0.1:8778", help="berth's base URL (Placement API)."),
    token: str = typer.Option("admin", help="X-Auth-Token sent to berth (service or admin)."),
    nats_url: str = typer.Option("nats://127.0.0.1:4222", help="NATS server with JetStream."),
    name: str = typer.Option(
        None, help="Agent name, one subject token (default: this machine's hostname)."
    ),
    hosts_from: str = typer.Option(
        None, help="Run the root providers whose name starts with this prefix."
    ),
    create: int = typer.Option(0, min=0, help="Create this many hosts instead, then run them."),
    name_prefix: str = typer.Option("host-", help="Name prefix of the hosts --create makes."),
    vcpu: int = typer.Option(32, min=0, help="VCPU of each created host."),
    memory_mb: int = typer.Option(131072, min=0, help="MEMORY_MB of each created host."),
    disk_gb: int = typer.Option(1000, min=0, help="DISK_GB of each created host."),
    reserved_memory_mb: int = typer.Option(1024, min=0, help="MEMORY_MB reserved on each."),
    cpu_ratio: float = typer.Option(1.0, help="VCPU allocation ratio of created hosts."),
    ram_ratio: float = typer.Option(1.0, help="MEMORY_MB allocation ratio of created hosts."),
    disk_ratio: float = typer.Option(1.0, help="DISK_GB allocation ratio of created hosts."),
    trait: list[str] = typer.Option([], help="Trait of every created host (repeatable)."),
    choice: str = typer.Option("pack", help="pack (fullest that fits), spread or random."),
    seed: int = typer.Option(None, help="Seed of --choice random (default: unseeded)."),
    boot_seconds: float = typer.Option(0.0, min=0, help="Pretend boot time of an instance."),
    heartbeat_seconds: float = typer.Option(10.0, help="Seconds between heartbeats."),
    fetch_batch: int = typer.Option(64, min=1, help="Most messages one fetch asks for."),
    fetch_timeout: float = typer.Option(1.0, help="Seconds one fetch waits for messages."),
    tick_ms: float = typer.Option(5.0, min=0, help="Milliseconds a batch call waits for more."),
    retry_delay: float = typer.Option(1.0, help="Nak delay after a failed call (seconds)."),
    group_delay: float = typer.Option(0.2, help="Nak delay after a server-group refusal."),
    shutdown_grace: float = typer.Option(5.0, help="Seconds in-hand work may take to finish."),
    stats_every: float = typer.Option(0.0, help="Print a summary line every N seconds (0: no)."),
    read_concurrency: int = typer.Option(16, min=1, help="Placement reads in flight at once."),
    boot_log: str = typer.Option(
        None, help="Append 'boot|active <instance> <host>' lines to this file."
    ),
    work_stream: str = typer.Option("BERTH_WORK", help="JetStream stream of the work queues."),
    delete_stream: str = typer.Option("BERTH_DELETE", help="JetStream stream of the deletes."),
    delete_prefix: str = typer.Option("berth.delete", help="Subject prefix of the deletes."),
    queues_bucket: str = typer.Option("berth-queues", help="Key-value bucket of the queues."),
) -> None:
    """Run simulated compute hosts that pull work from berth's queues, until SIGINT or SIGTERM."""
    options = AgentOptions(
        name=name or socket.gethostname().split(".")[0],
        url=url,
        token=token,
        nats_url=nats_url,
        hosts_from=hosts_from,
        create=create,
        name_prefix=name_prefix,
        template=HostTemplate(
            vcpu=vcpu,
            memory_mb=memory_mb,
            disk_gb=disk_gb,
            reserved_memory_mb=reserved_memory_mb,
            cpu_allocation_ratio=cpu_ratio,
            ram_allocation_ratio=ram_ratio,
            disk_allocation_ratio=disk_ratio,
            traits=tuple(trait),
        ),
        choice=choice,
        seed=seed,
        boot_seconds=boot_seconds,
        heartbeat_seconds=heartbeat_seconds,
        fetch_batch=fetch_batch,
        fetch_timeout=fetch_timeout,
        tick_seconds=tick_ms / 1000.0,
        retry_delay=retry_delay,
        group_delay=group_delay,
        shutdown_grace=shutdown_grace,
        stats_every=stats_every,
        read_concurrency=read_concurrency,
        boot_log=boot_log,
        names=NatsNames(work_stream, delete_stream, delete_prefix, queues_bucket),
    )
    try:
        options.check()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    configure_logging(settings_mod.load())
    # httpx logs every request at INFO: thousands of lines for one start of 10,000 hosts.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The runner brings in nats and httpx: only this command pays for importing them.
    from berth.agent.runner import run

    raise typer.Exit(asyncio.run(run(options)))
