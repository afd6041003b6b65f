"""The queue list: the agent watches the key-value bucket the server's queue manager fills.

Each key is a queue name, each value its queue JSON (docs/pull.md); a put
adds or replaces the queue in the fleet, a delete or purge removes it.  The
fleet tells the fetch loops when the served queues change.  The bucket may
not exist yet when the agent starts (the server creates it): the watcher
waits for it.

A NATS server that lost its store comes back without the bucket, and the
server makes it again.  nats-py's watcher does not notice: it resumes after
the last sequence it saw in the old bucket, skipping the new bucket's first
entries.  So every ``check_every`` seconds the watcher looks at when the
bucket's stream was created; when that changed (or the stream is gone) it
watches afresh, and the queues the new bucket does not hold are forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime

import nats.errors
import nats.js.errors
import structlog
from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from berth.agent.fleet import Fleet
from berth.agent.model import Queue

log = structlog.get_logger("berth.agent")

# Seconds between looks at the bucket's stream (made again: watch afresh).
CHECK_EVERY = 5.0


async def watch_queues(
    js: JetStreamContext,
    bucket: str,
    fleet: Fleet,
    ready: asyncio.Event,
    retry_delay: float = 1.0,
    check_every: float = CHECK_EVERY,
) -> None:
    """Keep ``fleet``'s queues equal to the bucket's keys, forever; ``ready`` once caught up."""
    while True:
        try:
            kv = await js.key_value(bucket)
            created = await _created(js, bucket)
        except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
            log.info("agent.waiting_for_bucket", bucket=bucket)
            await asyncio.sleep(retry_delay)
            continue
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("agent.watch_failed", bucket=bucket, error=repr(exc))
            await asyncio.sleep(retry_delay)
            continue
        if await _watch(js, kv, bucket, created, fleet, ready, check_every):
            log.info("agent.bucket_made_again", bucket=bucket)
        else:
            await asyncio.sleep(retry_delay)


async def _created(js: JetStreamContext, bucket: str) -> datetime.datetime | None:
    """When the bucket's stream was created (NotFoundError: it is gone)."""
    return (await js.stream_info(f"KV_{bucket}")).created


async def _watch(
    js: JetStreamContext,
    kv: KeyValue,
    bucket: str,
    created: datetime.datetime | None,
    fleet: Fleet,
    ready: asyncio.Event,
    check_every: float,
) -> bool:
    """Follow one bucket until it is made again (True) or the watch fails (False)."""
    try:
        watcher = await kv.watchall()
    except (TimeoutError, nats.errors.Error) as exc:
        log.warning("agent.watch_failed", bucket=bucket, error=repr(exc))
        return False
    follow = asyncio.create_task(_follow(watcher, fleet, ready))
    renewed = asyncio.create_task(_until_renewed(js, bucket, created, check_every))
    try:
        await asyncio.wait({follow, renewed}, return_when=asyncio.FIRST_COMPLETED)
        if follow.done() and follow.exception() is not None:
            log.warning("agent.watch_failed", bucket=bucket, error=repr(follow.exception()))
        return renewed.done()
    finally:
        for task in (follow, renewed):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await watcher.stop()  # type: ignore[no-untyped-call]


async def _follow(watcher: KeyValue.KeyWatcher, fleet: Fleet, ready: asyncio.Event) -> None:
    """Apply the bucket's entries; at the end of its current keys, forget the others."""
    current: set[str] | None = set()  # the keys the bucket holds, until they are all seen
    async for entry in watcher:
        if entry is None:  # the bucket's current keys have all been seen
            for name in sorted(set(fleet.queues) - current) if current is not None else ():
                fleet.remove_queue(name)  # not in a bucket made again
            current = None
            ready.set()
            log.info("agent.queues_known", queues=len(fleet.queues))
            continue
        if current is not None and entry.operation not in (KV_DEL, KV_PURGE):
            current.add(entry.key)
        apply_entry(fleet, entry.key, entry.operation, entry.value)
        if entry.delta == 0:
            ready.set()


async def _until_renewed(
    js: JetStreamContext, bucket: str, created: datetime.datetime | None, check_every: float
) -> None:
    """Return once the bucket's stream is gone or was created at another time."""
    while True:
        await asyncio.sleep(check_every)
        try:
            if await _created(js, bucket) != created:
                return
        except nats.js.errors.NotFoundError:
            return
        except (TimeoutError, nats.errors.Error):  # NATS away: look again later
            continue


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
