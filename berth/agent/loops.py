"""The fetch loops: one per queue that at least one local host can take, and no others.

A loop binds to its queue's durable pull consumer on the work stream and
fetches batches no larger than what the queue's eligible hosts can hold; each batch
is handed to the :class:`~berth.agent.dispatch.Dispatcher` (a few in flight
per queue, so a claim call does not stall the next fetch).  A loop ends by
itself once the queue has no eligible host (checked before every fetch) or
the agent stops; :meth:`FetchLoops.sync`, called whenever the set of served
queues changes, starts the missing ones.  Messages fetched after the stop
are nak'ed at once.
"""

from __future__ import annotations

import asyncio
import contextlib

import nats.errors
import structlog
from nats.js import JetStreamContext

from berth.agent.dispatch import Dispatcher, quietly
from berth.agent.fleet import Fleet
from berth.agent.stats import Stats

log = structlog.get_logger("berth.agent")

IN_FLIGHT = 4  # batches of one queue between fetch and ack at once
DEFAULT_ACK_WAIT = 30.0  # seconds, JetStream's default when the consumer does not say


class FetchLoops:
    """Starts and stops the per-queue fetch loops as the served queues change."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        fleet: Fleet,
        dispatcher: Dispatcher,
        stats: Stats,
        batch: int = 64,
        timeout: float = 1.0,
        retry_delay: float = 1.0,
    ) -> None:
        self.js = js
        self.stream = stream
        self.fleet = fleet
        self.dispatcher = dispatcher
        self.stats = stats
        self.batch = batch
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.running: dict[str, asyncio.Task[None]] = {}
        self.stopping = False
        self.started = 0  # loops started so far (tests, logs)

    def sync(self) -> None:
        """Start a loop for every served queue without one."""
        if self.stopping:
            return
        for name in self.fleet.serving() - self.running.keys():
            self.started += 1
            self.running[name] = asyncio.create_task(self._run(name), name=f"fetch-{name}")

    def _serving(self, name: str) -> bool:
        return not self.stopping and self.fleet.has_eligible(name)

    async def _run(self, name: str) -> None:
        """Bind and fetch until the queue is not served; rebind after an error."""
        log.info("agent.queue_start", queue=name)
        try:
            while self._serving(name):
                try:
                    await self._fetch_until_done(name)
                except (TimeoutError, nats.errors.Error, OSError) as exc:
                    log.warning("agent.fetch_failed", queue=name, error=repr(exc))
                    await asyncio.sleep(self.retry_delay)
        finally:
            self.running.pop(name, None)
            log.info("agent.queue_stop", queue=name)
            self.sync()  # the queue may have become served again while this loop was ending

    async def _fetch_until_done(self, name: str) -> None:
        """One subscription's life: fetch batches while the queue is served."""
        psub = await self.js.pull_subscribe_bind(durable=name, stream=self.stream)
        try:
            info = await psub.consumer_info()
            ack_wait = float(info.config.ack_wait or DEFAULT_ACK_WAIT)
            slots = asyncio.Semaphore(IN_FLIGHT)
            while self._serving(name):
                await slots.acquire()
                if not self._serving(name):
                    slots.release()
                    break
                try:
                    size = max(1, self.fleet.room(name, self.batch))
                    msgs = await psub.fetch(size, timeout=self.timeout)
                except TimeoutError:  # nats-py's own or asyncio's: both are TimeoutError
                    slots.release()
                    continue
                except BaseException:
                    slots.release()
                    raise
                self.stats.fetched += len(msgs)
                if self.stopping:
                    slots.release()
                    for msg in msgs:
                        await quietly(msg.nak())
                    break
                task = self.dispatcher.spawn(name, msgs, ack_wait)
                task.add_done_callback(lambda _: slots.release())
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()

    async def stop(self, timeout: float) -> None:
        """Stop fetching: each loop ends after its current fetch (at most ``timeout``)."""
        self.stopping = True
        tasks = list(self.running.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2.0)
