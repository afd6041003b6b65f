"""Schedulers on different berth hosts share the cloud out by consistent hashing.

Each host runs one worker with ``scheduler_partitioning=consistent`` and
strict partitions (``scheduler_partition_fallback=false``), so the hosts a
worker takes as its own are visible: a dry run with 50 alternates and no
scan limit lists every one of them that fits (:func:`partition_seen`).  The
members are the live rows of ``scheduler_workers``, named after the host's
namespace (``bmh<slot>-<i>:<pid>:...``); a member silent for three
heartbeats (here 1 s each) has left.

One deployment, two steps:

* A host that joins takes about a third of the 45 compute hosts from the two
  already there, and only from them (nothing moves between those two).
* Then a host is killed with SIGKILL while clients place instances through
  all three: the two others take its share over within the heartbeat timeout
  of its last heartbeat (plus a beat to notice, plus slack for a busy
  machine), and afterwards no
  compute host is over capacity, every acknowledged placement holds exactly
  the allocation it was answered with, and no instance is placed twice.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from berth.bench import multihost, netns
from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.db.tables import SCHED_WORKER
from berth.scheduler.partition import Ring
from tests.helpers import over_committed, wait_for
from tests.multihost.cloud import allocations_by_consumer, client, create_provider, select_body

pytestmark = pytest.mark.namespaces

HEARTBEAT = 1
TIMEOUT = 3 * HEARTBEAT  # silent this long: left (berth/scheduler/partition.py)
REPLICAS = 64
ENV = {
    "BERTH_SCHEDULER_PARTITIONING": "consistent",
    "BERTH_SCHEDULER_WORKER_HEARTBEAT": str(HEARTBEAT),
    "BERTH_SCHEDULER_HASH_REPLICAS": str(REPLICAS),
    "BERTH_SCHEDULER_PARTITION_FALLBACK": "false",
    "BERTH_SCHEDULER_SCAN_LIMIT": "0",
}
COMPUTE_HOSTS = 45
# Room for every placement the clients make: a full host would drop out of the dry runs.
VCPU = 4096
# From the victim's last heartbeat: the timeout, a beat for a survivor to notice (it
# counts the members as it heartbeats), and slack for a busy 2-core machine.
TAKEOVER_LIMIT = TIMEOUT + HEARTBEAT + 4.0


def partition_seen(http: httpx.Client) -> set[str]:
    """The compute hosts this berth host's scheduler takes as its own (and that fit)."""
    body = select_body(str(uuid.uuid4()), dry_run=True, alternates=50)
    r = http.post("/scheduler/select_destinations", json=body)
    if r.status_code == 409:
        return set()
    assert r.status_code == 200, r.text
    chosen = r.json()["selections"][0]
    return {chosen["host"]["uuid"], *(alt["host"]["uuid"] for alt in chosen["alternates"])}


def live_members(db: Database) -> list[str]:
    """The live scheduler workers, as the workers themselves count them."""
    since = utcnow() - timedelta(seconds=TIMEOUT)
    with db.read() as conn:
        rows = conn.execute(select(SCHED_WORKER.c.name).where(SCHED_WORKER.c.heartbeat_at >= since))
        return sorted(rows.scalars())


def last_beat(db: Database, namespace: str) -> datetime:
    """When the scheduler worker of the host in ``namespace`` last heartbeat."""
    with db.read() as conn:
        rows = conn.execute(select(SCHED_WORKER.c.name, SCHED_WORKER.c.heartbeat_at)).all()
    return max(at for name, at in rows if name.startswith(f"{namespace}:"))


def agreed(
    run: multihost.Deployment, hosts: list[int], db: Database, cloud: set[str]
) -> dict[int, set[str]] | None:
    """Each host's partition, when the hosts' views match the ring of the live members and
    cover the cloud between them; None while they do not (yet)."""
    seen = {}
    for i in hosts:  # a worker heartbeats (joins) as it schedules: ask first
        with client(run.urls[i]) as http:
            seen[i] = partition_seen(http)
    members = live_members(db)
    named = {m.split(":", 1)[0]: m for m in members}
    if sorted(named) != sorted(run.plan.namespace(i) for i in hosts):
        return None
    ring = Ring(members, REPLICAS)
    for i in hosts:
        if seen[i] != {h for h in cloud if ring.owner(h) == named[run.plan.namespace(i)]}:
            return None
    return seen if set().union(*seen.values()) == cloud else None


