"""Real NATS JetStream for the agent's tests: scratch streams, consumers and a bucket per test.

Every name carries a random tag and everything is deleted afterwards, so
tests never touch (or collide with) the real ``BERTH_WORK``.  Without a
NATS server on ``BERTH_TEST_NATS_URL`` (default 127.0.0.1:4222) the tests
skip, unless ``BERTH_TEST_REQUIRE_DATABASES=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Mapping

import nats
import orjson
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy
from nats.js.kv import KeyValue

from berth.agent.options import NatsNames

NATS_URL = os.environ.get("BERTH_TEST_NATS_URL", "nats://127.0.0.1:4222")
REQUIRE = os.environ.get("BERTH_TEST_REQUIRE_DATABASES") == "1"


def require_nats() -> str:
    """The NATS URL; skip (or fail, in CI) when nothing listens there."""
    parsed = urllib.parse.urlsplit(NATS_URL)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), 2):
            return NATS_URL
    except OSError as exc:
        if REQUIRE:
            pytest.fail(f"NATS not reachable at {NATS_URL}: {exc}")
        pytest.skip(f"NATS not reachable at {NATS_URL}: {exc}")


@dataclasses.dataclass
class Scratch:
    """One test's streams and bucket."""

    tag: str
    names: NatsNames
    nc: NATS
    js: JetStreamContext
    kv: KeyValue

    def subject(self, queue: str) -> str:
        return f"t{self.tag}.work.{queue}"

    async def add_queue(
        self, name: str, resources: Mapping[str, int], ack_wait: float = 10.0, **extra: object
    ) -> None:
        """A durable consumer for the queue and its key in the bucket (the server's job)."""
        subject = self.subject(name)
        config = ConsumerConfig(
            durable_name=name,
            filter_subject=subject,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
        )
        await self.js.add_consumer(self.names.work_stream, config)
        body = {"name": name, "subject": subject, "resources": dict(resources), **extra}
        await self.kv.put(name, orjson.dumps(body))

    async def publish(self, queue: str, instance: str, resources: Mapping[str, int]) -> None:
        """One work message, as the server's outbox sends it."""
        body = {
            "instance": instance,
            "request": "r-" + instance,
            "queue": queue,
            "attempt": 0,
            "resources": dict(resources),
            "required": [],
            "forbidden": [],
            "project_id": "p",
            "user_id": "u",
            "server_group": None,
        }
        await self.js.publish(
            self.subject(queue), orjson.dumps(body), headers={"Nats-Msg-Id": f"{instance}:0"}
        )

    async def publish_delete(self, agent: str, host: str, instance: str) -> None:
        """One delete message for ``agent``'s ``host``."""
        body = {"instance": instance, "request": "r-" + instance, "host": host}
        await self.js.publish(f"{self.names.delete_prefix}.{agent}.{host}", orjson.dumps(body))


@contextlib.asynccontextmanager
async def scratch(url: str) -> AsyncIterator[Scratch]:
    """Fresh work and delete streams (work-queue retention) and a queue bucket; deleted after."""
    tag = uuid.uuid4().hex[:10]
    names = NatsNames(
        work_stream=f"T{tag}_WORK",
        delete_stream=f"T{tag}_DELETE",
        delete_prefix=f"t{tag}.delete",
        queues_bucket=f"t{tag}-queues",
    )
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        await js.add_stream(
            name=names.work_stream,
            subjects=[f"t{tag}.work.>"],
            retention=RetentionPolicy.WORK_QUEUE,
        )
        await js.add_stream(
            name=names.delete_stream,
            subjects=[f"{names.delete_prefix}.>"],
            retention=RetentionPolicy.WORK_QUEUE,
        )
        kv = await js.create_key_value(bucket=names.queues_bucket)
        yield Scratch(tag, names, nc, js, kv)
    finally:
        for stream in (names.work_stream, names.delete_stream):
            with contextlib.suppress(Exception):
                await js.delete_stream(stream)
        with contextlib.suppress(Exception):
            await js.delete_key_value(names.queues_bucket)
        await nc.close()
