"""W concurrent schedulers claiming hosts: claims/s, conflicts, retries, give-ups, latency.

Every scheduler is its own process (spawned, so nothing is shared but the
target); all warm up, wait at a barrier, then place one instance at a time
(a random one of the six sizes) until the time is up or the cloud is full
for them (``full_after`` "no valid host" answers in a row).  The parent
adds up their counts; :mod:`berth.bench.invariants` then checks that no
provider ended over capacity.

Filling (``plan.fill``, placement-bench's run): one fixed list of requests
(:func:`berth.bench.fill.request_list`), shared by every scheduler through
one counter, each taking the next.  A request no host can take is left
unplaced; a scheduler stops when the smallest size finds no host (its
partition, or the cloud, is full), and the run ends when every scheduler
has stopped or the list is used up.
"""

from __future__ import annotations

import cProfile
import hashlib
import multiprocessing
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from berth.bench import procfs, strategies
from berth.bench.claimers import (
    Attempt,
    PlacementClaimer,
    SchedulerClaimer,
    SchedulerHttpClaimer,
)
from berth.bench.launch import follow_parent
from berth.bench.processes import launch
from berth.bench.progress import Advance
from berth.bench.records import latency_summary
from berth.bench.targets import Target


@dataclass
class ClaimsPlan:
    """The workload: who claims, how, for how long."""

    target: Target
    # "scheduler" (berth's), "placement" (client-side claims) or "compute" (claim after delay)
    mode: str = "scheduler"
    strategy: str = "pack"
    partitioning: str = "none"
    workers: int = 8
    seconds: float = 10.0
    concurrency: int = 1  # requests each scheduler serves at once (threads)
    limit: int = 0  # client-side: limit= on GET /allocation_candidates (0: none)
    delay: float = 0.0  # compute: seconds between selection and the compute host's claim
    attempts: int = 5  # client-side: claims tried per instance before giving up
    full_after: int = 20
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)  # more scheduler settings
    batch: int = 1  # scheduler modes: instances per request (num_instances)
    cpu_time: bool = False  # also CPU ms per claim, the schedulers' and the database's
    cprofile: str = ""  # cProfile scheduler 0's first request stream into this file
    fill: bytes = b""  # fill mode: the fixed request list (size indices); empty: timed

    def settings(self) -> dict[str, Any]:
        """For a result line (the optional knobs only when they are not at their default)."""
        out = {k: v for k, v in asdict(self).items() if OPTIONAL.get(k, _KEEP) != v}
        out.pop("fill", None)  # the list itself: its length and digest are in the result
        out["target"] = self.target.describe()
        return out

    def varied(self) -> dict[str, Any]:
        """The scheduler settings and the batch this run changed, for labels."""
        return {**self.overrides, **({"batch": self.batch} if self.batch != 1 else {})}

    def in_process_settings(self) -> dict[str, Any]:
        """Settings of scheduler 0 in process: the strategy's and the run's overrides."""
        chosen = strategies.scheduler_settings(self.strategy, self.partitioning, 0, self.workers)
        return {**chosen, **self.overrides}


# Knobs a result line names only when a run changed them (older lines have none).
OPTIONAL: dict[str, Any] = {"batch": 1, "cpu_time": False, "cprofile": ""}
_KEEP = object()


def make_claimer(plan: ClaimsPlan, index: int) -> Any:
    """The claimer worker ``index`` uses."""
    target = plan.target
    if plan.mode == "scheduler" and target.kind == "berth-inproc":
        overrides = strategies.scheduler_settings(
            plan.strategy, plan.partitioning, index, plan.workers
        )
        return SchedulerClaimer(target.database_url, {**overrides, **plan.overrides}, plan.batch)
    if plan.mode == "scheduler" and target.kind == "berth-http":
        return SchedulerHttpClaimer(target.transport(), plan.batch)
    if plan.mode == "scheduler":
        raise ValueError(f"{target.name} has no berth scheduler: use --mode placement")
    if plan.batch != 1:
        raise ValueError("several instances per request need --mode scheduler")
    return PlacementClaimer(
        target.transport(),
        plan.strategy,
        plan.partitioning,
        index,
        plan.workers,
        plan.limit,
        plan.attempts,
        plan.delay if plan.mode == "compute" else 0.0,
    )


