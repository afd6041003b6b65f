"""``berth bench pull``: the same fixed request list placed by push and by pull, one line each.

For each host count and design the cloud is placement-bench's, populated
fresh, and ``berth serve`` is started fresh (default settings but for the
strategy's, :mod:`berth.bench.targets`); the list is
:func:`berth.bench.fill.request_list` (the same seed and cloud as ``berth
bench fill``: the same list).

push  ``workers`` scheduler processes call ``POST /scheduler/select_destinations``
      with the list until it is used up or the smallest size finds no host
      (:mod:`berth.bench.claims`, fill mode); latency is each request's.
pull  a private NATS, ``berth agent`` processes running the cloud's hosts
      (boot time 0), one flavor per size and a project limit; enqueuers
      send the list (:mod:`berth.bench.enqueue`), the watcher times each
      instance from its ``POST`` to its settling (:mod:`berth.bench.pull_watch`);
      what no host could take is withdrawn at the end (after the cloud's figures are
      read).

Both lines carry placements/s, the latency percentiles, hosts used and RAM
used at the end, over-capacity providers; pull's also the queues, the NATS
server's memory, the quota checks/s at the reserve step and the pull
invariants (:mod:`berth.bench.pull_checks`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from berth.bench import agents as agents_mod
from berth.bench import enqueue, invariants, procfs, pull_checks, pull_setup, strategies
from berth.bench import fill as fill_mod
from berth.bench.claims import ClaimsPlan
from berth.bench.claims import run as run_claims
from berth.bench.cli_options import emit
from berth.bench.cloud import Topology, build, from_profile
from berth.bench.nats_server import private_nats
from berth.bench.populate import populate_target
from berth.bench.progress import bar
from berth.bench.pull_watch import Watch, watch_run
from berth.bench.records import latency_summary, percentile
from berth.bench.targets import Target, open_target

DESIGNS = ("push", "pull")


@dataclass(frozen=True)
class PullPlan:
    """One ``berth bench pull`` invocation's workload (every run of it shares it)."""

    database_url: str
    server_workers: int = 2
    strategy: str = "pack"  # push: berth's weighers; pull: the agents' --choice
    workers: int = 8  # push: scheduler processes
    enqueuers: int = 2  # pull: enqueuer processes ...
    threads: int = 4  # ... of this many threads each
    window: int = 2000  # pull: instances outstanding at most
    agents: int = 1  # pull: berth agent processes
    projects: int = 1  # pull: the requests go round this many projects (quota scopes)
    batch: int = 1  # pull: list entries per enqueue, one request per size among them
    seed: int = 0
    requests: int = 0  # the list's first N only (0: all of it)
    poll: float = 0.05  # pull: seconds between the watcher's readings
    settle: float = 10.0  # pull: nothing settling this long while blocked: full
    seconds: float = 1800.0  # a run that takes longer stops

    def settings(self, design: str, hosts: int) -> dict[str, Any]:
        """For a result line: the design's own knobs and the shared ones."""
        own = {"push": ("workers",), "pull": ("enqueuers", "threads", "window", "agents",
                                               "projects", "batch", "poll", "settle")}  # fmt: skip
        shared = ("strategy", "seed", "requests", "seconds", "server_workers")
        values = asdict(self)
        return {"design": design, "hosts": hosts, **{k: values[k] for k in (*shared, *own[design])}}


def the_list(plan: PullPlan, topo: Topology) -> bytes:
    """The fixed request list of ``topo`` (its first ``plan.requests`` when given)."""
    sizes = fill_mod.request_list(topo, plan.seed)
    return sizes[: plan.requests] if plan.requests else sizes


def _cloud_end(target: Target) -> dict[str, Any]:
    """What both designs report of the cloud at the end: capacity, hosts and RAM used."""
    found = invariants.check(None, target.database_url)
    found["hosts_used"] = pull_checks.hosts_used(target.database_url)
    found.update(fill_mod.fill_level(target.database_url))
    return found


