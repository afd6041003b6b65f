"""Issue 13 item 7: a message held past ``ack_wait`` is delivered again, and its first
holder comes back late.

A rogue agent (tests/pull_faults/rogue.py, ``hold`` mode) fetches 4 messages and sits on
them: no claim, no ack, no in-progress ack.  After ``ack_wait`` JetStream delivers them
to the good agent, whose hosts claim and boot them.  Then the rogue claims them late and
acks its stale deliveries: once the redelivered copies are active, and once while they
are still booting.  Either way the late claims are answered ``taken``, each instance is
booted once, on a good host, and the invariants hold (tests/pull_faults/invariants.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.pull_faults import invariants
from tests.pull_faults.cloud import SCHEDULER, Cloud, pull_cloud, wait_for
from tests.pull_faults.rogue import Rogue

pytestmark = pytest.mark.slow

FLAVOR = {"VCPU": 2, "MEMORY_MB": 2048, "DISK_GB": 10}  # 4 to a host
HELD = 4


@contextmanager
def _held(database_url: str, tmp_path: Path, boot_seconds: float) -> Iterator[tuple[Cloud, Rogue]]:
    """A cloud whose rogue holds the first 4 instances' messages, and a good agent of 3
    hosts (``boot_seconds`` each boot) started after it took them; 4 more asked then."""
    with pull_cloud(database_url, tmp_path, PULL_ACK_WAIT_S="2") as cloud:
        cloud.flavor("f.small", FLAVOR)
        queue = cloud.http.get("/scheduler/pull/queues", headers=SCHEDULER).json()["queues"][0]
        rogue = Rogue(str(cloud.http.base_url), cloud.nats.url, queue["name"], "hold", HELD)
        rogue.start()
        cloud.stack.callback(rogue.stop)
        asked = [u for _ in range(2) for u in cloud.request("f.small", 2)]
        wait_for(lambda: len(rogue.held) == HELD, 20, "the rogue to hold 4 messages")
        assert rogue.held == set(asked)
        cloud.agent("good", 3, boot_seconds)
        for _ in range(2):
            cloud.request("f.small", 2)
        yield cloud, rogue


def _held_rows(cloud: Cloud, rogue: Rogue, state: str) -> list[dict] | None:
    rows = [r for r in cloud.instances() if r["uuid"] in rogue.held]
    return rows if {r["state"] for r in rows} == {state} else None


def _check_after(cloud: Cloud, rogue: Rogue) -> None:
    """Every instance active on a good host, booted once; the rogue's host holds nothing."""
    rows = cloud.settled(30)
    assert Counter(r["state"] for r in rows) == {"active": 8}
    assert {r["host"] for r in rows} <= cloud.hosts("good-")
    assert all(r["attempt"] == 0 for r in rows)  # nothing requeued: only redelivered
    invariants.check(cloud.db)
    boots, actives = cloud.boots()
    assert set(boots.values()) == set(actives.values()) == {1} and len(boots) == 8, boots
    held = invariants.allocation_hosts(cloud.db)
    assert not any(rogue.host in hosts for hosts in held.values())
    assert rogue.alive and not rogue.claimed


def test_late_holder_after_the_redelivery_is_active(database_url: str, tmp_path: Path) -> None:
    with _held(database_url, tmp_path, 0.2) as (cloud, rogue):
        rows = wait_for(lambda: _held_rows(cloud, rogue, "active"), 30, "held ones active")
        assert {r["host"] for r in rows} <= cloud.hosts("good-")  # delivered again, placed
        rogue.claim_late()
        wait_for(lambda: len(rogue.late) == HELD, 20, "the rogue's late claims")
        assert set(rogue.late.values()) == {"taken"}, rogue.late
        _check_after(cloud, rogue)


def test_late_holder_while_the_redelivery_boots(database_url: str, tmp_path: Path) -> None:
    with _held(database_url, tmp_path, 6.0) as (cloud, rogue):
        wait_for(lambda: _held_rows(cloud, rogue, "claimed"), 30, "held ones claimed again")
        rogue.claim_late()  # claims, then acks its stale deliveries, mid-boot
        wait_for(lambda: len(rogue.late) == HELD, 20, "the rogue's late claims")
        assert set(rogue.late.values()) == {"taken"}, rogue.late
        assert _held_rows(cloud, rogue, "claimed")  # still booting when the rogue acked
        _check_after(cloud, rogue)
        good = cloud.agents["good"]
        wait_for(lambda: good.stats().get("placed") == 8, 10, "the good agent's stats line")
        assert good.stats().get("taken", 0) == 0  # no third delivery reached it
