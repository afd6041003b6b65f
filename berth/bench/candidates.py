"""GET /allocation_candidates: latency percentiles and throughput for a mix of queries.

Each query runs at each concurrency (threads, one keep-alive connection
each) for a number of requests or seconds, whichever ends first; the first
request of a run is timed apart as the cold one.  The mix:

``limit``     the issue's query, ``resources=VCPU:2,MEMORY_MB:4096,DISK_GB:20&limit=50``
``nolimit``   the same without a limit (every host is a candidate)
``trait``     plus ``required=CUSTOM_GPU``
``member_of`` plus ``member_of=<aggregate 0>``
``granular``  compute and disk as two request groups, ``group_policy=none``
``nested``    compute from one NUMA child (``HW_NUMA_ROOT``), disk unsuffixed
``seed``      one destination for placement-bench's "medium" (2 vCPU, 4 GB, no disk,
              ``limit=1``): the seed's "select a destination", on its cloud
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from berth.bench.cloud import GPU_TRAIT, aggregate_uuid
from berth.bench.records import latency_summary
from berth.bench.transport import Transport

BASE = "resources=VCPU:2,MEMORY_MB:4096,DISK_GB:20"
QUERIES: dict[str, str] = {
    "limit": f"{BASE}&limit=50",
    "nolimit": BASE,
    "trait": f"{BASE}&required={GPU_TRAIT}&limit=50",
    "member_of": f"{BASE}&member_of={aggregate_uuid(0)}&limit=50",
    "granular": (
        "resources1=VCPU:2,MEMORY_MB:4096&resources2=DISK_GB:20&group_policy=none&limit=50"
    ),
    "nested": (
        "resources=DISK_GB:20&resources1=VCPU:2,MEMORY_MB:4096"
        "&required1=HW_NUMA_ROOT&group_policy=none&limit=50"
    ),
    "seed": "resources=VCPU:2,MEMORY_MB:4096&limit=1",
}
DEFAULT_MIX = ("limit", "nolimit", "trait", "member_of", "granular")


@dataclass
class Cell:
    """One query at one concurrency: what happened."""

    query: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    candidates: int = -1
    elapsed: float = 0.0
    cold_ms: float = 0.0

    def result(self) -> dict[str, Any]:
        """The numbers for a result line."""
        done = len(self.latencies)
        return {
            "requests": done,
            "errors": self.errors,
            "candidates": self.candidates,
            "throughput_rps": round(done / self.elapsed, 2) if self.elapsed else 0.0,
            "cold_ms": round(self.cold_ms, 2),
            **latency_summary(self.latencies),
        }


def _count(body: bytes) -> int:
    """How many allocation requests a candidates answer holds."""
    return len(orjson.loads(body).get("allocation_requests", []))


def timed_get(transport: Transport, query: str) -> tuple[float, int, bytes]:
    """One GET /allocation_candidates: (seconds, status, body)."""
    began = time.perf_counter()
    status, body = transport.request("GET", "/allocation_candidates?" + query)
    return time.perf_counter() - began, status, body


def run_cell(
    transport: Transport,
    name: str,
    concurrency: int,
    requests: int,
    seconds: float,
    advance: Callable[[int], None] | None = None,
) -> Cell:
    """Send ``requests`` queries ``name`` (at most ``seconds``) from ``concurrency`` threads."""
    query = QUERIES.get(name, name)
    cell = Cell(name, concurrency)
    cold, status, body = timed_get(transport, query)
    cell.cold_ms = cold * 1000
    cell.candidates = _count(body) if status == 200 else -1
    lock = threading.Lock()
    issued = 0
    deadline = time.monotonic() + seconds

    def loop() -> None:
        """One thread: send requests until the count or the time is used up."""
        nonlocal issued
        while time.monotonic() < deadline:
            with lock:
                if issued >= requests:
                    return
                issued += 1
            took, status, _ = timed_get(transport, query)
            with lock:
                if status == 200:
                    cell.latencies.append(took)
                else:
                    cell.errors += 1
            if advance:
                advance(1)

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(loop) for _ in range(concurrency)]:
            future.result()
    cell.elapsed = time.monotonic() - began
    return cell


def concurrency_steps(highest: int) -> list[int]:
    """1, 2, 4, ... up to ``highest`` (which is always included)."""
    steps, c = [], 1
    while c < highest:
        steps.append(c)
        c *= 2
    return [*steps, max(1, highest)]
