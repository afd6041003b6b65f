"""Many clients writing through several worker processes at once.

The reference answers 500 "database is locked" to a share of writes on SQLite
with several workers; berth must answer every write with 2xx or a clean 409,
and never over-allocate.  Runs against a real server (4 gunicorn workers) on
each database.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from conftest import BACKENDS, server_database_url
from server import running_berth

HEADERS = {"x-auth-token": "admin", "openstack-api-version": "placement 1.39"}
CLIENTS = 8
SECONDS = 6.0
PROVIDERS = 3
VCPU_TOTAL = 16


def setup(http: httpx.Client, vcpu: int = VCPU_TOTAL) -> list[str]:
    """PROVIDERS providers with ``vcpu`` VCPU and 256 MB of memory per VCPU; their uuids."""
    uuids = []
    for i in range(PROVIDERS):
        rp = str(uuid.uuid4())
        r = http.post("/resource_providers", json={"name": f"rp{i}-{rp}", "uuid": rp})
        assert r.status_code == 200, r.text
        r = http.put(
            f"/resource_providers/{rp}/inventories",
            json={
                "resource_provider_generation": 0,
                "inventories": {"VCPU": {"total": vcpu}, "MEMORY_MB": {"total": 256 * vcpu}},
            },
        )
        assert r.status_code == 200, r.text
        uuids.append(rp)
    return uuids


def _writer(
    base: str,
    providers: list[str],
    seed: int,
    statuses: Counter[int],
    live: list[str],
    seconds: float,
) -> None:
    rng = random.Random(seed)
    consumers: list[str] = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base, headers=HEADERS, timeout=60) as http:
        while time.monotonic() < deadline:
            if consumers and rng.random() < 0.3:
                r = http.delete(f"/allocations/{consumers.pop(rng.randrange(len(consumers)))}")
            else:
                consumer = str(uuid.uuid4())
                rp = rng.choice(providers)
                body = {
                    "allocations": {
                        rp: {"resources": {"VCPU": rng.randint(1, 4), "MEMORY_MB": 128}}
                    },
                    "project_id": "p",
                    "user_id": "u",
                    "consumer_generation": None,
                    "consumer_type": "INSTANCE",
                }
                r = http.put(f"/allocations/{consumer}", json=body)
                if r.status_code == 204:
                    consumers.append(consumer)
            statuses[r.status_code] += 1
    live.extend(consumers)


def run_writers(
    bases: list[str], providers: list[str], seconds: float = SECONDS, clients: int = CLIENTS
) -> tuple[Counter[int], list[str]]:
    """``clients`` writers for ``seconds``, client i through ``bases[i % len(bases)]``.

    Returns the statuses answered and the consumers written and not deleted.
    """
    statuses: Counter[int] = Counter()
    live: list[str] = []
    threads = [
        threading.Thread(
            target=_writer,
            args=(bases[seed % len(bases)], providers, seed, statuses, live, seconds),
        )
        for seed in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses, live


def check(base: str, providers: list[str], live: list[str]) -> None:
    """Usage within capacity, and every acknowledged write that was not deleted is there."""
    with httpx.Client(base_url=base, headers=HEADERS, timeout=60) as http:
        for rp in providers:
            usage = http.get(f"/resource_providers/{rp}/usages").json()["usages"]
            assert usage.get("VCPU", 0) <= VCPU_TOTAL
        for consumer in live:
            allocations = http.get(f"/allocations/{consumer}").json()["allocations"]
            assert allocations, consumer


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_writes_never_fail_or_overcommit(backend: str, tmp_path: Path) -> None:
    """8 clients, 4 workers: only 2xx and 409, and usage within capacity."""
    url = server_database_url(backend)
    with running_berth(url, workers=4, log_path=str(tmp_path / "server.log")) as base:
        with httpx.Client(base_url=base, headers=HEADERS, timeout=60) as http:
            providers = setup(http)
        statuses, live = run_writers([base], providers)
        assert sum(statuses.values()) > 50
        assert set(statuses) <= {204, 409}, statuses
        check(base, providers, live)
