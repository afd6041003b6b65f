"""``berth agent``'s life: find or create the hosts, connect, run until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable
from typing import TypeVar

import nats.errors
import structlog

from berth.agent.agent import Agent, connect_nats
from berth.agent.client import BerthClient, Refused, Unavailable
from berth.agent.fleet import Fleet
from berth.agent.hosts import create_hosts, read_hosts
from berth.agent.model import Host
from berth.agent.options import AgentOptions

log = structlog.get_logger("berth.agent")
T = TypeVar("T")


class Stopped(Exception):
    """A stop signal came before the step finished."""


async def until_stopped(step: Awaitable[T], stop: asyncio.Event) -> T:
    """``step``'s result, or Stopped (and the step cancelled) if ``stop`` is set first."""
    task = asyncio.ensure_future(step)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise Stopped
    return task.result()


async def load_fleet_hosts(client: BerthClient, options: AgentOptions) -> list[Host]:
    """The hosts ``--hosts-from`` names or ``--create`` makes, read from Placement."""
    if options.create > 0:
        return await create_hosts(
            client, options.create, options.name_prefix, options.template, options.read_concurrency
        )
    providers = await client.root_providers(options.hosts_from or "")
    return await read_hosts(client, providers, options.read_concurrency)


async def run(options: AgentOptions) -> int:
    """Run the agent until a stop signal; the exit status (0 clean, 1 could not start)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = BerthClient(options.url, options.token)
    try:
        return await _run(options, client, stop)
    except Stopped:
        log.info("agent.stopped_while_starting")
        return 0
    except (Unavailable, Refused, OSError, nats.errors.Error) as exc:
        log.error("agent.cannot_start", error=str(exc))
        return 1
    finally:
        await client.close()


async def _run(options: AgentOptions, client: BerthClient, stop: asyncio.Event) -> int:
    hosts = await until_stopped(load_fleet_hosts(client, options), stop)
    if not hosts:
        log.error("agent.no_hosts", hosts_from=options.hosts_from)
        return 1
    log.info("agent.hosts", agent=options.name, hosts=len(hosts))
    fleet = Fleet(hosts, options.choice, options.seed)
    nc = await until_stopped(connect_nats(options.nats_url, options.name), stop)
    agent = Agent(options, client, fleet, nc)
    try:
        agent.start()
        await stop.wait()
        log.info("agent.stopping", agent=options.name)
        await agent.shutdown()
    finally:
        await nc.close()
    log.info("agent.stopped", agent=options.name)
    return 0