def tally(stats: Counter[str], attempt: Attempt) -> None:
    """Add one attempt to a worker's counts."""
    stats["requests"] += 1
    stats["claimed"] += attempt.claimed
    stats["conflicts"] += attempt.conflicts
    stats["retries"] += attempt.retries
    stats["give_ups"] += attempt.gave_up
    stats["no_host"] += attempt.no_host
    stats["server_errors"] += attempt.errors


def work(plan: ClaimsPlan, index: int, start: Any, out: Any, taken: Any = None) -> None:
    """One scheduler process: warm up, wait for the others, claim until done.

    With ``plan.concurrency`` above 1 the process serves that many requests
    at once, one thread each (as a server worker with request threads).
    Puts (index, counts, latencies, seconds active) on ``out``; the counts
    include the process's CPU time in microseconds (``cpu_us``).  ``taken``
    is the shared position in the fill list (fill mode).
    """
    follow_parent()  # a lab killed while we wait at the barrier takes us with it
    loops = _loops(plan, index, Queue(plan.fill, taken) if plan.fill else None)
    profile = cProfile.Profile(time.process_time) if plan.cprofile and index == 0 else None
    start.wait()
    began, cpu = time.monotonic(), time.process_time()
    if profile:
        profile.enable()
    _run_loops(loops, began + plan.seconds)
    active = time.monotonic() - began
    if profile:
        profile.disable()
        profile.dump_stats(plan.cprofile)
    stats: Counter[str] = Counter(cpu_us=int((time.process_time() - cpu) * 1e6))
    latencies: list[float] = []
    for loop in loops:
        stats.update(loop.stats)
        latencies += loop.latencies
    stats["full"] = int(any(loop.full for loop in loops))
    out.put((index, dict(stats), latencies, active))


def _loops(plan: ClaimsPlan, index: int, queue_: Queue | None) -> list[_Loop]:
    """Scheduler ``index``'s request streams, their claimers warmed up.

    An in-process scheduler is shared by the streams; other targets get a
    client each.  In fill mode they take their requests from ``queue_``.
    """
    first = make_claimer(plan, index)
    shared = isinstance(first, SchedulerClaimer)
    claimers = [first if shared or n == 0 else make_claimer(plan, index)
                for n in range(plan.concurrency)]  # fmt: skip
    for claimer in claimers if not shared else [first]:
        claimer.warm_up()
    return [_Loop(plan, claimer, plan.seed * 1000 + index * 64 + n, queue_)
            for n, claimer in enumerate(claimers)]  # fmt: skip


def _run_loops(loops: list[_Loop], deadline: float) -> None:
    """The first stream in this thread, each other one in a thread of its own."""
    threads = [threading.Thread(target=loop.run, args=(deadline,)) for loop in loops[1:]]
    for thread in threads:
        thread.start()
    loops[0].run(deadline)
    for thread in threads:
        thread.join()


class Queue:
    """This process's view of the shared fill list: take the next request, or stop."""

    def __init__(self, sizes: bytes, taken: Any) -> None:
        self.sizes = sizes
        self.taken = taken  # a multiprocessing.Value shared by every scheduler
        self.stopped = threading.Event()  # this scheduler's partition (or the cloud) is full

    def next(self) -> int | None:
        """The next request's size index; None once the list is used up or we stopped."""
        if self.stopped.is_set():
            return None
        with self.taken.get_lock():
            position = self.taken.value
            if position >= len(self.sizes):
                return None
            self.taken.value = position + 1
        return int(self.sizes[position])