def _parts(target: Target, **more: Sequence[int]) -> dict[str, Sequence[int]]:
    """The processes whose CPU a run counts: this process's tree (``all``), the server's,
    and ``more`` (NATS's, the agents')."""
    return {"all": [os.getpid()], "server": [target.pid], **more}


def _cpu_per_placed(
    before: Mapping[str, float], after: Mapping[str, float], placed: int
) -> dict[str, Any]:
    """CPU ms per instance placed of each part from ``before`` to ``after``
    (:func:`berth.bench.procfs.cpu_by_part` of :func:`_parts`), and the ceiling it sets.

    ``clients`` is this process's tree less the parts below it: the schedulers or the
    enqueuers, and the watcher.  ``database`` is every database server process here.
    The ceiling is the machine's cores divided by the sum: placements/s if nothing
    else ran and every part's CPU per placement stayed as measured.
    """
    used = {name: after[name] - before[name] for name in after}
    everything = used.pop("all")
    used["clients"] = everything - sum(v for k, v in used.items() if k != "database")
    total = sum(used.values())
    found: dict[str, Any] = {
        f"{name}_cpu_ms_per_placed": round(1000 * v / max(placed, 1), 3)
        for name, v in sorted(used.items())
    }
    found["cpu_ms_per_placed"] = round(1000 * total / max(placed, 1), 3)
    found["cpu_ceiling_per_s"] = round((os.cpu_count() or 1) * placed / total, 1) if total else None
    return found


def run_push(plan: PullPlan, hosts: int, out: str) -> dict[str, Any]:
    """Push: a fresh berth, a fresh cloud, the schedulers fill it with the list; the line."""
    topo = from_profile("placement-bench", hosts)
    sizes = the_list(plan, topo)
    env = strategies.server_env(plan.strategy, "none")
    with open_target("serve", plan.database_url, plan.server_workers, env=env) as target:
        populate_target(target, topo, show=False)
        claims = ClaimsPlan(target, "scheduler", plan.strategy, "none", plan.workers,
                            plan.seconds, seed=plan.seed, fill=sizes)  # fmt: skip
        label = f"pull: push {hosts} hosts W={plan.workers}"
        parts = _parts(target)
        before = procfs.cpu_by_part(parts)
        with bar(label, len(sizes)) as advance:
            found = run_claims(claims, advance)
        cpu = _cpu_per_placed(before, procfs.cpu_by_part(parts), found["placed"])
        result = {
            "design": "push", "placed": found["placed"], "placed_per_s": found["placed_per_s"],
            "seconds": found["seconds"], "requests": found["list_taken"],
            "list_length": found["list_length"], "list_sha256": found["list_sha256"],
            "unplaced": found["unplaced"], "ended": found["ended"],
            "give_ups": found["give_ups"], "conflicts": found["conflicts"],
            "server_errors": found["server_errors"], "p50_ms": found["p50_ms"],
            "p99_ms": found["p99_ms"], "queues": 0, "nats_memory_mb": None,
            "quota_checks_per_s": None, **cpu, **_cloud_end(target),
        }  # fmt: skip
        emit(out, "pull", target, plan.settings("push", hosts), result)
    return result


def _host_groups(plan: PullPlan, topo: Topology) -> dict[str, int]:
    """Name prefix -> host count for each agent (the cloud's hosts split by name)."""
    names = [spec.name for spec in build(topo) if spec.parent is None and spec.inventories]
    chosen = agents_mod.prefixes(names, plan.agents)
    return {p: sum(name.startswith(p) for name in names) for p in chosen}


