"""The queue list: the agent watches the key-value bucket the server's queue manager fills.

Each key is a queue name, each value its queue JSON (docs/pull.md); a put
adds or replaces the queue in the fleet, a delete or purge removes it.  The
fleet tells the fetch loops when the served queues change.  The bucket may
not exist yet when the agent starts (the server creates it): the watcher
waits for it.
"""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors
import structlog
from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE

from berth.agent.fleet import Fleet
from berth.agent.model import Queue

log = structlog.get_logger("berth.agent")


async def watch_queues(
    js: JetStreamContext, bucket: str, fleet: Fleet, ready: asyncio.Event, retry_delay: float = 1.0
) -> None:
    """Keep ``fleet``'s queues equal to the bucket's keys, forever; ``ready`` once caught up."""
    while True:
        try:
            kv = await js.key_value(bucket)
            watcher = await kv.watchall()
        except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
            log.info("agent.waiting_for_bucket", bucket=bucket)
            await asyncio.sleep(retry_delay)
            continue
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("agent.watch_failed", bucket=bucket, error=repr(exc))
            await asyncio.sleep(retry_delay)
            continue
        try:
            async for entry in watcher:
                if entry is None:  # the bucket's current keys have all been seen
                    ready.set()
                    log.info("agent.queues_known", queues=len(fleet.queues))
                    continue
                apply_entry(fleet, entry.key, entry.operation, entry.value)
                if entry.delta == 0:
                    ready.set()
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]


def apply_entry(fleet: Fleet, key: str, operation: str | None, value: bytes | None) -> None:
    """One bucket change: a queue put, deleted or purged."""
    if operation in (KV_DEL, KV_PURGE):
        fleet.remove_queue(key)
        return
    try:
        queue = Queue.from_json(value or b"")
    except ValueError as exc:
        log.warning("agent.bad_queue", key=key, error=str(exc))
        return
    fleet.set_queue(queue)
    log.info("agent.queue", queue=queue.name, eligible_hosts=fleet.eligible_count(queue.name))