class _Loop:
    """One stream of requests, one at a time, until the deadline or the cloud is full."""

    def __init__(self, plan: ClaimsPlan, claimer: Any, seed: int, queue_: Queue | None) -> None:
        self.plan = plan
        self.claimer = claimer
        self.rng = random.Random(seed)
        self.queue = queue_
        self.stats: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.full = False

    def run(self, deadline: float) -> None:
        """Claim until ``deadline``, or until ``full_after`` answers in a row found no host."""
        if self.queue is not None:
            self.fill(self.queue, deadline)
            return
        misses = 0
        while time.monotonic() < deadline and misses < self.plan.full_after:
            t0 = time.perf_counter()
            attempt = self.claimer.claim(strategies.request_size(self.rng), self.rng)
            if attempt.claimed:
                self.latencies.append(time.perf_counter() - t0)
            misses = misses + 1 if attempt.no_host else 0
            tally(self.stats, attempt)
        self.full = misses >= self.plan.full_after

    def fill(self, queue_: Queue, deadline: float) -> None:
        """Requests from the fill list until it is used up, or the smallest finds no host."""
        while time.monotonic() < deadline:
            index = queue_.next()
            if index is None:
                return
            vcpu, ram = strategies.SIZES[index]
            t0 = time.perf_counter()
            attempt = self.claimer.claim({"VCPU": vcpu, "MEMORY_MB": ram}, self.rng)
            if attempt.claimed:
                self.latencies.append(time.perf_counter() - t0)
            tally(self.stats, attempt)
            if attempt.no_host and index == 0:  # not even the smallest fits: full
                self.full = True
                queue_.stopped.set()
                return