def run_pull(plan: PullPlan, hosts: int, out: str) -> dict[str, Any]:
    """Pull: a fresh berth, NATS and cloud, the agents, the enqueuers; the line."""
    topo = from_profile("placement-bench", hosts)
    sizes = the_list(plan, topo)
    groups = _host_groups(plan, topo)
    with (
        private_nats() as nats,
        open_target(
            "serve", plan.database_url, plan.server_workers, env={"BERTH_NATS_URL": nats.url}
        ) as target,
    ):
        populate_target(target, topo, show=False)
        transport = target.transport()
        flavors = pull_setup.ensure_flavors(transport)
        pull_setup.set_quotas(transport, plan.projects)
        with agents_mod.running_agents(target.url, nats.url, groups, len(flavors),
                                       plan.strategy) as agents:  # fmt: skip
            parts = _parts(target, nats=[nats.pid], agents=[a.proc.pid for a in agents])
            before = procfs.cpu_by_part(parts)
            watch, enqueued = _enqueue(plan, target, sizes, flavors, hosts)
            after = procfs.cpu_by_part(parts)
            result = _pull_result(watch, enqueued, sizes, target)  # the cloud as placed
            result.update(_cpu_per_placed(before, after, result["placed"]))
            result["nats_memory_mb"] = nats.memory_mb()
            result.update(pull_setup.withdraw(transport, target.database_url))
        result.update(queues=pull_setup.queue_count(transport), agents=[a.final for a in agents])
        projects = enqueue.project_names(plan.projects)
        result.update(pull_checks.check(target.database_url, projects))
        emit(out, "pull", target, plan.settings("pull", hosts), result)
    return result


def _enqueue(
    plan: PullPlan, target: Target, sizes: bytes, flavors: tuple[str, ...], hosts: int
) -> tuple[Watch, dict[str, Any]]:
    """Enqueue the list and watch it settle; the watch and the enqueuers' summed results."""
    eplan = enqueue.EnqueuePlan(target.url, sizes, flavors, plan.enqueuers, plan.threads,
                                plan.window, plan.projects, plan.batch)  # fmt: skip
    label = f"pull: pull {hosts} hosts E={plan.enqueuers}x{plan.threads} A={plan.agents}"
    with bar(label, len(sizes)) as advance:
        enq = enqueue.start(eplan)
        watch = watch_run(enq, target.database_url, plan.poll, plan.settle, plan.seconds, advance)
    found = enqueue.summed(watch.results)
    found["taken"] = min(int(enq.shared.taken.value), len(sizes))
    return watch, found


def _pull_result(
    watch: Watch, enqueued: dict[str, Any], sizes: bytes, target: Target
) -> dict[str, Any]:
    """Placements, their rate and enqueue-to-active times, the reserve step, the cloud."""
    active = pull_checks.active_instances(target.database_url)
    times = [s for uuid, s in watch.settled.items() if uuid in active]
    seconds = max(watch.last_change - watch.began, 1e-9)
    counts = enqueued["counts"]
    posts = counts.get("requests", 0)  # answered: each one quota check
    post = latency_summary(enqueued["latencies"])
    return {
        "design": "pull", "placed": len(active), "placed_per_s": round(len(active) / seconds, 2),
        "seconds": round(seconds, 3), "requests": enqueued["taken"], "list_length": len(sizes),
        "list_sha256": hashlib.sha256(sizes).hexdigest()[:16], "ended": watch.ended,
        "unplaced": enqueued["taken"] - len(active), "accepted": counts.get("accepted", 0),
        "over_quota": counts.get("over_quota", 0), "conflicts": counts.get("conflicts", 0),
        "server_errors": counts.get("server_errors", 0),
        "failed_calls": counts.get("failed_calls", 0),
        "p50_ms": round(1000 * percentile(times, 50), 3),
        "p99_ms": round(1000 * percentile(times, 99), 3), "timed_instances": len(times),
        "quota_checks_per_s": round(posts / enqueued["seconds"], 2) if posts else 0.0,
        "quota_checks_per_busy_s": round(posts / enqueued["busy_seconds"], 2) if posts else 0.0,
        "enqueue_p50_ms": post["p50_ms"], "enqueue_p99_ms": post["p99_ms"],
        **_cloud_end(target),
    }  # fmt: skip
