"""``berth bench hoststate``: hosts reporting their state while schedulers place instances.

One run per sync backend (``host_state_sync``), ``--set`` combination and
reporting interval, each on a fresh ``berth serve`` (default settings but
those) and a fresh placement-bench cloud::

    serve       berth serve, --server-workers workers, over the run's database
    populate    the cloud, written straight to the database
    report      --reporters ``berth host report --simulate`` processes, the hosts
                split among them by name prefix, each host patching its
                ``compute`` namespace every interval (berth.bench.reporters)
    schedule    --workers scheduler processes placing one instance at a time
                (one of placement-bench's six sizes) through POST
                /scheduler/select_destinations (berth.bench.claims, timed)
    window      --warmup seconds after the schedulers start, the lab reads the
                server's /metrics, the database's counters, the CPU time of each
                part and the workers' memory; --seconds later it reads them again

The line's figures over the window: host-state writes accepted (``PATCH``
answered 200, from the server's request counter) against those offered
(hosts / interval), refused ones by status; instances placed/s (the
server's claim counter); staleness (``berth_host_state_staleness_seconds``:
p50/p99 are the upper bounds of the histogram buckets they fall in, see
:mod:`berth.bench.promtext`); the database's write load
(:mod:`berth.bench.dbload`); CPU cores busy per part; each server worker's
RSS at both readings.  Besides, over the schedulers' whole run (warm-up
included): their claims/s and p50/p99 per request; over the reporters' whole
life: their sends, failures and p50/p99 per send.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from berth import settings as settings_mod
from berth.bench import agents, dbload, invariants, procfs, promtext, reporters
from berth.bench.claims import ClaimsPlan
from berth.bench.claims import run as run_claims
from berth.bench.cli_options import emit
from berth.bench.cloud import Topology, build, from_profile
from berth.bench.populate import populate_target
from berth.bench.progress import timed
from berth.bench.summary import settings_title
from berth.bench.targets import Target, open_target

SYNC_SETTING = "host_state_sync"
TODAY = "db"  # how workers follow host state where berth has no such setting: polling
STATE_ROUTE = "/scheduler/hosts/{provider_uuid}/state/{namespace}"
STALENESS = "berth_host_state_staleness_seconds"


@dataclasses.dataclass(frozen=True)
class HostStatePlan:
    """One ``berth bench hoststate`` invocation's workload (every run of it shares it)."""

    database_url: str
    hosts: int = 10_000
    workers: int = 8  # scheduler processes
    concurrency: int = 1  # requests each scheduler makes at once
    reporters: int = 10  # berth host report processes
    reporter_concurrency: int = 64  # sends in flight per reporter process
    seconds: float = 60.0  # the measured window
    warmup: float = 5.0  # schedulers and reporters at work before the window opens
    server_workers: int = 2
    seed: int = 0

    def settings(self, interval: float, sync: str) -> dict[str, Any]:
        """For a result line: the run's interval and backend, and the shared knobs."""
        values = dataclasses.asdict(self)
        values.pop("database_url")
        return {"interval": interval, "sync": sync, "namespace": "compute", **values}


def sync_envs(values: Sequence[str], known: Collection[str]) -> list[tuple[str, dict[str, str]]]:
    """(backend, ``BERTH_*`` variables) per ``--sync`` value.

    A server that has no ``host_state_sync`` setting (``known``: the setting
    names) would ignore the variable and poll the database whatever it is
    told: then only ``db`` can be measured, and it is its behaviour, not a
    setting.  ValueError for anything else.
    """
    if not values or any(not v for v in values):
        raise ValueError("--sync: one or more backend names, comma-separated")
    if SYNC_SETTING in known:
        return [(v, {f"BERTH_{SYNC_SETTING.upper()}": v}) for v in values]
    others = sorted(set(values) - {TODAY})
    if others:
        raise ValueError(
            f"this berth has no {SYNC_SETTING} setting: its workers poll the database "
            f"({TODAY}) whatever they are told, so {', '.join(others)} cannot be measured"
        )
    return [(TODAY, {})]


def sync_of(target: Target) -> str:
    """The backend a served berth follows host state with (its setting, else ``db``)."""
    default = getattr(settings_mod.Settings(), SYNC_SETTING, TODAY)
    return str(target.settings.get(SYNC_SETTING, default))


