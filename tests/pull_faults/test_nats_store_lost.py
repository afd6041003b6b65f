"""Issue 13 item 7: NATS restarted with its JetStream store wiped while requests wait.

The streams, their messages, the queues' consumers, the agents' delete consumers and the
queue bucket are all gone; the database still says 6 instances are queued and published.
berth's sweeper sees the streams made again and the messages missing
(berth/pull/recovery.py): it sends the lost messages again and makes every consumer and key
again.  The agent that ran all along (the only one with disks) goes on with new work, its
deletes and a queue made after the loss (its watcher sees the queue bucket made again:
berth/agent/watch.py); an agent started after the loss places the 6 that waited.  Every
instance ends active or deleted, booted once, and the invariants hold
(tests/pull_faults/invariants.py).
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.pull_faults import invariants
from tests.pull_faults.cloud import SCHEDULER, Cloud, pull_cloud, wait_for

pytestmark = pytest.mark.slow

SMALL = {"VCPU": 2, "MEMORY_MB": 2048, "DISK_GB": 10}  # 4 to a keep host, none to a big one
TINY = {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}  # the same
BIG = {"VCPU": 16, "MEMORY_MB": 2048}  # none to a keep host (8 VCPU), 2 to a big one


def _request(cloud: Cloud, flavor: str, count: int) -> tuple[str, list[str]]:
    """POST /scheduler/requests; its uuid and its instances'."""
    body = {"flavor": flavor, "count": count, "project_id": "p1", "user_id": "u1"}
    got = cloud.http.post("/scheduler/requests", json=body, headers=SCHEDULER)
    assert got.status_code == 202, got.text
    return str(got.json()["uuid"]), list(got.json()["instances"])


def _rows(cloud: Cloud, uuids: list[str], state: str) -> list[dict] | None:
    """The rows of ``uuids`` once all are in ``state`` (and published)."""
    rows = [r for r in cloud.instances() if r["uuid"] in uuids]
    return rows if all(r["state"] == state and r["published"] for r in rows) else None


def test_nats_store_lost_while_requests_wait(database_url: str, tmp_path: Path) -> None:
    with pull_cloud(database_url, tmp_path, PULL_REQUEST_TIMEOUT_S="60") as cloud:
        cloud.flavor("f.small", SMALL)
        cloud.flavor("f.big", BIG)
        cloud.agent("keep", 2, 0.2)
        doomed, placed = _request(cloud, "f.small", 2)
        placed += _request(cloud, "f.small", 2)[1]
        waiting = [u for _ in range(3) for u in _request(cloud, "f.big", 2)[1]]
        wait_for(lambda: _rows(cloud, placed, "active"), 30, "4 small ones active")
        wait_for(lambda: _rows(cloud, waiting, "queued"), 10, "6 big ones queued, published")

        cloud.nats.stop()
        shutil.rmtree(cloud.nats.store)  # every stream, message, consumer and key gone
        cloud.nats.start()
        lost_at = time.monotonic()
        placed += _request(cloud, "f.small", 2)[1]  # the running agent takes new work
        got = cloud.http.delete(f"/scheduler/requests/{doomed}", headers=SCHEDULER)
        assert got.status_code == 202, got.text  # its host's agent must hear of it
        cloud.flavor("f.tiny", TINY)  # a queue the running agent learns of after the loss
        tiny = _request(cloud, "f.tiny", 2)[1]
        cloud.agent("big", 3, 0.2, "--vcpu", "32", "--disk-gb", "0")
        for what, uuids in (("the 6 waiting", waiting), ("2 of a new queue", tiny)):
            wait_for(lambda: _rows(cloud, uuids, "active"), 40, what)  # noqa: B023
            print(f"store lost: {what} active {time.monotonic() - lost_at:.1f} s after")

        rows = cloud.settled(30)
        states = Counter(r["state"] for r in rows if r["request_uuid"] != doomed)
        assert states == {"active": 12}, rows
        gone = [r for r in rows if r["request_uuid"] == doomed]
        gone = wait_for(lambda: _rows(cloud, [r["uuid"] for r in gone], "deleted"), 20, "delete")
        assert {r["reason"] for r in gone} == {"deleted by its host"}  # keep heard of it
        assert {r["host"] for r in rows if r["uuid"] in waiting} <= cloud.hosts("big-")
        assert {r["host"] for r in rows if r["uuid"] not in waiting} <= cloud.hosts("keep-")
        assert all(r["attempt"] == 0 for r in rows)  # sent again, not requeued
        assert cloud.counter("berth_pull_swept_total", "step").get("lost") == 6
        invariants.check(cloud.db)
        boots, actives = cloud.boots()
        assert set(boots.values()) == set(actives.values()) == {1} and len(boots) == 14