def run(
    plan: ClaimsPlan,
    advance: Advance | None = None,
    parts: Mapping[str, Sequence[int]] | None = None,
    started: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run the workers; the summed result.

    With ``plan.cpu_time`` and ``parts`` (name: root pids, e.g. the servers of
    several berth hosts), also ``<name>_cpu_ms_per_claim`` of each part's
    process trees.  ``started`` is called as the workers start claiming (all
    warmed up, past the barrier).  Should the run be cut short (an error,
    SIGINT, SIGTERM), the workers are terminated.
    """
    mp = multiprocessing.get_context("spawn")
    start, out, taken = mp.Barrier(plan.workers + 1), mp.Queue(), mp.Value("q", 0)
    procs = [
        mp.Process(target=work, args=(plan, i, start, out, taken)) for i in range(plan.workers)
    ]
    launch(procs, start, "scheduler")
    began = time.monotonic()
    server = plan.target.pid
    database_cpu = procfs.database_cpu_s() if plan.cpu_time else 0.0
    server_cpu = procfs.tree_cpu_s(server) if plan.cpu_time and server else 0.0
    part_cpu = procfs.cpu_by_part(parts) if plan.cpu_time and parts else {}
    try:
        if started is not None:
            started()
        results = _gather(procs, out, plan, began, advance, taken)
    except BaseException:
        for p in procs:
            p.terminate()
        raise
    summary = summarise(results, plan.seconds)
    if plan.fill:
        summary.update(fill_summary(results, plan.fill, int(taken.value)))
    if plan.cpu_time:
        used = procfs.database_cpu_s() - database_cpu
        served = procfs.tree_cpu_s(server) - server_cpu if server else None
        summary.update(cpu_per_claim(results, used, served))
        if parts:
            summary.update(parts_per_claim(part_cpu, procfs.cpu_by_part(parts), parts, summary))
    for p in procs:
        p.join()
    return summary


def _gather(
    procs: list[Any],
    out: Any,
    plan: ClaimsPlan,
    began: float,
    advance: Advance | None,
    taken: Any,
) -> list[tuple[dict[str, int], list[float], float]]:
    """Every worker's (counts, latencies, seconds active), moving the bar meanwhile.

    The bar counts seconds, or in fill mode the requests taken from the list.
    """
    results: list[tuple[dict[str, int], list[float], float]] = []
    shown, total = 0, len(plan.fill) or int(plan.seconds)
    while len(results) < len(procs):
        try:
            _, counts, lat, active = out.get(timeout=1.0)
            results.append((counts, lat, active))
        except queue.Empty:
            if not any(p.is_alive() for p in procs) and out.empty():
                raise RuntimeError("a scheduler process died (see its traceback)") from None
        now = int(taken.value) if plan.fill else int(min(plan.seconds, time.monotonic() - began))
        if advance and now > shown:
            advance(now - shown)
            shown = now
    if advance and shown < total:
        advance(total - shown)
    return results


def summarise(
    results: list[tuple[dict[str, int], list[float], float]], seconds: float
) -> dict[str, Any]:
    """Totals and rates over the run (rates over the longest worker's active time)."""
    stats: Counter[str] = Counter()
    latencies: list[float] = []
    active = 0.0
    for counts, lat, took in results:
        stats.update(counts)
        latencies += lat
        active = max(active, took)
    elapsed = active or seconds
    attempts = stats["claimed"] + stats["conflicts"]
    return {
        "claims_per_s": round(stats["claimed"] / elapsed, 2),
        "conflicts_per_s": round(stats["conflicts"] / elapsed, 2),
        "conflict_pct": round(100 * stats["conflicts"] / attempts, 2) if attempts else 0.0,
        "claimed": stats["claimed"],
        "requests": stats["requests"],
        "conflicts": stats["conflicts"],
        "retries": stats["retries"],
        "give_ups": stats["give_ups"],
        "no_host": stats["no_host"],
        "server_errors": stats["server_errors"],
        "cloud_full": stats["full"] > 0,
        "elapsed_s": round(elapsed, 2),
        **latency_summary(latencies),
    }


def fill_summary(
    results: list[tuple[dict[str, int], list[float], float]], sizes: bytes, taken: int
) -> dict[str, Any]:
    """What a fill run adds: the list, how far it got, why it ended, the rate of placements."""
    placed = sum(counts.get("claimed", 0) for counts, _, _ in results)
    seconds = max((took for _, _, took in results), default=0.0)
    stopped = sum(counts.get("full", 0) for counts, _, _ in results)
    ended = "full" if stopped == len(results) else "list" if taken >= len(sizes) else "time"
    return {
        "list_length": len(sizes),
        "list_sha256": hashlib.sha256(sizes).hexdigest()[:16],
        "list_taken": min(taken, len(sizes)),
        "placed": placed,
        "unplaced": sum(counts.get("no_host", 0) for counts, _, _ in results),
        "workers_full": stopped,
        "ended": ended,
        "seconds": round(seconds, 3),
        "placed_per_s": round(placed / seconds, 2) if seconds else 0.0,
    }


def parts_per_claim(
    before: Mapping[str, float],
    after: Mapping[str, float],
    parts: Mapping[str, Sequence[int]],
    summary: Mapping[str, Any],
) -> dict[str, float]:
    """CPU ms per successful claim of each part's process trees."""
    claimed = max(1, int(summary["claimed"]))
    return {f"{k}_cpu_ms_per_claim": round((after[k] - before[k]) * 1000 / claimed, 3)
            for k in parts}  # fmt: skip


def cpu_per_claim(
    results: list[tuple[dict[str, int], list[float], float]],
    database_s: float,
    server_s: float | None = None,
) -> dict[str, float]:
    """CPU ms per successful claim: the scheduler processes', the database servers', and
    (``server_s``: a server the lab started) the berth server's, all its processes.

    The database figure counts every database server process on this machine
    (:func:`berth.bench.procfs.database_cpu_s`), other users' work included.
    """
    claimed = max(1, sum(counts.get("claimed", 0) for counts, _, _ in results))
    client_ms = sum(counts.get("cpu_us", 0) for counts, _, _ in results) / 1000
    found = {
        "client_cpu_ms_per_claim": round(client_ms / claimed, 3),
        "database_cpu_ms_per_claim": round(database_s * 1000 / claimed, 3),
    }
    if server_s is not None:
        found["server_cpu_ms_per_claim"] = round(server_s * 1000 / claimed, 3)
    return found
