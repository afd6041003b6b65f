"""``berth bench hosts scale``: 1, 2, 4 ... berth hosts on one database behind HAProxy.

For each host count, on a freshly populated cloud::

    populate (placement-bench's hosts), then start N hosts (multihost.deploy) and the front
    the idle background: CPU of the hosts, the front, the forwarders, the databases
    read   GET /allocation_candidates?limit=50 from client processes through the front
    claims the claims bench's clients through the front (GET candidates + PUT, by default)
    the capacity check; both results written as lines of kind ``scale``

On a 2-core machine the rates stop growing long before the hosts do, so each
line carries the CPU per request of every part: the berth hosts' server
processes summed (``hosts``), HAProxy's front, the database forwarders, the
database servers and the clients.  CPU per request that stays flat from 1 to
4 hosts is what scales on more cores; CPU that grows with the hosts (each
host's change-feed polling, cache refreshes) is what more hosts cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.table import Table

from berth.bench import claims, cost, invariants, multihost
from berth.bench.cli_options import emit
from berth.bench.cloud import from_profile
from berth.bench.populate import populate_target
from berth.bench.progress import clock, timed
from berth.bench.targets import Target, served_settings

Parts = dict[str, list[int]]  # name -> root pids whose process trees' CPU is reported
# Hosts log as berth does by default (the deployment's own default is warnings only).
HOST_ENV = {"BERTH_LOG_LEVEL": "INFO"}


@dataclass(frozen=True)
class ScalePlan:
    """What ``hosts scale`` runs: host counts, the cloud, the two workloads."""

    database_url: str
    counts: tuple[int, ...] = (1, 2, 4)
    workers: int = 1  # BERTH_WORKERS of each host
    hosts: int = 10000  # the cloud
    seconds: float = 20.0  # each workload, each host count
    clients: int = 4  # read: client processes
    threads: int = 2  # read: threads each
    claim_workers: int = 8  # claims: client processes
    mode: str = "placement"
    strategy: str = "pack"
    partitioning: str = "none"
    limit: int = 50
    idle: float = 10.0  # seconds of the idle deployment measured first

    def settings(self, count: int, workload: str) -> dict[str, Any]:
        """A result line's settings."""
        if workload == "read":
            clients = f"{self.clients}x{self.threads}"
        else:
            clients = f"{self.claim_workers} {self.mode} {self.strategy}/{self.partitioning}"
        return {"workload": workload, "berth_hosts": count, "workers_per_host": self.workers,
                "hosts": self.hosts, "seconds": self.seconds, "limit": self.limit,
                "clients_label": clients, "idle_s": self.idle}  # fmt: skip


def parts_of(run: multihost.Deployment) -> Parts:
    """The process trees whose CPU each line reports: hosts, front, forwarders."""
    front = [run.front.pid] if run.front is not None else []
    return {
        "hosts": [h.server.pid for h in run.hosts if h.server is not None],
        "front": front,
        "forwarders": [h.forwarder.pid for h in run.hosts],
    }


def conditions(plan: ScalePlan, count: int) -> dict[str, Any]:
    """What every line of ``count`` hosts ran under."""
    db = plan.database_url.split(":", 1)[0].split("+", 1)[0]
    return {"target": "hosts", "kind": "berth-http", "db": db, "server": "granian",
            "server_workers": plan.workers, "berth_hosts": count,
            "settings": served_settings(plan.database_url, plan.workers, HOST_ENV)}  # fmt: skip


def read(plan: ScalePlan, run: multihost.Deployment, meter: cost.Meter) -> dict[str, Any]:
    """GET /allocation_candidates through the front for ``plan.seconds``."""
    assert run.front_url is not None
    work = cost.Workload(run.front_url, "candidates", plan.hosts, plan.clients, plan.threads,
                         10**9, plan.seconds, plan.limit)  # fmt: skip
    with clock(f"read, {len(run.hosts)} hosts", plan.seconds) as advance:
        result = cost.run(work, meter, advance)
    result.pop("consumers")
    result["rate"] = result["requests_per_s"]
    return result


def claim(plan: ScalePlan, run: multihost.Deployment, parts: Parts) -> dict[str, Any]:
    """The claims bench's clients through the front; CPU per claim of every part."""
    assert run.front_url is not None
    target = Target("hosts", "berth-http", run.front_url, plan.database_url)
    work = claims.ClaimsPlan(target, plan.mode, plan.strategy, plan.partitioning,
                             plan.claim_workers, plan.seconds, limit=plan.limit,
                             cpu_time=True)  # fmt: skip
    with timed(f"claims, {len(run.hosts)} hosts", plan.seconds) as advance:
        result = claims.run(work, advance, parts)
    result.update(invariants.check(None, plan.database_url))
    for key in [k for k in result if k.endswith("_cpu_ms_per_claim")]:
        result[key.replace("_per_claim", "_per_request")] = result[key]
    result["rate"] = result["claims_per_s"]
    result["errors"] = result["server_errors"]
    return result


def one_count(plan: ScalePlan, count: int, out: str) -> list[dict[str, Any]]:
    """Populate, start ``count`` hosts, measure both workloads, write their lines."""
    multihost.migrate(plan.database_url)
    cloud = Target("hosts", "berth-http", database_url=plan.database_url)
    populate_target(cloud, from_profile("placement-bench", plan.hosts), show=False)
    found = []
    with multihost.deploy([plan.database_url], count, plan.workers, HOST_ENV) as run:
        parts = parts_of(run)
        meter = cost.Meter(parts)
        meter.baseline(plan.idle)
        shown = Target("hosts", "berth-http", run.front_url or "", plan.database_url)
        for workload in ("read", "claims"):
            result = read(plan, run, meter) if workload == "read" else claim(plan, run, parts)
            result["idle_per_s"] = {k: round(v, 4) for k, v in meter.idle.items()}
            emit(out, "scale", shown, plan.settings(count, workload), result,
                 conditions(plan, count))  # fmt: skip
            found.append({"workload": workload, "berth_hosts": count, **result})
    return found


def run_all(plan: ScalePlan, out: str) -> list[dict[str, Any]]:
    """Every host count in turn; the results."""
    found = []
    for count in plan.counts:
        found += one_count(plan, count, out)
    return found


TABLE = (("rate", "req/s or claims/s"), ("hosts_cpu_ms_per_request", "berth CPU ms"),
         ("front_cpu_ms_per_request", "HAProxy CPU ms"),
         ("database_cpu_ms_per_request", "DB CPU ms"),
         ("client_cpu_ms_per_request", "client CPU ms"), ("p99_ms", "p99 ms"),
         ("errors", "errors"))  # fmt: skip


def table(found: list[dict[str, Any]]) -> Table:
    """The runs side by side: rate and CPU per request per host count."""
    shown = Table("workload", "berth hosts", *(label for _, label in TABLE), title="hosts scale")
    for r in found:
        cells = [_cell(r.get(field)) for field, _ in TABLE]
        shown.add_row(r["workload"], str(r["berth_hosts"]), *cells)
    return shown


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if isinstance(value, float) else str(value)
