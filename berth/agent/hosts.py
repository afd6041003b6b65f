"""The agent's hosts from Placement: found by name prefix or created, read at start, re-read.

Placement has no call that returns many providers' inventories or usages,
so each host costs three GETs (inventories, traits, usages), run
``concurrency`` at a time over the client's connection pool; the provider
list itself is one call.  Hosts the agent creates are not read back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import structlog

from berth.agent.client import BerthClient, PullApi, Refused, Unavailable
from berth.agent.fleet import Fleet
from berth.agent.model import Host, Inventory
from berth.agent.options import HostTemplate
from berth.agent.stats import Stats

log = structlog.get_logger("berth.agent")
T = TypeVar("T")
R = TypeVar("R")


async def bounded(
    items: Sequence[T], work: Callable[[T], Awaitable[R]], concurrency: int
) -> list[R]:
    """``work`` on every item, at most ``concurrency`` at once; the results in order."""
    slots = asyncio.Semaphore(max(1, concurrency))

    async def one(item: T) -> R:
        async with slots:
            return await work(item)

    return list(await asyncio.gather(*(one(item) for item in items)))


async def create_hosts(
    client: BerthClient, count: int, prefix: str, template: HostTemplate, concurrency: int
) -> list[Host]:
    """Hosts ``<prefix>00000`` .. ``<prefix><count - 1>``: made with the template, or read.

    Those that exist already (a run before this one) are read from Placement
    as they are; the new ones are known without reading them back (the
    template's inventory and traits, no usage).
    """
    await client.ensure_traits(template.traits)
    existing = {name: uuid for uuid, name in await client.root_providers(prefix)}
    names = [f"{prefix}{n:05d}" for n in range(count)]
    inventories = template.inventories()

    async def make(name: str) -> Host:
        uuid = await client.create_host(name, inventories, template.traits)
        known = {rc: Inventory.from_json(inv) for rc, inv in inventories.items()}
        return Host(0, uuid, name, known, frozenset(template.traits), {})

    made = await bounded([n for n in names if n not in existing], make, concurrency)
    old = [(existing[n], n) for n in names if n in existing]
    hosts = {h.name: h for h in [*made, *await read_hosts(client, old, concurrency)]}
    return _indexed([hosts[n] for n in names])


def _indexed(hosts: list[Host]) -> list[Host]:
    """Number the hosts in order (their fleet index)."""
    for index, host in enumerate(hosts):
        host.index = index
    return hosts


async def read_hosts(
    client: BerthClient, providers: Sequence[tuple[str, str]], concurrency: int
) -> list[Host]:
    """Each provider's inventory, traits and usage, as the fleet's hosts."""

    async def read(pair: tuple[str, str]) -> Host:
        uuid, name = pair
        inventories, traits, used = await client.read_host(uuid)
        return Host(
            index=0, uuid=uuid, name=name, inventories=inventories, traits=traits, used=used
        )

    return _indexed(await bounded(providers, read, concurrency))


class UsageReader:
    """Re-reads hosts' usage from Placement when asked (after ``full``): one task for all."""

    def __init__(self, client: PullApi, fleet: Fleet, stats: Stats, concurrency: int) -> None:
        self.client = client
        self.fleet = fleet
        self.stats = stats
        self.concurrency = concurrency
        self.wanted: dict[int, Host] = {}
        self.wake = asyncio.Event()

    def request(self, host: Host) -> None:
        """Ask for ``host``'s usage to be read again (asking twice before the read: once)."""
        self.wanted[host.index] = host
        self.wake.set()

    async def run(self) -> None:
        """Forever: wait to be asked, read the asked hosts' usage, tell the fleet."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            hosts, self.wanted = list(self.wanted.values()), {}
            await bounded(hosts, self._read, self.concurrency)

    async def _read(self, host: Host) -> None:
        try:
            used = await self.client.usages(host.uuid)
        except Unavailable as exc:
            log.warning("agent.usage_read_failed", host=host.uuid, error=str(exc))
            self.request(host)  # again at the next round
            await asyncio.sleep(1.0)
            return
        except Refused as exc:  # the provider is gone: nothing to learn
            log.warning("agent.usage_read_refused", host=host.uuid, error=str(exc))
            return
        self.stats.usage_reads += 1
        self.fleet.set_usage(host, used)
