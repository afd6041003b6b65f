"""One agent process: its hosts, its NATS and HTTP connections, its loops, its shutdown.

Wiring (each piece in its own module):

* the fleet: hosts and queues, eligibility kept current (``fleet.py``);
* the queue watcher: the bucket's keys -> the fleet's queues (``watch.py``);
* the fetch loops: one per served queue (``loops.py``), started whenever the
  fleet's served queues change;
* the dispatcher: assign, claim, boot, active, ack (``dispatch.py``);
* the delete loop: this agent's delete consumer (``deletes.py``);
* the usage reader: re-reads after ``full`` (``hosts.py``);
* the heartbeat and the ``--stats-every`` line (here).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Coroutine
from typing import Any

import nats
import structlog
from nats.aio.client import Client as NATS

from berth.agent.batching import Batcher
from berth.agent.bootlog import BootLog
from berth.agent.client import PullApi, Refused, Unavailable
from berth.agent.deletes import DeleteLoop
from berth.agent.dispatch import Dispatcher
from berth.agent.fleet import Fleet
from berth.agent.hosts import UsageReader
from berth.agent.loops import FetchLoops
from berth.agent.options import AgentOptions
from berth.agent.stats import Stats
from berth.agent.watch import watch_queues

log = structlog.get_logger("berth.agent")

HEARTBEAT_HOSTS = 10000  # the most hosts one heartbeat call may carry (docs/pull.md)


class Agent:
    """Runs a fleet of simulated hosts against berth's pull API and NATS JetStream."""

    def __init__(self, options: AgentOptions, client: PullApi, fleet: Fleet, nc: NATS) -> None:
        self.options = options
        self.client = client
        self.fleet = fleet
        self.nc = nc
        self.stats = Stats()
        js = nc.jetstream()
        self.js = js
        names = options.names
        self.usage = UsageReader(client, fleet, self.stats, options.read_concurrency)
        self.dispatcher = Dispatcher(
            fleet,
            client,
            self.stats,
            on_full=self.usage.request,
            boot_seconds=options.boot_seconds,
            tick_seconds=options.tick_seconds,
            retry_delay=options.retry_delay,
            group_delay=options.group_delay,
            boot_log=BootLog(options.boot_log),
        )
        self.loops = FetchLoops(
            js,
            names.work_stream,
            fleet,
            self.dispatcher,
            self.stats,
            batch=options.fetch_batch,
            timeout=options.fetch_timeout,
            retry_delay=options.retry_delay,
        )
        self.deletes = DeleteLoop(
            js,
            names.delete_stream,
            names.delete_prefix,
            options.name,
            fleet,
            Batcher(client.deleted, options.tick_seconds),
            self.stats,
            on_unknown=self.usage.request,
            timeout=options.fetch_timeout,
            retry_delay=options.retry_delay,
        )
        self.queues_ready = asyncio.Event()
        self.background: list[asyncio.Task[None]] = []
        fleet.on_change = self.loops.sync

    def start(self) -> None:
        """Start watching queues, fetching deletes, re-reading usage, heartbeating, reporting."""
        names = self.options.names
        self._spawn(
            watch_queues(
                self.js,
                names.queues_bucket,
                self.fleet,
                self.queues_ready,
                self.options.retry_delay,
            )
        )
        self._spawn(self.usage.run())
        self._spawn(self._heartbeats())
        if self.options.stats_every > 0:
            self._spawn(self._report())
        self.delete_task = asyncio.create_task(self.deletes.run())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.background.append(asyncio.create_task(coro))

    async def _heartbeats(self) -> None:
        """POST the heartbeat of all hosts every ``heartbeat_seconds`` (first one at once)."""
        hosts = [h.uuid for h in self.fleet.hosts]
        while True:
            for start in range(0, len(hosts), HEARTBEAT_HOSTS):
                try:
                    await self.client.heartbeat(
                        self.options.name, hosts[start : start + HEARTBEAT_HOSTS]
                    )
                except (Unavailable, Refused) as exc:
                    log.warning("agent.heartbeat_failed", error=str(exc))
            await asyncio.sleep(self.options.heartbeat_seconds)

    async def _report(self) -> None:
        """Print the one-line summary every ``stats_every`` seconds."""
        while True:
            await asyncio.sleep(self.options.stats_every)
            self.print_stats()

    def print_stats(self) -> None:
        """The summary line, on standard output."""
        line = self.stats.line(
            len(self.fleet.hosts),
            self.fleet.eligible_hosts(),
            len(self.loops.running),
            len(self.fleet.queues),
        )
        print(line, file=sys.stdout, flush=True)

    async def shutdown(self) -> None:
        """Stop fetching, finish or nak what is in hand, stop the rest."""
        grace = self.options.shutdown_grace
        self.deletes.stopping = True
        await self.loops.stop(self.options.fetch_timeout + 1.0)
        await self.dispatcher.drain(grace)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(
                asyncio.shield(self.delete_task), self.options.fetch_timeout + 1.0
            )
        self.delete_task.cancel()
        for task in self.background:
            task.cancel()
        await asyncio.gather(self.delete_task, *self.background, return_exceptions=True)
        if self.options.stats_every > 0:
            self.print_stats()


async def connect_nats(url: str, name: str) -> NATS:
    """A NATS connection that keeps reconnecting (the broker restarting is not the agent's end)."""
    return await nats.connect(
        url, name=f"berth-agent-{name}", max_reconnect_attempts=-1, connect_timeout=5
    )
