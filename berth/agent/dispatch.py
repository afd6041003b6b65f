"""One fetched batch of work, from messages to acks: assign, claim, boot, confirm active.

The stages of a batch (each message's host is fixed at assignment):

1. **assign**: each message goes to the host the choice prefers among the
   queue's eligible hosts (not one that refused this instance for its server
   group); its amounts are held on that host at once, so the next message
   of the batch sees them;
2. **claim**: one ``POST /scheduler/pull/claims`` for the tick (the
   :class:`~berth.agent.batching.Batcher` joins all queues' batches);
   ``claimed`` goes on, ``taken`` is acked and dropped, ``full`` nak'ed and
   the host's usage re-read, ``group`` nak'ed after a short delay and the
   refusal remembered, a failed call nak'ed after ``retry_delay``;
3. **boot**: ``boot_seconds`` of pretend work, with in-progress acks every
   ``ack_wait / 3`` so JetStream does not redeliver;
4. **active**: one ``POST /scheduler/pull/active`` per tick, retried until it
   answers (the claim is this host's: giving the message back would strand
   it), then the ack.

A batch cut short by shutdown naks what it still holds; a claimed instance
whose host stops heartbeating is requeued by the server's sweeper.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from nats.aio.msg import Msg

from berth.agent.batching import Batcher
from berth.agent.client import PullApi
from berth.agent.eligibility import refusal
from berth.agent.fleet import Fleet
from berth.agent.model import Host, Job
from berth.agent.stats import Stats

log = structlog.get_logger("berth.agent")

# How many other hosts to try for one message when the preferred one does not fit it.
ASSIGN_TRIES = 8
# Instances whose group refusals are remembered (those claimed by another agent are never
# forgotten otherwise).
MAX_REFUSALS = 10000


class Assigned:
    """A message, its job and the host it went to."""

    __slots__ = ("host", "job", "msg", "settled")

    def __init__(self, msg: Msg, job: Job, host: Host) -> None:
        self.msg = msg
        self.job = job
        self.host = host
        self.settled = False  # acked or nak'ed


class Dispatcher:
    """Runs fetched batches through assign, claim, boot and active."""

    def __init__(
        self,
        fleet: Fleet,
        api: PullApi,
        stats: Stats,
        on_full: Callable[[Host], None],
        boot_seconds: float = 0.0,
        tick_seconds: float = 0.005,
        retry_delay: float = 1.0,
        group_delay: float = 0.2,
    ) -> None:
        self.fleet = fleet
        self.stats = stats
        self.on_full = on_full
        self.boot_seconds = boot_seconds
        self.retry_delay = retry_delay
        self.group_delay = group_delay
        self.claims = Batcher(api.claims, tick_seconds)
        self.actives = Batcher(api.active, tick_seconds)
        self.refused: dict[str, set[int]] = {}  # instance -> hosts its server group refused
        self.in_hand: set[str] = set()  # instances of messages held and not settled
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, queue: str, msgs: Sequence[Msg], ack_wait: float) -> asyncio.Task[None]:
        """Assign the batch now (the next fetch sees the hosts it filled), then handle it in
        the background; the task (kept until it ends)."""
        work, unplaced = self.assign(queue, msgs)
        task = asyncio.create_task(self.handle(work, unplaced, ack_wait))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def handle(
        self, work: list[Assigned], unplaced: list[tuple[Msg, str]], ack_wait: float
    ) -> None:
        """Nak what no host took; claim, boot and confirm the rest; nak what is held if
        cancelled."""
        for msg, how in unplaced:
            await quietly(msg.term() if how == "term" else msg.nak(self.retry_delay))
        try:
            claimed = await self.claim(work)
            if claimed:
                await self.boot_and_activate(claimed, ack_wait)
        except asyncio.CancelledError:
            for item in work:
                if not item.settled:
                    self.fleet.release(item.host, item.job.instance)
                    await self.settle(item, "nak")
            raise

    def assign(
        self, queue: str, msgs: Sequence[Msg]
    ) -> tuple[list[Assigned], list[tuple[Msg, str]]]:
        """Give each message a host and hold its amounts there; (assigned, the others with
        ``nak`` (no host for it now) or ``term`` (malformed))."""
        work: list[Assigned] = []
        unplaced: list[tuple[Msg, str]] = []
        for msg in msgs:
            try:
                job = Job.from_json(msg.data)
            except ValueError as exc:
                log.warning("agent.bad_message", queue=queue, error=str(exc))
                unplaced.append((msg, "term"))  # malformed: never to be delivered again
                continue
            if job.instance in self.in_hand:
                continue  # a redelivery of what a batch still holds: its ack settles both
            host = self._choose(queue, job)
            if host is None:
                self.stats.unplaced += 1
                unplaced.append((msg, "nak"))
                continue
            self.fleet.reserve(host, job.instance, job.resources)
            self.in_hand.add(job.instance)
            work.append(Assigned(msg, job, host))
        return work, unplaced

    def _choose(self, queue: str, job: Job) -> Host | None:
        """The queue's preferred host that fits this job and has not refused it."""
        exclude = set(self.refused.get(job.instance, ()))
        for _ in range(ASSIGN_TRIES):
            host = self.fleet.best(queue, exclude)
            if host is None:
                return None
            if refusal(host, job.resources, job.required, job.forbidden) is None:
                return host
            exclude.add(host.index)
        return None

    async def claim(self, work: list[Assigned]) -> list[Assigned]:
        """Claim the batch (one call per tick); settle what was not claimed; the claimed."""
        items = [
            {"instance": w.job.instance, "host": w.host.uuid, "attempt": w.job.attempt}
            for w in work
        ]
        results = await self.claims.submit(items)
        claimed = []
        for item, result in zip(work, results, strict=True):
            outcome = _outcome(result)
            if outcome == "claimed":
                self.stats.claimed += 1
                self.fleet.claimed(item.host, item.job.instance)
                self.refused.pop(item.job.instance, None)
                claimed.append(item)
            else:
                await self._not_claimed(item, outcome, result)
        return claimed

    async def _not_claimed(self, item: Assigned, outcome: str, result: Any) -> None:
        """Give back the host's hold and settle the message as the outcome says."""
        self.fleet.release(item.host, item.job.instance)
        instance = item.job.instance
        if outcome == "taken":
            self.stats.taken += 1
            self.refused.pop(instance, None)
            await self.settle(item, "ack")
        elif outcome == "full":
            self.stats.full += 1
            self.on_full(item.host)
            await self.settle(item, "nak")
        elif outcome == "group":
            self.stats.group += 1
            if len(self.refused) >= MAX_REFUSALS and instance not in self.refused:
                del self.refused[next(iter(self.refused))]  # the oldest: claimed elsewhere, likely
            self.refused.setdefault(instance, set()).add(item.host.index)
            await self.settle(item, "nak", self.group_delay)
        else:
            self.stats.errors += 1
            log.warning("agent.claim_failed", instance=instance, error=str(result))
            await self.settle(item, "nak", self.retry_delay)

    async def boot_and_activate(self, claimed: list[Assigned], ack_wait: float) -> None:
        """Pretend to boot, confirm active (retrying until answered), ack."""
        keepalive = asyncio.create_task(_keep_in_progress(claimed, ack_wait / 3))
        try:
            if self.boot_seconds > 0:
                await asyncio.sleep(self.boot_seconds)
            await self._activate(claimed)
        finally:
            keepalive.cancel()

    async def _activate(self, claimed: list[Assigned]) -> None:
        """POST active until every instance has an answer; ack each answered one."""
        todo = claimed
        while todo:
            items = [{"instance": w.job.instance, "host": w.host.uuid} for w in todo]
            results = await self.actives.submit(items)
            retry = []
            for item, result in zip(todo, results, strict=True):
                outcome = _outcome(result)
                if outcome == "active":
                    self.stats.placed += 1
                    await self.settle(item, "ack")
                elif outcome == "taken":
                    self.stats.taken += 1
                    self.fleet.release(item.host, item.job.instance)
                    await self.settle(item, "ack")
                else:
                    self.stats.errors += 1
                    log.warning(
                        "agent.active_failed", instance=item.job.instance, error=str(result)
                    )
                    retry.append(item)
            todo = retry
            if todo:
                await asyncio.sleep(self.retry_delay)

    async def settle(self, item: Assigned, how: str, delay: float | None = None) -> None:
        """Ack or nak the item's message once; it is no longer in hand."""
        if item.settled:
            return
        item.settled = True
        self.in_hand.discard(item.job.instance)
        await quietly(item.msg.ack() if how == "ack" else item.msg.nak(delay))

    async def drain(self, grace: float) -> None:
        """Let running batches finish for ``grace`` seconds, then cut them short (they nak)."""
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5.0)


def _outcome(result: Any) -> str:
    """The result's outcome, or ``error`` for a failed call."""
    if isinstance(result, dict):
        return str(result.get("outcome"))
    return "error"


async def _keep_in_progress(items: list[Assigned], every: float) -> None:
    """Tell JetStream every ``every`` seconds that these messages are still being worked on."""
    while True:
        await asyncio.sleep(max(every, 0.1))
        for item in items:
            if not item.settled:
                await quietly(item.msg.in_progress())


async def quietly(ack: Any) -> None:
    """Send an ack, nak or term; a closed connection only means JetStream will redeliver."""
    with contextlib.suppress(Exception):
        await ack
