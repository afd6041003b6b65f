"""Issue 13 item 7: pull dispatch under faults, on PostgreSQL with a private NATS.

Each test runs berth serve, its own nats-server and real agents (tests/pull_faults/cloud.py)
with the server's timeouts shortened, breaks something while requests are in flight, and
then checks that every accepted instance ended active or failed with a reason and that the
invariants hold (tests/pull_faults/invariants.py); the agents' ``--boot-log`` shows that no
instance was booted twice (or, after a SIGKILL, confirmed active twice).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import nats
import orjson
import pytest

from tests.pull_faults import invariants
from tests.pull_faults.cloud import SCHEDULER, Cloud, pull_cloud, wait_for
from tests.pull_faults.rogue import Rogue

pytestmark = pytest.mark.slow

FLAVOR = {"VCPU": 2, "MEMORY_MB": 2048, "DISK_GB": 10}  # 4 to a host


def _claimed_on(cloud: Cloud, hosts: set[str]) -> list[dict]:
    return [r for r in cloud.instances() if r["state"] == "claimed" and r["host"] in hosts]


def _no_double_boot(cloud: Cloud) -> None:
    boots, actives = cloud.boots()
    assert max(boots.values(), default=0) <= 1, boots.most_common(3)
    assert max(actives.values(), default=0) <= 1, actives.most_common(3)


def test_nats_restarted_during_a_run(database_url: str, tmp_path: Path) -> None:
    with pull_cloud(database_url, tmp_path) as cloud:
        cloud.flavor("f.small", FLAVOR)
        cloud.agent("na", 6, 0.3)
        asked = [u for _ in range(6) for u in cloud.request("f.small", 2)]
        wait_for(lambda: any(r["state"] == "active" for r in cloud.instances()), 20, "a boot")
        cloud.nats.stop()
        asked += [u for _ in range(4) for u in cloud.request("f.small", 2)]  # 202 meanwhile
        time.sleep(1.5)
        cloud.nats.start()  # same port, same store
        rows = cloud.settled(30)
        assert sorted(r["uuid"] for r in rows) == sorted(asked)
        assert Counter(r["state"] for r in rows) == {"active": 20}
        invariants.check(cloud.db)
        _no_double_boot(cloud)


def test_agent_killed_with_claims_in_hand(database_url: str, tmp_path: Path) -> None:
    settings = {"PULL_HEARTBEAT_TIMEOUT_S": "2", "PULL_ACK_WAIT_S": "2"}
    with pull_cloud(database_url, tmp_path, **settings) as cloud:
        cloud.flavor("f.small", FLAVOR)
        slow = cloud.agent("slow", 3, 120)  # its instances stay claimed: booting
        asked = [u for _ in range(6) for u in cloud.request("f.small", 2)]
        slow_hosts = cloud.hosts("slow-")
        wait_for(lambda: len(_claimed_on(cloud, slow_hosts)) == 12, 20, "slow's 12 claims")
        cloud.agent("fast", 4, 0.2)
        asked += [u for _ in range(2) for u in cloud.request("f.small", 2)]
        slow.process.kill()  # SIGKILL: no nak, no shutdown
        assert slow.process.wait(10) == -9
        rows = cloud.settled(30)
        assert sorted(r["uuid"] for r in rows) == sorted(asked)
        assert Counter(r["state"] for r in rows) == {"active": 16}
        assert {r["host"] for r in rows} <= cloud.hosts("fast-")
        assert sum(r["attempt"] >= 1 for r in rows) == 12  # the dead host's, requeued once
        invariants.check(cloud.db)
        assert not any(invariants.allocation_hosts(cloud.db).get(r["uuid"], set()) & slow_hosts
                       for r in rows)  # fmt: skip
        _, actives = cloud.boots()
        assert max(actives.values()) == 1


async def _republish(url: str, cloud: Cloud, rows: list[dict], tag: str) -> None:
    """Publish every instance's work message again under another Nats-Msg-Id."""
    queue = cloud.http.get("/scheduler/pull/queues", headers=SCHEDULER).json()["queues"][0]
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for row in rows:
            body = {
                "instance": row["uuid"], "request": "dup", "queue": queue["name"],
                "attempt": row["attempt"], "resources": queue["resources"],
                "required": queue["required"], "forbidden": queue["forbidden"],
                "project_id": row["project_id"], "user_id": "u1", "server_group": None,
            }  # fmt: skip
            headers = {"Nats-Msg-Id": f"{row['uuid']}:{tag}"}
            await js.publish(queue["subject"], orjson.dumps(body), headers=headers)
    finally:
        await nc.close()


