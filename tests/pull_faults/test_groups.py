"""Issue 13 item 5: server groups through pull, and what their refusals cost.

Two agents of 3 hosts each (4 slots a host), ``--choice pack``, which sends
every member to the fullest host first: the worst case for anti-affinity.
An affinity group of 4 fills one host; an anti-affinity group of 5 then
lands on the 5 other hosts; an anti-affinity group of 8 cannot be kept on
6 hosts, one of them full: 5 placed, 3 failed at the (shortened) request
timeout.  The refusals (claims answered ``group``) are counted from the
agents' stats and the server's ``berth_pull_claims_total`` and printed
(``pytest -s``): docs/pull.md, "Groups", quotes them.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.pull_faults import invariants
from tests.pull_faults.cloud import Cloud, pull_cloud, wait_for

pytestmark = pytest.mark.slow

FLAVOR = {"VCPU": 2, "MEMORY_MB": 2048, "DISK_GB": 10}  # 4 to a host
TIMEOUT_S = 10


def _place(cloud: Cloud, count: int, policy: str) -> tuple[list[dict], float, int]:
    """A group request, waited for until none of it is queued or claimed: its rows, the
    seconds it took and the group refusals it cost."""
    refused = _refusals(cloud)
    started = time.monotonic()
    uuids = set(cloud.request("g.small", count, server_group=cloud.group(policy)))

    def mine() -> list[dict] | None:
        rows = [r for r in cloud.instances() if r["uuid"] in uuids]
        return rows if all(r["state"] in ("active", "failed") for r in rows) else None

    rows = wait_for(mine, TIMEOUT_S + 15, f"the {policy} group to settle")
    return rows, time.monotonic() - started, _refusals(cloud) - refused


def _refusals(cloud: Cloud) -> int:
    return sum(a.stats().get("group", 0) for a in cloud.agents.values())


def test_groups_kept_by_refusals(database_url: str, tmp_path: Path) -> None:
    settings = {"PULL_REQUEST_TIMEOUT_S": str(TIMEOUT_S)}
    with pull_cloud(database_url, tmp_path, **settings) as cloud:
        cloud.flavor("g.small", FLAVOR)
        for name in ("ga", "gb"):
            cloud.agent(name, 3)
        report = []

        rows, took, refused = _place(cloud, 4, "affinity")
        assert {r["state"] for r in rows} == {"active"}
        assert len({r["host"] for r in rows}) == 1
        report.append(("affinity", 4, 4, refused, took))

        rows, took, refused = _place(cloud, 5, "anti-affinity")
        assert {r["state"] for r in rows} == {"active"}
        assert len({r["host"] for r in rows}) == 5
        report.append(("anti-affinity", 5, 5, refused, took))

        rows, took, refused = _place(cloud, 8, "anti-affinity")
        states = Counter(r["state"] for r in rows)
        assert states == {"active": 5, "failed": 3}, states
        assert len({r["host"] for r in rows if r["state"] == "active"}) == 5
        assert all("queued for more than" in r["reason"] for r in rows if r["state"] == "failed")
        report.append(("anti-affinity, too many", 8, 5, refused, took))

        metric = cloud.claims_metric()
        assert metric.get("group", 0) == _refusals(cloud) > 0
        invariants.check(cloud.db)
    for policy, asked, placed, refused, took in report:
        print(
            f"groups: {policy} x{asked}: {placed} placed, {refused} group refusals"
            f" ({refused / placed:.1f} per placed instance), {took:.1f} s"
        )
    print(f"groups: berth_pull_claims_total {metric}")