def host_groups(topo: Topology, count: int) -> dict[str, int]:
    """Name prefix -> host count for each of ``count`` reporters (ValueError: no such split)."""
    names = [spec.name for spec in build(topo) if spec.parent is None and spec.inventories]
    try:
        chosen = agents.prefixes(names, count)
    except ValueError as exc:
        raise ValueError(f"--reporters: {exc}".replace(" agents ", " reporters ")) from None
    return {p: sum(name.startswith(p) for name in names) for p in chosen}


@dataclasses.dataclass(frozen=True)
class Reading:
    """What the lab reads at each end of the window."""

    at: float  # monotonic seconds
    metrics: promtext.Samples
    database: dict[str, float]
    cpu: dict[str, float]  # seconds per part (berth.bench.procfs.cpu_by_part)
    worker_rss_mb: list[float]


def read(
    target: Target, parts: Mapping[str, Sequence[int]], database: dbload.LoadReader
) -> Reading:
    """One reading of the server, the database and the processes."""
    return Reading(
        at=time.monotonic(),
        metrics=promtext.scrape(target.url),
        database=database.read(),
        cpu=procfs.cpu_by_part(parts),
        worker_rss_mb=[round(x, 1) for x in procfs.worker_rss_mb(target.pid)],
    )


class Window:
    """The two readings, ``warmup`` and ``warmup + seconds`` after :meth:`open` (called as
    the schedulers start), each by a timer thread."""

    def __init__(self, reader: Callable[[], Reading], warmup: float, seconds: float) -> None:
        self.reader = reader
        self.delays = (warmup, warmup + seconds)
        self.readings: list[Reading | None] = [None, None]
        self.failure: BaseException | None = None
        self.timers: list[threading.Timer] = []

    def open(self) -> None:
        """Start both timers."""
        for index, delay in enumerate(self.delays):
            timer = threading.Timer(delay, self._take, args=(index,))
            timer.daemon = True
            timer.start()
            self.timers.append(timer)

    def _take(self, index: int) -> None:
        try:
            self.readings[index] = self.reader()
        except Exception as exc:  # told to the main thread in close()
            self.failure = exc

    def close(self, timeout: float = 60.0) -> tuple[Reading, Reading]:
        """Both readings, once taken (RuntimeError if one failed or never came)."""
        for timer in self.timers:
            timer.join(timeout)
        if self.failure is not None:
            raise RuntimeError(f"a reading of the window failed: {self.failure!r}")
        before, after = self.readings
        if before is None or after is None:
            raise RuntimeError("the window's readings were not taken")
        return before, after

    def cancel(self) -> None:
        """Stop timers that have not fired (the run was cut short)."""
        for timer in self.timers:
            timer.cancel()


def run_one(plan: HostStatePlan, interval: float, env: dict[str, str], out: str) -> dict[str, Any]:
    """One run (a fresh server and cloud, with ``env``): its result, written as a line."""
    topo = from_profile("placement-bench", plan.hosts)
    groups = host_groups(topo, plan.reporters)
    with open_target("serve", plan.database_url, plan.server_workers, env=env) as target:
        populate_target(target, topo, show=False)
        sync = sync_of(target)
        report = reporters.ReportPlan(target.url, interval, plan.reporter_concurrency, plan.seed)
        with (
            contextlib.closing(dbload.LoadReader(target.database_url)) as database,
            reporters.running_reporters(report, groups) as running,
        ):
            parts = {"all": [os.getpid()], "server": [target.pid],
                     "reporters": [r.proc.pid for r in running]}  # fmt: skip
            window = Window(lambda: read(target, parts, database), plan.warmup, plan.seconds)
            claims = ClaimsPlan(target, "scheduler", "default", "none", plan.workers,
                                plan.warmup + plan.seconds, concurrency=plan.concurrency,
                                seed=plan.seed)  # fmt: skip
            label = title(plan, interval, sync, target.settings)
            try:
                with timed(label, plan.warmup + plan.seconds) as advance:
                    scheduled = run_claims(claims, advance, started=window.open)
                before, after = window.close()
            finally:
                window.cancel()
        result = figures(plan, interval, (before, after), scheduled, reporters.summed(running))
        result["database"] = dbload.rates(before.database, after.database, after.at - before.at,
                                          database.overhead)  # fmt: skip
        result.update(invariants.check(None, target.database_url))
        result["title"] = label
        emit(out, "hoststate", target, plan.settings(interval, sync), result)
    return result


