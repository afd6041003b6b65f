"""The agent's dispatch on a real NATS JetStream: batching, every claim outcome, deletes,
queue loops starting and stopping, in-progress acks, shutdown.

Each test makes its own streams, consumers and bucket (tests/agent/jetstream.py)
and answers the pull calls in memory (tests/agent/fake_pull.py); the real
server's answers are the end-to-end test's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from berth.agent.agent import Agent
from berth.agent.fleet import Fleet
from berth.agent.options import AgentOptions
from tests.agent.fake_pull import FakePull
from tests.agent.helpers import host
from tests.agent.jetstream import Scratch, require_nats, scratch

SMALL = {"VCPU": 2, "MEMORY_MB": 1024}


def run(body: Callable[[Scratch], Coroutine[Any, Any, None]], timeout: float = 60.0) -> None:
    """Run an async test body with its scratch streams."""
    url = require_nats()

    async def main() -> None:
        async with scratch(url) as s:
            await asyncio.wait_for(body(s), timeout)

    asyncio.run(main())


async def until(check: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    """Wait (polling) until ``check()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(s: Scratch, fleet: Fleet, api: FakePull, **options: Any) -> AsyncIterator[Agent]:
    """An agent on the scratch streams, shut down at the end (whatever happened)."""
    opts = AgentOptions(
        name=f"a{s.tag}",
        hosts_from="unused",
        names=s.names,
        fetch_timeout=0.3,
        heartbeat_seconds=0.2,
        retry_delay=0.2,
        group_delay=0.05,
        **options,
    )
    agent = Agent(opts, api, fleet, s.nc)
    agent.start()
    try:
        yield agent
    finally:
        if not agent.loops.stopping:
            await agent.shutdown()


async def pending(s: Scratch, consumer: str) -> tuple[int, int]:
    """(messages not yet delivered, delivered and not acked) of a work consumer."""
    info = await s.js.consumer_info(s.names.work_stream, consumer)
    return info.num_pending, info.num_ack_pending


async def publish_all(
    s: Scratch, api: FakePull, queue: str, count: int, amounts: dict
) -> list[str]:
    names = [f"{queue}-i{n:03d}" for n in range(count)]
    for name in names:
        api.queue(name, amounts)
        await s.publish(queue, name, amounts)
    return names


def test_a_burst_is_placed_packed_in_few_batched_calls() -> None:
    async def body(s: Scratch) -> None:
        hosts = [host(i) for i in range(20)]  # 8 VCPU each: 4 instances of SMALL
        api = FakePull(hosts)
        await s.add_queue("small", SMALL)
        await publish_all(s, api, "small", 50, SMALL)
        async with running(s, Fleet(hosts, "pack"), api) as agent:
            await until(lambda: len(api.in_state("active")) == 50, what="50 active")
            await until(lambda: agent.stats.placed == 50, what="50 acked")
            await agent.shutdown()
            assert await pending(s, "small") == (0, 0)
            assert api.calls["claims"] < 50 and max(api.batch_sizes) > 1
            assert api.calls["heartbeat"] >= 1 and api.heartbeats[0] == (f"a{s.tag}", 20)
            used_hosts = [u for u, used in api.used.items() if used["VCPU"]]
            assert len(used_hosts) == 13  # packed: 12 full hosts and one with 2 instances
            assert all(used["VCPU"] <= 8 for used in api.used.values())

    run(body)


def test_spread_uses_every_host() -> None:
    async def body(s: Scratch) -> None:
        hosts = [host(i) for i in range(10)]
        api = FakePull(hosts)
        await s.add_queue("small", SMALL)
        await publish_all(s, api, "small", 10, SMALL)
        async with running(s, Fleet(hosts, "spread"), api) as agent:
            await until(lambda: agent.stats.placed == 10, what="10 placed")
            await agent.shutdown()
            assert all(used["VCPU"] == 2 for used in api.used.values())

    run(body)


def test_taken_full_and_group_outcomes() -> None:
    async def body(s: Scratch) -> None:
        hosts = [host(i) for i in range(4)]
        # The agent believes host 0 has room for one more, so pack tries it first with the
        # first message (the others go to host 1); Placement has it full.
        hosts[0].used["VCPU"] = 6
        api = FakePull(hosts)
        api.used[hosts[0].uuid]["VCPU"] = 8
        await s.add_queue("small", SMALL)
        crowded, refused, taken = await publish_all(s, api, "small", 3, SMALL)
        api.state[taken] = ("active", "someone-else")
        api.group_refuses[refused] = {hosts[0].uuid, hosts[1].uuid}
        async with running(s, Fleet(hosts, "pack"), api) as agent:
            await until(lambda: agent.stats.taken == 1 and agent.stats.placed == 2, what="settled")
            await agent.shutdown()
            assert api.state[taken] == ("active", "someone-else")  # acked and dropped
            assert api.state[crowded][0] == "active"
            assert api.state[refused][0] == "active"
            assert api.state[refused][1] in {hosts[2].uuid, hosts[3].uuid}
            assert agent.stats.full >= 1 and api.calls["usages"] >= 1
            assert hosts[0].used["VCPU"] == 8  # the re-read taught it
            assert agent.stats.group >= 1
            assert await pending(s, "small") == (0, 0)

    run(body)


