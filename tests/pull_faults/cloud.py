"""A whole pull cloud for fault tests: a private NATS, ``berth serve``, agent processes.

:func:`pull_cloud` starts a private ``nats-server`` (its store in the test's
tmp dir, so it can be stopped and started again with the same store),
``berth serve`` on the given database with the pull settings the test
shortens, and hands back a :class:`Cloud` that starts agents (each with
``--boot-log`` into one shared file) and stops all of it, last started
first, also when the test fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from berth.bench.launch import die_with_parent
from berth.db.engine import Database
from tests.helpers import wait_for
from tests.pull.conftest import NatsServer, free_port
from tests.server import ROOT, running_berth

SCHEDULER = {"x-auth-token": "admin", "openstack-api-version": "scheduler 1.2"}
PLACEMENT = {"x-auth-token": "admin", "openstack-api-version": "placement 1.39"}
# Every test shortens these; a test overrides what it needs.
FAST = {
    "BERTH_PULL_SWEEP_INTERVAL_S": "0.3",
    "BERTH_PULL_REQUEST_TIMEOUT_S": "20",
    "BERTH_PULL_ACK_WAIT_S": "5",
    "BERTH_PULL_HEARTBEAT_TIMEOUT_S": "30",
    "BERTH_NATS_RETRY_S": "0.5",
    "BERTH_NATS_TIMEOUT_S": "1",
}


@dataclass
class Agent:
    """A ``berth agent`` process and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stats(self) -> dict[str, int]:
        """The counters of its last stats line (empty before the first)."""
        lines = self.out.read_text().strip().splitlines()
        if not lines:
            return {}
        pairs = (word.split("=", 1) for word in lines[-1].split())
        return {k: int(v) for k, v in pairs if v.isdigit()}

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 20 s; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


@dataclass
class Cloud:
    """berth, its NATS and its agents, as one test sees them."""

    http: httpx.Client
    db: Database
    nats: NatsServer
    tmp: Path
    stack: contextlib.ExitStack
    boot_log: Path
    agents: dict[str, Agent] = field(default_factory=dict)

    def agent(self, name: str, hosts: int, boot_seconds: float = 0.0, *extra: str) -> Agent:
        """Start an agent creating ``hosts`` hosts named ``<name>-NNNNN`` (4 small slots each:
        8 VCPU, 16 GB, 100 GB); it is stopped when the test ends."""
        out, err = self.tmp / f"{name}.out", self.tmp / f"{name}.err"
        args = [
            sys.executable, "-m", "berth.cli", "agent", "--url", str(self.http.base_url),
            "--nats-url", self.nats.url, "--name", name, "--create", str(hosts),
            "--name-prefix", f"{name}-", "--vcpu", "8", "--memory-mb", "16384",
            "--disk-gb", "100", "--heartbeat-seconds", "0.5", "--stats-every", "0.3",
            "--fetch-timeout", "0.3", "--retry-delay", "0.3", "--shutdown-grace", "1",
            "--boot-seconds", str(boot_seconds), "--boot-log", str(self.boot_log), *extra,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT), "BERTH_LOG_JSON": "false"}
        with out.open("wb") as o, err.open("wb") as e:
            proc = subprocess.Popen(
                args, stdout=o, stderr=e, cwd=ROOT, env=env, preexec_fn=die_with_parent()
            )
        agent = Agent(name, proc, out, err)
        self.agents[name] = agent
        self.stack.callback(agent.stop)
        wait_for(lambda: agent.stats().get("hosts") == hosts, 60, f"agent {name} to start")
        return agent

    def flavor(self, name: str, resources: dict[str, int]) -> None:
        """Create a flavor (its queue follows)."""
        body = {"name": name, "resources": resources}
        got = self.http.post("/scheduler/flavors", json=body, headers=SCHEDULER)
        assert got.status_code == 201, got.text

    def group(self, policy: str) -> str:
        """A new server group's uuid."""
        got = self.http.post("/scheduler/server_groups", json={"policy": policy}, headers=SCHEDULER)
        assert got.status_code == 201, got.text
        return str(got.json()["uuid"])

    def request(self, flavor: str, count: int, project: str = "p1", **more: Any) -> list[str]:
        """POST /scheduler/requests (202 expected); the instances' uuids."""
        body = {"flavor": flavor, "count": count, "project_id": project, "user_id": "u1", **more}
        got = self.http.post("/scheduler/requests", json=body, headers=SCHEDULER)
        assert got.status_code == 202, got.text
        return list(got.json()["instances"])

    def instances(self) -> list[dict[str, Any]]:
        """Every pull instance's row (invariants.pull_rows)."""
        from tests.pull_faults.invariants import pull_rows

        return pull_rows(self.db)

    def settled(self, timeout: float) -> list[dict[str, Any]]:
        """Wait until no instance is queued or claimed; the rows."""

        def done() -> list[dict[str, Any]] | None:
            rows = self.instances()
            ended = all(r["state"] in ("active", "failed", "deleted") for r in rows)
            return rows if ended else None

        return wait_for(done, timeout, "every instance active, failed or deleted")

    def hosts(self, prefix: str) -> set[str]:
        """The uuids of the providers whose name starts with ``prefix``."""
        got = self.http.get("/resource_providers", headers=PLACEMENT).json()["resource_providers"]
        return {rp["uuid"] for rp in got if rp["name"].startswith(prefix)}

    def boots(self) -> tuple[Counter[str], Counter[str]]:
        """From the boot log: boots started per instance, and confirmed active per instance."""
        boot: Counter[str] = Counter()
        active: Counter[str] = Counter()
        if self.boot_log.exists():
            for line in self.boot_log.read_text().splitlines():
                event, instance, _host = line.split()
                (boot if event == "boot" else active)[instance] += 1
        return boot, active

    def claims_metric(self) -> dict[str, float]:
        """``berth_pull_claims_total`` by outcome, summed over the server's workers."""
        return self.counter("berth_pull_claims_total", "outcome")

    def counter(self, name: str, label: str) -> dict[str, float]:
        """The counter ``name`` by the value of its ``label``, summed over the workers."""
        text = self.http.get("/metrics").text
        totals: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith(name + "{"):
                value = line.split(f'{label}="', 1)[1].split('"', 1)[0]
                totals[value] = totals.get(value, 0.0) + float(line.split()[-1])
        return totals


@contextlib.contextmanager
def pull_cloud(database_url: str, tmp: Path, workers: int = 1, **settings: str) -> Iterator[Cloud]:
    """NATS, berth on ``database_url`` with FAST settings and ``settings`` (BERTH_* names
    without the prefix, e.g. ``PULL_ACK_WAIT_S="2"``); everything stopped on the way out."""
    with contextlib.ExitStack() as stack:
        nats = NatsServer(free_port(), tmp / "jetstream")
        stack.callback(nats.stop)
        nats.start()
        env = {**FAST, "BERTH_NATS_URL": nats.url}
        env |= {f"BERTH_{k}": v for k, v in settings.items()}
        url = stack.enter_context(running_berth(database_url, workers=workers, env=env))
        http = stack.enter_context(httpx.Client(base_url=url, timeout=30))
        db = Database(database_url)
        stack.callback(db.dispose)
        yield Cloud(http, db, nats, tmp, stack, tmp / "boots.log")
