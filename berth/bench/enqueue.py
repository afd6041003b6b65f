"""The pull side of ``berth bench pull``: enqueue the fixed list, watch every instance settle.

Enqueuers are client processes (threads in each, as the push side's
schedulers), each taking the next request of the shared list and sending
``POST /scheduler/requests`` for one instance of that size's flavor (one
request per instance: each is one quota check at the reserve step; with
``batch`` N, the next N entries go as one request per size among them).  They
keep at most ``window`` instances outstanding (enqueued, not yet active or
failed), as a real client bounds what it has in flight; without a bound the
queues would grow faster than hosts drain them and the enqueue-to-active
time would measure the backlog.

The watcher (:mod:`berth.bench.pull_watch`) reads in the database, every
``poll`` seconds, which instances are still queued or claimed.  An instance
the enqueuer saw accepted that is no longer among them has settled; the time
from its ``POST`` to that reading is its enqueue-to-active time (the
server's timestamps are whole seconds, so the lab measures it itself, to
within one ``poll``).
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from berth.bench.processes import launch
from berth.bench.transport import HttpTransport

PROJECT = "bench-project"
USER = "bench-user"
HEADERS = {"openstack-api-version": "scheduler 1.2"}


@dataclass(frozen=True)
class EnqueuePlan:
    """Who enqueues what, how much at once."""

    url: str
    sizes: bytes  # the fixed list: one size index per request
    flavors: tuple[str, ...]  # the flavor name of each size index
    processes: int = 2
    threads: int = 4
    window: int = 2000  # instances outstanding at most
    projects: int = 1  # requests go round this many projects
    batch: int = 1  # list entries taken at once, one request per size among them


def project_names(count: int) -> list[str]:
    """The projects requests are made for: ``bench-project``, or ``bench-project-<n>`` each."""
    return [PROJECT] if count == 1 else [f"{PROJECT}-{n}" for n in range(count)]


@dataclass
class Shared:
    """What the enqueuers and the watcher share (multiprocessing values)."""

    taken: Any  # position in the list
    accepted: Any  # instances accepted (202)
    settled: Any  # instances the watcher has seen settle
    stop: Any  # an Event: stop enqueueing (the cloud is full, or time is up)

    @classmethod
    def make(cls, mp: Any) -> Shared:
        """Fresh values in context ``mp``."""
        return cls(mp.Value("q", 0), mp.Value("q", 0), mp.Value("q", 0), mp.Event())

    def next(self, length: int, batch: int = 1) -> range:
        """The next ``batch`` positions in the list (fewer at its end, none once used up)."""
        with self.taken.get_lock():
            position = int(self.taken.value)
            end = min(length, position + batch)
            self.taken.value = max(position, end)
        return range(position, end)

    def outstanding(self) -> int:
        """Instances accepted and not yet seen to settle."""
        return int(self.accepted.value) - int(self.settled.value)


class Stream:
    """One enqueuer thread: the next request, wait for room in the window, send it."""

    def __init__(self, plan: EnqueuePlan, shared: Shared, seen: Any) -> None:
        self.plan, self.shared, self.seen = plan, shared, seen
        self.transport = HttpTransport(plan.url)
        self.counts: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.waited = 0.0  # seconds held by the window
        self.projects = project_names(plan.projects)

    def _room(self) -> bool:
        """Wait until the window has room; False when told to stop meanwhile."""
        began = time.monotonic()
        while self.shared.outstanding() >= self.plan.window:
            if self.shared.stop.is_set():
                return False
            time.sleep(0.002)
        self.waited += time.monotonic() - began
        return not self.shared.stop.is_set()

    def run(self) -> None:
        """Enqueue until the list is used up or the run stops.

        With ``batch`` above 1 the entries taken together go as one request per
        size among them (``count`` = how many), in the project of the first.
        """
        while self._room():
            positions = self.shared.next(len(self.plan.sizes), self.plan.batch)
            if not positions:
                return
            by_size: dict[int, list[int]] = {}
            for position in positions:
                by_size.setdefault(self.plan.sizes[position], []).append(position)
            for size, same in by_size.items():
                project = self.projects[same[0] % len(self.projects)]
                self.send(self.plan.flavors[size], project, len(same))

    def send(self, flavor: str, project: str, count: int = 1) -> None:
        """One ``POST /scheduler/requests`` of ``count`` instances; counted, timed, reported."""
        body = {"flavor": flavor, "count": count, "project_id": project, "user_id": USER}
        sent = time.monotonic()
        try:
            status, raw = self.transport.request("POST", "/scheduler/requests", body, HEADERS)
        except OSError:  # reset or timed out: counted, and the stream goes on
            self.counts["failed_calls"] += 1
            return
        self.latencies.append(time.monotonic() - sent)
        self.counts["requests"] += 1
        if status == 202:
            answer = orjson.loads(raw)
            for instance in answer["instances"]:
                self.seen.put((instance, answer["uuid"], sent))
            with self.shared.accepted.get_lock():
                self.shared.accepted.value += count
            self.counts["accepted"] += count
        elif status == 409:  # over quota, or the project's generation swap lost too often
            over = b"quota_exceeded" in raw
            self.counts["over_quota" if over else "conflicts"] += count
        elif status >= 500:
            self.counts["server_errors"] += 1
        else:
            raise RuntimeError(f"POST /scheduler/requests: HTTP {status}: {raw[:300]!r}")


def work(plan: EnqueuePlan, index: int, start: Any, shared: Shared, seen: Any, out: Any) -> None:
    """One enqueuer process: its threads, started together at the barrier."""
    streams = [Stream(plan, shared, seen) for _ in range(plan.threads)]
    start.wait()
    began = time.monotonic()
    threads = [threading.Thread(target=s.run) for s in streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - began
    counts: Counter[str] = Counter()
    for s in streams:
        counts.update(s.counts)
    busy = sum(took - s.waited for s in streams) / len(streams)
    latencies = [x for s in streams for x in s.latencies]
    out.put((index, dict(counts), latencies, took, busy))


@dataclass
class Enqueuers:
    """The running enqueuer processes and what they share with the watcher."""

    plan: EnqueuePlan
    shared: Shared
    seen: Any  # (instance, request, sent) of every accepted instance
    out: Any  # each process's (index, counts, latencies, seconds, busy seconds)
    procs: list[Any]


def summed(found: list[tuple[int, dict[str, int], list[float], float, float]]) -> dict[str, Any]:
    """The enqueuer processes' results (as they put them) added up."""
    counts: Counter[str] = Counter()
    for _, c, _, _, _ in found:
        counts.update(c)
    return {
        "counts": dict(counts),
        "latencies": [x for _, _, lat, _, _ in found for x in lat],
        "seconds": max(took for *_, took, _ in found),
        "busy_seconds": max(busy for *_, busy in found),
    }


def start(plan: EnqueuePlan) -> Enqueuers:
    """Spawn the enqueuer processes and release them together."""
    mp = multiprocessing.get_context("spawn")
    shared, seen, out = Shared.make(mp), mp.Queue(), mp.Queue()
    barrier = mp.Barrier(plan.processes + 1)
    # Daemons: should the lab fail before it gathers them, they do not outlive it.
    procs = [mp.Process(target=work, args=(plan, i, barrier, shared, seen, out), daemon=True)
             for i in range(plan.processes)]  # fmt: skip
    launch(procs, barrier, "enqueuer")
    return Enqueuers(plan, shared, seen, out, procs)