def test_queue_loops_follow_capacity_and_deletes() -> None:
    async def body(s: Scratch) -> None:
        hosts = [host(i) for i in range(2)]
        api = FakePull(hosts)
        agent_name = f"a{s.tag}"
        big = {"VCPU": 8}
        await s.add_queue("big", big)
        await s.add_queue("huge", {"VCPU": 64})  # fits no host: never fetched
        first = await publish_all(s, api, "big", 3, big)
        async with running(s, Fleet(hosts, "pack"), api) as agent:
            await until(lambda: agent.stats.placed == 2, what="2 placed")
            await until(lambda: not agent.loops.running, what="the big loop to stop")
            assert "huge" in agent.fleet.queues and agent.loops.started == 1
            assert sum(await pending(s, "big")) == 1
            # Deleting one instance frees its host: the loop comes back and places the third.
            victim = api.in_state("active")[0]
            api.state[victim] = ("deleting", api.state[victim][1])
            await s.publish_delete(agent_name, api.state[victim][1], victim)
            await until(lambda: agent.stats.placed == 3, what="the third placed")
            assert api.state[victim][0] == "deleted" and agent.stats.deleted == 1
            assert agent.loops.started == 2
            # A queue removed from the bucket is forgotten.
            await s.kv.delete("huge")
            await until(lambda: "huge" not in agent.fleet.queues, what="huge forgotten")
            await agent.shutdown()
            assert sorted(api.in_state("active")) == sorted(set(first) - {victim})

    run(body)


def test_in_progress_acks_keep_a_long_boot_from_redelivery() -> None:
    async def body(s: Scratch) -> None:
        hosts = [host(0)]
        api = FakePull(hosts)
        await s.add_queue("small", SMALL, ack_wait=1.0)
        await publish_all(s, api, "small", 2, SMALL)
        async with running(s, Fleet(hosts, "pack"), api, boot_seconds=2.5) as agent:
            await until(lambda: agent.stats.placed == 2, what="2 placed after the boot")
            await agent.shutdown()
            info = await s.js.consumer_info(s.names.work_stream, "small")
            assert info.num_redelivered == 0 and info.num_ack_pending == 0

    run(body)


def test_shutdown_naks_what_is_in_hand() -> None:
    async def body(s: Scratch) -> None:
        hosts = [host(0)]
        api = FakePull(hosts)
        await s.add_queue("small", SMALL)
        names = await publish_all(s, api, "small", 2, SMALL)
        async with running(
            s, Fleet(hosts, "pack"), api, boot_seconds=60, shutdown_grace=0.2
        ) as agent:
            await until(lambda: agent.stats.claimed == 2, what="2 claimed")
            started = time.monotonic()
            await agent.shutdown()
            assert time.monotonic() - started < 5
            assert agent.stats.placed == 0 and sorted(api.in_state("claimed")) == names
            # Given back at once: another fetch gets them, delivered a second time.
            psub = await s.js.pull_subscribe_bind(durable="small", stream=s.names.work_stream)
            msgs = await psub.fetch(2, timeout=3)
            assert sorted(m.metadata.num_delivered for m in msgs) == [2, 2]
            for m in msgs:
                await m.ack()

    run(body)


def test_long_boots_do_not_stop_the_fetches() -> None:
    """Work arriving one message at a time is claimed while earlier boots still run (a
    fetch slot was held until a batch's boots ended: 4 batches, then nothing)."""

    async def body(s: Scratch) -> None:
        hosts = [host(0), host(1)]  # room for 8
        api = FakePull(hosts)
        await s.add_queue("small", SMALL)
        async with running(
            s, Fleet(hosts, "pack"), api, boot_seconds=60, shutdown_grace=0.2
        ) as agent:
            for n in range(6):
                api.queue(f"one-{n}", SMALL)
                await s.publish("small", f"one-{n}", SMALL)
                await until(lambda n=n: agent.stats.claimed == n + 1, what=f"{n + 1} claimed")
            assert agent.stats.placed == 0  # all six still booting

    run(body)
