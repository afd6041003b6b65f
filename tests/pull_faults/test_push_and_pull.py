"""Issue 13 item 6: push (select_destinations) and pull on one cloud at the same time.

One agent runs 6 hosts of 4 slots (24); while select_destinations clients
(project ``push``) place one instance per call until they are refused, pull
requests (project ``pull``) ask for more than the whole cloud.  The agent's
in-memory usage goes stale under the push claims (its claims answered
``full`` make it re-read).  At the end the cloud is exactly full, nothing is
over capacity, every pull instance is active or failed with a reason, and
each project's quota usage is its allocations plus its live reservations.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.pull_faults import invariants
from tests.pull_faults.cloud import pull_cloud

pytestmark = pytest.mark.slow

FLAVOR = {"VCPU": 2, "MEMORY_MB": 2048, "DISK_GB": 10}  # 4 to a host
HOSTS, SLOTS = 6, 24
PUSH_CLIENTS = 2


def _push(base: str, placed: dict[str, str], statuses: Counter[int]) -> None:
    """select_destinations one instance at a time until three refusals in a row."""
    refused = 0
    with httpx.Client(base_url=base, headers={"x-auth-token": "admin"}, timeout=60) as http:
        while refused < 3:
            body = {
                "flavor": {"resources": FLAVOR},
                "num_instances": 1,
                "project_id": "push",
                "instance_uuids": [str(uuid.uuid4())],
            }
            got = http.post("/scheduler/select_destinations", json=body)
            statuses[got.status_code] += 1
            if got.status_code == 200:
                refused = 0
                for s in got.json()["selections"]:
                    placed[s["instance_uuid"]] = s["host"]["uuid"]
            else:
                refused += 1


def test_push_and_pull_fill_one_cloud(database_url: str, tmp_path: Path) -> None:
    with pull_cloud(database_url, tmp_path, workers=2, PULL_REQUEST_TIMEOUT_S="8") as cloud:
        cloud.flavor("pp.small", FLAVOR)
        cloud.agent("pp", HOSTS, 0.1)
        placed: dict[str, str] = {}
        statuses: Counter[int] = Counter()
        base = str(cloud.http.base_url)
        clients = [
            threading.Thread(target=_push, args=(base, placed, statuses))
            for _ in range(PUSH_CLIENTS)
        ]
        for client in clients:
            client.start()
        for _ in range(14):  # 28 instances: more than the cloud
            cloud.request("pp.small", 2, project="pull")
        for client in clients:
            client.join(120)
        rows = cloud.settled(30)
        assert set(statuses) <= {200, 409}, statuses
        states = Counter(r["state"] for r in rows)
        print(f"push+pull: push {dict(statuses)}, pull {dict(states)}")
        assert states["active"] + len(placed) == SLOTS  # full, and never more
        assert states["active"] > 0 and placed, (states, placed)
        invariants.check(cloud.db, push={"push": len(placed)})
        held = invariants.allocation_hosts(cloud.db)
        assert {c: next(iter(h)) for c, h in held.items() if c in placed} == placed