def test_duplicate_delivery_boots_once(database_url: str, tmp_path: Path) -> None:
    with pull_cloud(database_url, tmp_path, PULL_ACK_WAIT_S="2") as cloud:
        cloud.flavor("f.small", FLAVOR)
        agents = [cloud.agent(name, 3, 1.0) for name in ("d1", "d2")]
        for _ in range(5):
            cloud.request("f.small", 2)
        wait_for(lambda: any(r["state"] == "claimed" for r in cloud.instances()), 20, "claims")
        asyncio.run(_republish(cloud.nats.url, cloud, cloud.instances(), "dup-booting"))
        rows = cloud.settled(30)
        asyncio.run(_republish(cloud.nats.url, cloud, rows, "dup-late"))
        # 20 duplicates: each one claimed is answered taken (the stats line comes every 0.3 s)
        wait_for(
            lambda: sum(a.stats().get("taken", 0) for a in agents) >= 20,
            20,
            "every duplicate answered taken",
        )
        assert Counter(r["state"] for r in cloud.instances()) == {"active": 10}
        invariants.check(cloud.db)
        boots, actives = cloud.boots()
        assert set(boots.values()) == {1} and set(actives.values()) == {1}, (boots, actives)
        assert len(boots) == 10


@pytest.mark.parametrize("mode", ["stall", "no-ack"])
def test_agent_that_never_acks(database_url: str, tmp_path: Path, mode: str) -> None:
    settings = {"PULL_ACK_WAIT_S": "2", "PULL_CLAIM_TIMEOUT_S": "3"}
    with pull_cloud(database_url, tmp_path, **settings) as cloud:
        cloud.flavor("f.small", FLAVOR)
        queue = cloud.http.get("/scheduler/pull/queues", headers=SCHEDULER).json()["queues"][0]
        rogue = Rogue(str(cloud.http.base_url), cloud.nats.url, queue["name"], mode)
        rogue.start()
        cloud.stack.callback(rogue.stop)
        asked = [u for _ in range(3) for u in cloud.request("f.small", 2)]
        wait_for(lambda: rogue.claimed, 20, "the rogue to claim")
        cloud.agent("good", 3, 0.2)
        asked += [u for _ in range(3) for u in cloud.request("f.small", 2)]
        started = time.monotonic()
        rows = cloud.settled(30)
        print(f"never-acks {mode}: settled in {time.monotonic() - started:.1f} s")
        assert rogue.alive  # heartbeating and claiming all along
        assert sorted(r["uuid"] for r in rows) == sorted(asked)
        invariants.check(cloud.db)
        _no_double_boot(cloud)
        on_rogue = [r for r in rows if r["uuid"] in rogue.claimed]
        assert on_rogue
        if mode == "stall":  # claimed and never confirmed: failed, its allocation gone
            assert {r["state"] for r in on_rogue} == {"failed"}, on_rogue
            assert all("without becoming active" in r["reason"] for r in on_rogue)
        else:  # confirmed active: it stays on the rogue's host whatever JetStream redelivers
            assert {(r["state"], r["host"]) for r in on_rogue} == {("active", rogue.host)}
        others = [r for r in rows if r["uuid"] not in rogue.claimed]
        assert {r["state"] for r in others} == {"active"}
