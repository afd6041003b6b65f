"""The agent's queue watcher on a real JetStream bucket: puts, deletes, and a bucket made again.

A NATS server that lost its store comes back without the bucket, and the server makes it
again with fresh sequences; nats-py's watcher alone would resume after the old bucket's
last sequence and miss the new bucket's first keys.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson

from berth.agent.fleet import Fleet
from berth.agent.watch import watch_queues
from tests.agent.helpers import host
from tests.agent.jetstream import Scratch
from tests.agent.test_dispatch_nats import SMALL, run, until


async def _put(s: Scratch, name: str) -> None:
    body = {"name": name, "subject": s.subject(name), "resources": SMALL}
    await s.kv.put(name, orjson.dumps(body))


def test_the_watcher_follows_a_bucket_made_again() -> None:
    async def body(s: Scratch) -> None:
        fleet, ready = Fleet([host(0)]), asyncio.Event()
        for name in ("old1", "old2", "old3"):
            await _put(s, name)
        bucket = s.names.queues_bucket
        watcher = asyncio.create_task(watch_queues(s.js, bucket, fleet, ready, 0.1, 0.2))
        try:
            await asyncio.wait_for(ready.wait(), 10)
            assert set(fleet.queues) == {"old1", "old2", "old3"}
            await s.kv.delete("old3")
            await until(lambda: "old3" not in fleet.queues, what="old3 forgotten")

            await s.js.delete_key_value(bucket)  # as a NATS that lost its store
            s.kv = await s.js.create_key_value(bucket=bucket)
            await _put(s, "new1")
            await _put(s, "old1")
            await until(lambda: set(fleet.queues) == {"new1", "old1"}, what="the new bucket")
            await _put(s, "new2")
            await until(lambda: "new2" in fleet.queues, what="a key put later")
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    run(body)