@dataclass
class Placements:
    """What the clients sent and were answered, while one host gets killed."""

    answered: dict[str, tuple[int, int, Any]] = field(default_factory=dict)  # 200 and 4xx/5xx
    lost: dict[str, int] = field(default_factory=dict)  # sent, no answer: host index
    refused: int = 0  # connections refused (the host is gone): nothing sent
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def place(self, run: multihost.Deployment, host: int) -> None:
        """One client: one instance at a time through ``host`` until told to stop."""
        with client(run.urls[host], timeout=60) as http:
            while not self.stop.is_set():
                instance = str(uuid.uuid4())
                try:
                    r = http.post("/scheduler/select_destinations", json=select_body(instance))
                except httpx.ConnectError:
                    with self.lock:
                        self.refused += 1
                    time.sleep(0.05)
                    continue
                except httpx.TransportError:
                    with self.lock:
                        self.lost[instance] = host
                    continue
                body = r.json() if r.status_code == 200 else r.text
                with self.lock:
                    self.answered[instance] = (host, r.status_code, body)

    def statuses(self, host: int) -> Counter[int]:
        """The statuses ``host`` answered."""
        with self.lock:
            return Counter(s for h, s, _ in self.answered.values() if h == host)


def check_placements(placements: Placements, db: Database, cloud: set[str]) -> int:
    """No host over capacity; every acknowledged placement exactly its allocation; nothing
    placed twice or placed that nobody asked for.  The count acknowledged."""
    assert over_committed(db) == []
    held = allocations_by_consumer(db)
    acknowledged = 0
    for instance, (_, status, body) in placements.answered.items():
        if status != 200:
            assert instance not in held, (instance, status, body)
            continue
        acknowledged += 1
        chosen = body["selections"][0]
        expected = chosen["allocation_request"]["allocations"]
        assert set(expected) == {chosen["host"]["uuid"]} <= cloud
        assert held.get(instance) == {rp: a["resources"] for rp, a in expected.items()}
    for instance in placements.lost:
        allocation = held.get(instance)
        assert allocation is None or (len(allocation) == 1 and set(allocation) <= cloud)
    assert set(held) <= set(placements.answered) | set(placements.lost)
    return acknowledged


def join(run: multihost.Deployment, db: Database, cloud: set[str]) -> dict[int, set[str]]:
    """Two hosts, then a third: it takes about a third of the cloud, only from the two."""
    before = wait_for(lambda: agreed(run, [0, 1], db, cloud), 30, "two hosts to agree")
    run.add_host()
    started = time.monotonic()
    after = wait_for(lambda: agreed(run, [0, 1, 2], db, cloud), 30, "three hosts to agree")
    took = time.monotonic() - started
    share = len(after[2]) / COMPUTE_HOSTS
    print(
        f"join: host 2 took {len(after[2])} of {COMPUTE_HOSTS} compute hosts ({share:.0%}),"
        f" {len(before[0] - after[0])} from host 0 and {len(before[1] - after[1])} from host 1;"
        f" all three agreed {took:.1f} s after it was ready"
    )
    assert 0.1 <= share <= 0.6
    assert after[0] <= before[0] and after[1] <= before[1]
    return after


def kill_while_placing(
    run: multihost.Deployment, db: Database, cloud: set[str], before: dict[int, set[str]]
) -> None:
    """Clients place through all three hosts; host 1 is killed; the others take its share
    over in time, and nothing is lost or placed twice."""
    victim, survivors = 1, [0, 2]
    placements = Placements()
    clients = [threading.Thread(target=placements.place, args=(run, i % 3)) for i in range(6)]
    for thread in clients:
        thread.start()
    try:
        time.sleep(3.0)  # every host has placed some: the victim has claims in flight
        killed = time.monotonic()
        run.kill(victim)
        try:
            after = wait_for(lambda: agreed(run, survivors, db, cloud), 30, "the takeover")
        except pytest.fail.Exception:
            views = {i: len(partition_seen(client(run.urls[i]))) for i in survivors}
            left = netns.pids_in(run.plan.namespace(victim))
            pytest.fail(f"no takeover: members {live_members(db)}, views {views}, left {left}")
        takeover = time.monotonic() - killed
        silent = (utcnow() - last_beat(db, run.plan.namespace(victim))).total_seconds()
        time.sleep(1.0)
    finally:
        placements.stop.set()
        for thread in clients:
            thread.join()
    acknowledged = check_placements(placements, db, cloud)
    for i in survivors:
        assert set(placements.statuses(i)) <= {200}, placements.statuses(i)
    print(
        f"kill: host {victim}'s {len(before[victim])} compute hosts taken over"
        f" {takeover:.1f} s after the kill, {silent:.1f} s after its last heartbeat (timeout"
        f" {TIMEOUT} s, heartbeat {HEARTBEAT} s); {acknowledged} placements acknowledged,"
        f" {len(placements.lost)} cut short by the kill, {placements.refused} connections"
        f" refused after it; statuses {[dict(placements.statuses(i)) for i in range(3)]}"
    )
    assert before[victim] <= after[0] | after[2]
    assert silent <= TAKEOVER_LIMIT


def test_hosts_joining_and_dying_share_the_cloud_out(postgres_url: str) -> None:
    with multihost.deploy([postgres_url], hosts=2, env=ENV, front=False) as run:
        db = Database(postgres_url)
        with client(run.urls[0]) as http:
            cloud = {create_provider(http, VCPU) for _ in range(COMPUTE_HOSTS)}
        try:
            kill_while_placing(run, db, cloud, join(run, db, cloud))
        finally:
            db.dispose()
