"""select_destinations through a real server: several gunicorn workers schedule at once.

Each worker process builds its own pipeline and discovers the others through
the ``scheduler_workers`` heartbeat table (consistent hashing).  Clients race
anti-affinity placements through the workers; afterwards nothing is over
capacity, the group rule held, every 200 answer's claim is in the database
and nothing else is, and ``/metrics`` sums the scheduler counters.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest
from server import running_berth

from berth.db.engine import Database
from tests.helpers import over_committed
from tests.scheduler.conftest import consumers_of, write_cloud

HEADERS = {"x-auth-token": "admin"}
CLIENTS = 6
REQUESTS = 25
GROUP = "55555555-0000-0000-0000-000000000001"
BIG = {"VCPU": (64, 0, 1, 64, 1, 1.0), "MEMORY_MB": (65536, 0, 1, 65536, 1, 1.0)}


def _client(base: str, seed: int, placed: dict[str, str], statuses: Counter[int]) -> None:
    with httpx.Client(base_url=base, headers=HEADERS, timeout=60) as http:
        for i in range(REQUESTS):
            body: dict[str, object] = {
                "flavor": {"resources": {"VCPU": 1 + (seed + i) % 3, "MEMORY_MB": 512}},
                "num_instances": 1 + i % 2,
                "project_id": "p",
            }
            if i in (0, 12):  # 2 x 6 clients = 12 members, one per host
                body["server_group"] = {"uuid": GROUP, "policy": "anti-affinity"}
            r = http.post("/scheduler/select_destinations", json=body)
            statuses[r.status_code] += 1
            if r.status_code == 200:
                for s in r.json()["selections"]:
                    placed[s["instance_uuid"]] = s["host"]["uuid"]


@pytest.mark.slow
def test_workers_schedule_concurrently(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'berth.sqlite'}"
    env = {"BERTH_SCHEDULER_PARTITIONING": "consistent", "BERTH_SCHEDULER_INDEX_REFRESH_MS": "50"}
    with running_berth(url, workers=3, env=env) as base:
        db = Database(url)
        write_cloud(db, 12, inventories=BIG)
        placed: dict[str, str] = {}
        statuses: Counter[int] = Counter()
        threads = [
            threading.Thread(target=_client, args=(base, seed, placed, statuses))
            for seed in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        metrics = httpx.get(f"{base}/metrics").text
        group = httpx.get(f"{base}/scheduler/server_groups/{GROUP}", headers=HEADERS).json()
    assert set(statuses) <= {200, 409}, statuses
    assert statuses[200] > CLIENTS * REQUESTS * 0.9, statuses
    assert over_committed(db) == []
    assert consumers_of(db) == placed
    hosts = [m["host"] for m in group["members"]]
    assert len(hosts) == len(set(hosts)) > 1, hosts

    def claims(outcome: str) -> float:
        prefix = f'berth_scheduler_claims_total{{outcome="{outcome}"}}'
        return sum(float(ln.split()[-1]) for ln in metrics.splitlines() if ln.startswith(prefix))

    # An all-or-nothing request whose second instance found no room undoes the first.
    assert claims("claimed") - claims("released") == len(placed)
