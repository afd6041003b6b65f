"""Deletes: the agent's one durable consumer on the delete stream, and the teardown.

The consumer ``del-<agent>`` (filter ``<prefix>.<agent>.*``) is made by
the server when it first hears the agent's heartbeat; if it is still missing
after a few looks, the agent makes it, with the server's default config.
Each message names an instance and its host; the agent gives back the
instance's amounts in memory, confirms with ``POST
/scheduler/pull/deleted`` (one call per tick) and acks.  An instance this
process did not know (claimed before a restart) has its host's usage
re-read from Placement after the confirmation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import nats.errors
import nats.js.errors
import orjson
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from berth.agent.batching import Batcher
from berth.agent.dispatch import quietly
from berth.agent.fleet import Fleet
from berth.agent.model import Host
from berth.agent.stats import Stats

log = structlog.get_logger("berth.agent")


# The server's consumer config with its default settings (pull_ack_wait_s,
# pull_max_ack_pending); the server leaves a consumer the agent made as it is.
DELETE_ACK_WAIT = 60.0
DELETE_MAX_ACK_PENDING = 10000
# Looks for the consumer the server makes on hearing the heartbeat, before making it here.
WAIT_FOR_SERVER = 3


async def ensure_consumer(
    js: JetStreamContext, stream: str, durable: str, subject: str, create: bool = True
) -> bool:
    """Whether the durable pull consumer exists (made here if missing and ``create``).

    NotFoundError when the stream itself is missing.
    """
    try:
        await js.consumer_info(stream, durable)
        return True
    except nats.js.errors.NotFoundError:
        if not create:
            await js.stream_info(stream)  # NotFoundError if the stream is the missing one
            return False
    config = ConsumerConfig(
        durable_name=durable,
        filter_subject=subject,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=DELETE_ACK_WAIT,
        deliver_policy=DeliverPolicy.ALL,
        max_ack_pending=DELETE_MAX_ACK_PENDING,
    )
    await js.add_consumer(stream, config)
    return True


class DeleteLoop:
    """Fetches this agent's deletes and tears the instances down."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        prefix: str,
        agent: str,
        fleet: Fleet,
        deleted: Batcher,
        stats: Stats,
        on_unknown: Callable[[Host], None],
        timeout: float = 1.0,
        retry_delay: float = 1.0,
    ) -> None:
        self.js = js
        self.stream = stream
        self.durable = f"del-{agent}"
        self.subject = f"{prefix}.{agent}.*"
        self.fleet = fleet
        self.deleted = deleted
        self.stats = stats
        self.on_unknown = on_unknown
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.stopping = False

    async def run(self) -> None:
        """Fetch and handle deletes until stopped; wait for the stream; rebind after errors."""
        looks = 0
        while not self.stopping:
            try:
                looks += 1
                create = looks > WAIT_FOR_SERVER
                if not await ensure_consumer(
                    self.js, self.stream, self.durable, self.subject, create
                ):
                    await asyncio.sleep(self.retry_delay)
                    continue
                psub = await self.js.pull_subscribe_bind(durable=self.durable, stream=self.stream)
                try:
                    await self._fetch(psub)
                finally:
                    await psub.unsubscribe()
            except nats.errors.ConnectionClosedError:
                return  # closed for good (it reconnects otherwise): the agent is ending
            except nats.js.errors.NotFoundError:
                log.info("agent.waiting_for_stream", stream=self.stream)
                await asyncio.sleep(self.retry_delay)
            except (TimeoutError, nats.errors.Error, OSError) as exc:
                log.warning("agent.delete_fetch_failed", error=repr(exc))
                await asyncio.sleep(self.retry_delay)

    async def _fetch(self, psub: JetStreamContext.PullSubscription) -> None:
        while not self.stopping:
            try:
                msgs = await psub.fetch(256, timeout=self.timeout)
            except TimeoutError:  # nats-py's own or asyncio's: both are TimeoutError
                continue
            if self.stopping:
                for msg in msgs:
                    await quietly(msg.nak())
                return
            await self.handle(msgs)

    async def handle(self, msgs: list[Msg]) -> None:
        """Tear down, confirm in one call per tick, ack (nak after a failed call)."""
        todo: list[tuple[Msg, dict[str, Any], bool]] = []
        for msg in msgs:
            try:
                body = orjson.loads(msg.data)
                item = {"instance": str(body["instance"]), "host": str(body["host"])}
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                log.warning("agent.bad_delete", error=repr(exc))
                await quietly(msg.term())
                continue
            host = self.fleet.by_uuid.get(item["host"])
            known = host is not None and self.fleet.release(host, item["instance"])
            todo.append((msg, item, known))
        results = await self.deleted.submit([item for _, item, _ in todo])
        for (msg, item, known), result in zip(todo, results, strict=True):
            if isinstance(result, dict) and result.get("outcome") in ("deleted", "taken"):
                self.stats.deleted += 1
                host = self.fleet.by_uuid.get(item["host"])
                if host is not None and not known:
                    self.on_unknown(host)
                await quietly(msg.ack())
            else:
                log.warning("agent.delete_failed", instance=item["instance"], error=str(result))
                await quietly(msg.nak(self.retry_delay))
