"""End to end: ``berth serve`` + ``berth agent`` (50 hosts) + requests until the cloud is full.

A private NATS server (tests/pull/conftest.py's), berth on SQLite with a
short request timeout, and an agent process that creates its 50 hosts
through Placement.  Requests ask for more than the hosts hold: every
instance must end ``active`` or ``failed`` with a reason, exactly the
capacity's worth active, no provider over capacity; an anti-affinity
request's instances end on three hosts (the agent's pack choice is refused
by the server's group rule, and it tries other hosts); a deleted request's
instances are torn down by the agent and their usage given back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from berth.bench.launch import die_with_parent
from tests.helpers import wait_for
from tests.pull.conftest import NatsServer, free_port
from tests.server import ROOT, running_berth

pytestmark = pytest.mark.slow

HOSTS = 50
PER_HOST = 4  # 8 VCPU / 2; memory (16384 - 1024) / 2048 = 7; disk 100 / 10 = 10
FLAVOR = {"VCPU": 2, "MEMORY_MB": 2048, "DISK_GB": 10}
REQUESTS, COUNT = 25, 10  # 250 instances asked for, 200 fit
SCHEDULER = {"x-auth-token": "admin", "openstack-api-version": "scheduler 1.2"}
PLACEMENT = {"x-auth-token": "admin", "openstack-api-version": "placement 1.39"}


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    server = NatsServer(free_port(), tmp_path / "jetstream")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def berth(nats_url: str) -> Iterator[httpx.Client]:
    env = {
        "BERTH_NATS_URL": nats_url,
        "BERTH_PULL_SWEEP_INTERVAL_S": "0.5",
        "BERTH_PULL_REQUEST_TIMEOUT_S": "20",
        "BERTH_PULL_ACK_WAIT_S": "10",
    }
    with running_berth(env=env) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture
def agent(berth: httpx.Client, nats_url: str, tmp_path: Path) -> Iterator[Path]:
    """The agent process (its stdout file); stopped with SIGTERM, which must exit 0."""
    out, err = tmp_path / "agent.out", tmp_path / "agent.err"
    args = [
        sys.executable, "-m", "berth.cli", "agent", "--url", str(berth.base_url),
        "--nats-url", nats_url, "--name", "e2e", "--create", str(HOSTS), "--name-prefix", "e2e-",
        "--vcpu", "8", "--memory-mb", "16384", "--disk-gb", "100",
        "--heartbeat-seconds", "2", "--stats-every", "0.5", "--fetch-timeout", "0.5",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BERTH_LOG_JSON": "false"}
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            args, stdout=o, stderr=e, cwd=ROOT, env=env, preexec_fn=die_with_parent()
        )
        try:
            yield out
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0, err.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _states(client: httpx.Client, requests: list[str]) -> list[dict[str, Any]]:
    instances = []
    for uuid in requests:
        got = client.get(f"/scheduler/requests/{uuid}", headers=SCHEDULER)
        assert got.status_code == 200, got.text
        instances += got.json()["instances"]
    return instances


def _over_capacity(client: httpx.Client) -> list[str]:
    """Providers whose usage exceeds (total - reserved) * allocation_ratio somewhere."""
    wrong = []
    for rp in client.get("/resource_providers", headers=PLACEMENT).json()["resource_providers"]:
        base = f"/resource_providers/{rp['uuid']}"
        inv = client.get(f"{base}/inventories", headers=PLACEMENT).json()["inventories"]
        used = client.get(f"{base}/usages", headers=PLACEMENT).json()["usages"]
        for rc, n in used.items():
            cap = (inv[rc]["total"] - inv[rc]["reserved"]) * inv[rc]["allocation_ratio"]
            if n > cap:
                wrong.append(f"{rp['name']} {rc} {n} > {cap}")
    return wrong


def test_requests_until_full(berth: httpx.Client, agent: Path) -> None:
    made = berth.post(
        "/scheduler/flavors", json={"name": "e2e.small", "resources": FLAVOR}, headers=SCHEDULER
    )
    assert made.status_code == 201, made.text
    wait_for(lambda: "queues=1/1" in agent.read_text(), 60, "the agent to serve the flavor's queue")

    # Anti-affinity: pack puts all three on one host; the server refuses two (group), the
    # agent naks them and the redeliveries go to hosts that have not refused them.
    group = berth.post(
        "/scheduler/server_groups", json={"policy": "anti-affinity"}, headers=SCHEDULER
    )
    assert group.status_code == 201, group.text
    body = {"flavor": "e2e.small", "count": 3, "project_id": "p1", "user_id": "u1"}
    got = berth.post(
        "/scheduler/requests",
        json={**body, "server_group": group.json()["uuid"]},
        headers=SCHEDULER,
    )
    assert got.status_code == 202, got.text
    grouped = wait_for(
        lambda: (
            (i := _states(berth, [got.json()["uuid"]]))
            and all(x["state"] == "active" for x in i)
            and i
        ),
        60,
        "the anti-affinity instances to be active",
    )
    assert len({x["host"] for x in grouped}) == 3
    assert " group=0 " not in _last(agent)

    requests = [got.json()["uuid"]]
    for _ in range(REQUESTS):
        body = {"flavor": "e2e.small", "count": COUNT, "project_id": "p1", "user_id": "u1"}
        got = berth.post("/scheduler/requests", json=body, headers=SCHEDULER)
        assert got.status_code == 202, got.text
        requests.append(got.json()["uuid"])

    def settled() -> list[dict[str, Any]] | None:
        instances = _states(berth, requests)
        done = all(i["state"] in ("active", "failed") for i in instances)
        return instances if done else None

    instances = wait_for(settled, 120, "every instance active or failed")
    states = Counter(i["state"] for i in instances)
    asked = REQUESTS * COUNT + 3
    assert states == {"active": HOSTS * PER_HOST, "failed": asked - HOSTS * PER_HOST}
    assert all(i["reason"] for i in instances if i["state"] == "failed")
    assert all(i["host"] for i in instances if i["state"] == "active")
    per_host = Counter(i["host"] for i in instances if i["state"] == "active")
    assert len(per_host) == HOSTS and set(per_host.values()) == {PER_HOST}
    assert _over_capacity(berth) == []

    # A delete: the agent tears the instances down and confirms; their usage is given back.
    victim = next(r for r in requests if any(i["state"] == "active" for i in _states(berth, [r])))
    hosts = {i["host"] for i in _states(berth, [victim]) if i["state"] == "active"}
    assert berth.delete(f"/scheduler/requests/{victim}", headers=SCHEDULER).status_code == 202
    wait_for(
        lambda: all(i["state"] in ("deleted", "failed") for i in _states(berth, [victim])),
        60,
        "the deleted request's instances to be deleted",
    )
    for host in hosts:
        used = berth.get(f"/resource_providers/{host}/usages", headers=PLACEMENT).json()
        assert used["usages"]["VCPU"] < PER_HOST * FLAVOR["VCPU"]
    wait_for(
        lambda: " deleted=" in agent.read_text() and "deleted=0 " not in _last(agent), 10, "stats"
    )


def _last(path: Path) -> str:
    lines = path.read_text().strip().splitlines()
    return lines[-1] if lines else ""
