"""What one request costs: CPU in the server and in the database, and the database's work.

A run of one request kind (:mod:`berth.bench.cost_requests`)::

    spawn C client processes of T threads     each warms up (connections, first writes)
    settle                                    the database's counters catch up
    reading 1: CPU of the server's processes, of the database servers; database counters
    go: the clients make N operations in all (or stop after S seconds)
    reading 2: CPU                            at once: an idle server still burns some
    settle, reading 3: database counters      everything the run did is counted

:class:`Meter` takes the readings: the CPU of process trees (``parts``: the
berth server, every host's server, a proxy ...) and of the database servers
on this machine (:func:`berth.bench.procfs.cpu_by_part`, as ``claims
--cpu-time`` reads them), and the database's counters
(:mod:`berth.bench.dbstats`).  :meth:`Meter.baseline` measures what the
target does when nobody asks it anything (background threads, the change
feed's polling, the readings themselves), and every run's figures are net of
that much per second.  The result is per operation: CPU milliseconds per part,
the client processes' own, statements, commits, rows read and written,
database time, as far as the database's counters tell.
"""

from __future__ import annotations

import multiprocessing
import queue
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from berth.bench import dbstats, procfs
from berth.bench.cost_requests import REQUESTS, Slot
from berth.bench.launch import follow_parent
from berth.bench.processes import launch
from berth.bench.progress import Advance
from berth.bench.records import latency_summary
from berth.bench.transport import HttpTransport

# (counts, latencies, seconds active, CPU microseconds, consumers made) of one client process
Outcome = tuple[dict[str, int], list[float], float, int, list[str]]


@dataclass(frozen=True)
class Workload:
    """One request kind against one URL: how many clients, how many operations, how long."""

    url: str
    request: str
    hosts: int  # the cloud's hosts (cloud.host_uuid(0 .. hosts - 1))
    clients: int = 4  # processes
    threads: int = 2  # per process, a keep-alive connection each
    requests: int = 2000  # operations in all (delete: at most the consumers given)
    seconds: float = 30.0  # at most this long
    limit: int = 50  # candidates: limit=
    warmup: int = 3  # operations per thread before the clock
    consumers: tuple[str, ...] = ()  # delete: the consumers to remove
    seed: int = 0

    @property
    def slots(self) -> int:
        """Client threads in all."""
        return self.clients * self.threads

    def share(self, slot: int) -> int:
        """Operations thread ``slot`` makes (the requests spread evenly)."""
        return self.requests // self.slots + (slot < self.requests % self.slots)

    def slot(self, slot: int) -> Slot:
        """Thread ``slot``'s place in the cloud (and its consumers)."""
        return Slot(slot, self.slots, self.hosts, self.limit, self.consumers[slot :: self.slots])


class _Thread:
    """One client thread: its request kind, its operations, what they answered."""

    def __init__(self, work: Workload, transport: HttpTransport, slot: int) -> None:
        cls = REQUESTS[work.request]
        self.request = cls(transport, work.slot(slot), random.Random(work.seed * 1000 + slot))
        self.first = self.request.warmup(work.warmup)
        bound = self.request.capacity()
        last = self.first + work.share(slot)
        self.last = last if bound is None else min(last, bound)
        self.counts: Counter[str] = Counter()
        self.latencies: list[float] = []

    def warm(self) -> None:
        """The operations before the clock (their answers are not counted)."""
        for n in range(min(self.first, self.last)):
            self.request(n)

    def run(self, deadline: float, done: Any) -> None:
        """The measured operations, until they are made or the deadline passes."""
        for n in range(self.first, self.last):
            if time.monotonic() >= deadline:
                break
            t0 = time.perf_counter()
            try:
                status = self.request(n)
            except OSError:  # the connection failed: counted, and the next one reconnects
                status = 0
            self.latencies.append(time.perf_counter() - t0)
            self.counts["requests"] += 1
            if not 200 <= status < 300:
                self.counts[f"status {status or 'no answer'}"] += 1
            with done.get_lock():
                done.value += 1


def client(work: Workload, index: int, ready: Any, go: Any, out: Any, done: Any) -> None:
    """One client process: T threads warm up, wait for ``go``, make their operations."""
    follow_parent()
    transport = HttpTransport(work.url, headers=REQUESTS[work.request].headers)
    threads = [_Thread(work, transport, index * work.threads + t) for t in range(work.threads)]
    warmed, start = threading.Barrier(len(threads) + 1), threading.Event()
    began: list[float] = []

    def body(thread: _Thread) -> None:
        try:
            thread.warm()
        except BaseException:
            warmed.abort()  # this process gives up at once, and the lab with it
            ready.abort()
            raise
        warmed.wait()
        start.wait()
        thread.run(began[0] + work.seconds, done)

    runners = [threading.Thread(target=body, args=(t,)) for t in threads]
    for runner in runners:
        runner.start()
    warmed.wait()
    ready.wait()
    go.wait()
    cpu = time.process_time()
    began.append(time.monotonic())
    start.set()
    for runner in runners:
        runner.join()
    counts: Counter[str] = Counter()
    latencies: list[float] = []
    for thread in threads:
        counts.update(thread.counts)
        latencies += thread.latencies
    cpu_us = int((time.process_time() - cpu) * 1e6)
    created = [c for thread in threads for c in thread.request.created]
    out.put((dict(counts), latencies, time.monotonic() - began[0], cpu_us, created))