def title(plan: HostStatePlan, interval: float, sync: str, changed: dict[str, Any]) -> str:
    """``hoststate db 10000 hosts every 1s W=8x1 R=10 [...]``: what ran, what it changed."""
    others = {k: v for k, v in changed.items() if k != SYNC_SETTING}
    head = (f"hoststate {sync} {plan.hosts} hosts every {interval:g}s "
            f"W={plan.workers}x{plan.concurrency} R={plan.reporters}")  # fmt: skip
    return f"{head} {settings_title(others)}".strip()


def figures(
    plan: HostStatePlan,
    interval: float,
    window: tuple[Reading, Reading],
    scheduled: dict[str, Any],
    reported: dict[str, Any],
) -> dict[str, Any]:
    """The line's result (the database's apart): the window's rates and latencies, and the
    runs' own summaries."""
    before, after = window
    span = max(after.at - before.at, 1e-9)
    grown = promtext.delta(before.metrics, after.metrics)
    return {
        "window_s": round(span, 2),
        **_updates(grown, span, reported["hosts"] or plan.hosts, interval),
        "reporter": reported,
        **_scheduling(grown, span, scheduled),
        **_staleness(grown),
        "cpu_cores": _cores(before.cpu, after.cpu, span),
        "worker_rss_mb_start": before.worker_rss_mb,
        "worker_rss_mb": after.worker_rss_mb,
    }


def _updates(grown: promtext.Samples, span: float, hosts: int, interval: float) -> dict[str, Any]:
    """Host-state writes offered, accepted (200) and refused (by status) per second."""
    statuses = promtext.by_label(grown, "berth_http_requests_total", "status",
                                 route=STATE_ROUTE, method="PATCH")  # fmt: skip
    accepted = statuses.get("200", 0.0)
    offered = hosts / interval
    return {
        "updates_offered_per_s": round(offered, 1),
        "updates_per_s": round(accepted / span, 1),
        "updates_held_pct": round(100 * accepted / span / offered, 1),
        "update_refusals": int(sum(v for s, v in statuses.items() if s != "200")),
        "update_statuses": {s: int(v) for s, v in sorted(statuses.items()) if v},
    }


def _scheduling(grown: promtext.Samples, span: float, scheduled: dict[str, Any]) -> dict[str, Any]:
    """Instances placed/s in the window (the server's count); the schedulers' own figures."""
    placed = promtext.total(grown, "berth_scheduler_claims_total", outcome="claimed")
    kept = ("claims_per_s", "claimed", "requests", "conflicts", "give_ups", "no_host",
            "server_errors", "cloud_full", "elapsed_s", "p50_ms", "p90_ms", "p99_ms")  # fmt: skip
    return {"placed_per_s": round(placed / span, 1), **{k: scheduled[k] for k in kept}}


def _staleness(grown: promtext.Samples) -> dict[str, Any]:
    """Staleness over the window: observations, mean, p50/p99 (bucket upper bounds, s)."""
    found = promtext.histogram_summary(grown, STALENESS)
    cumulative = promtext.buckets(grown, STALENESS)
    return {
        "staleness_observations": found["count"],
        "staleness_mean_s": found["mean"],
        "staleness_p50_s": found["p50"],
        "staleness_p99_s": found["p99"],
        "staleness_buckets": [[b, int(c)] for b, c in cumulative if b != float("inf")],
    }


def _cores(before: dict[str, float], after: dict[str, float], span: float) -> dict[str, float]:
    """CPU cores busy on average per part: server, reporters, clients (the schedulers and
    the lab: this process's tree less the others), database (every server process here)."""
    used = {name: after[name] - before[name] for name in after}
    everything = used.pop("all")
    used["clients"] = everything - used["server"] - used["reporters"]
    return {name: round(v / span, 2) for name, v in sorted(used.items())}


def run_all(plan: HostStatePlan, intervals: Sequence[float], runs: Sequence[dict[str, str]],
            out: str) -> list[dict[str, Any]]:  # fmt: skip
    """Every run: each environment (backend and ``--set`` values) at each interval."""
    return [run_one(plan, interval, env, out) for env in runs for interval in intervals]