@dataclass
class Meter:
    """The readings around a run: CPU of process trees and of the databases, and counters."""

    parts: dict[str, list[int]]  # name -> root pids (their whole trees count)
    counters: dbstats.Counters = field(default_factory=dbstats.NoCounters)
    idle: dict[str, float] = field(default_factory=dict)  # per second: "cpu <part>", counters
    idle_seconds: float = 0.0
    # False where the database runs inside the server (SQLite): the database servers on
    # this machine are then someone else's.
    database_cpu: bool = True

    @property
    def settle(self) -> float:
        """How long the database's counters take to hold what was done."""
        return self.counters.settle

    def cpu(self) -> tuple[float, dict[str, float]]:
        """(now, CPU seconds so far of each part and of the database servers)."""
        return time.monotonic(), procfs.cpu_by_part(self.parts)

    def sample(self) -> tuple[float, dict[str, float]]:
        """(now, the database's counters)."""
        return time.monotonic(), self.counters.sample()

    def baseline(self, seconds: float) -> None:
        """What the target and the database do unasked, per second, over ``seconds``."""
        if seconds <= 0:
            return
        time.sleep(self.settle)
        (t0, cpu0), (_, db0) = self.cpu(), self.sample()
        time.sleep(seconds)
        (t1, cpu1), (t2, db1) = self.cpu(), self.sample()
        self.idle = {f"cpu {k}": (cpu1[k] - cpu0[k]) / (t1 - t0) for k in cpu1}
        self.idle.update(dbstats.rates(db0, db1, t2 - t0, self.counters.overhead))
        # Below zero is no background: a process that ended took its time with it (another
        # user's PostgreSQL stopped meanwhile, say).
        self.idle = {k: max(0.0, v) for k, v in self.idle.items()}
        self.idle_seconds = seconds

    def close(self) -> None:
        """Release the database connection."""
        self.counters.close()


def run(work: Workload, meter: Meter, advance: Advance | None = None) -> dict[str, Any]:
    """The clients' operations, measured; the figures per operation and the consumers made."""
    mp = multiprocessing.get_context("spawn")
    ready, go, out, done = mp.Barrier(work.clients + 1), mp.Event(), mp.Queue(), mp.Value("q", 0)
    procs = [mp.Process(target=client, args=(work, i, ready, go, out, done))
             for i in range(work.clients)]  # fmt: skip
    launch(procs, ready, "client")
    try:
        time.sleep(meter.settle)
        (c0, cpu0), (d0, db0) = meter.cpu(), meter.sample()
        go.set()
        outcomes = _gather(procs, out, done, advance)
        c1, cpu1 = meter.cpu()
        time.sleep(meter.settle)
        d1, db1 = meter.sample()
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
    result = summarise(work, outcomes)
    ops = result["requests"]
    result["cpu_seconds"] = {}
    for name in cpu1:
        if name == "database" and not meter.database_cpu:
            continue
        spent = cpu1[name] - cpu0[name]
        result["cpu_seconds"][name] = round(spent, 4)
        idle = meter.idle.get(f"cpu {name}", 0.0)
        net = cpu_ms_per_request(spent, idle * (c1 - c0), ops)
        if net is not None:
            result[f"{name}_cpu_ms_per_request"] = net
    moved = dbstats.delta(db0, db1, d1 - d0, meter.idle, meter.counters.overhead)
    result.update(dbstats.per_request(moved, ops))
    result["database_counters"] = {k: round(v, 1) for k, v in sorted(moved.items())}
    result["idle_per_s"] = {k: round(v, 4) for k, v in sorted(meter.idle.items())}
    result["consumers"] = [c for outcome in outcomes for c in outcome[4]]
    return result


def cpu_ms_per_request(spent: float, background: float, ops: int) -> float | None:
    """CPU milliseconds per operation of ``spent`` seconds less ``background`` (what the
    idle target would have used meanwhile); None when that leaves nothing to measure.

    Serving a request is never free: a figure at or below zero says the background,
    measured over a few seconds (or less) on a machine doing other work, swallowed the
    run's own CPU.  Such a figure is unknown, shown as "-", not 0.
    """
    net = round((spent - background) * 1000 / max(1, ops), 3)
    return net if net > 0 else None


def _gather(procs: list[Any], out: Any, done: Any, advance: Advance | None) -> list[Outcome]:
    """Every client's outcome, moving the bar by operations made meanwhile."""
    found: list[Outcome] = []
    shown = 0
    while len(found) < len(procs):
        try:
            found.append(out.get(timeout=0.5))
        except queue.Empty:
            if not any(p.is_alive() for p in procs) and out.empty():
                raise RuntimeError("a client process died (see its traceback)") from None
        now = int(done.value)
        if advance and now > shown:
            advance(now - shown)
            shown = now
    return found


def summarise(work: Workload, outcomes: list[Outcome]) -> dict[str, Any]:
    """Operations, calls, errors, rate and latency, the clients' CPU per operation."""
    counts: Counter[str] = Counter()
    latencies: list[float] = []
    active = 0.0
    for found, lat, took, cpu_us, _ in outcomes:
        counts.update(found)
        counts["cpu_us"] += cpu_us
        latencies += lat
        active = max(active, took)
    ops = counts["requests"]
    errors = {k.removeprefix("status "): v for k, v in sorted(counts.items())
              if k.startswith("status ")}  # fmt: skip
    return {
        "requests": ops,
        "calls_per_request": REQUESTS[work.request].calls,
        "errors": sum(errors.values()),
        "errors_by_status": errors,
        "seconds": round(active, 3),
        "requests_per_s": round(ops / active, 2) if active else 0.0,
        **latency_summary(latencies),
        "client_cpu_ms_per_request": round(counts["cpu_us"] / 1000 / max(1, ops), 3),
    }
