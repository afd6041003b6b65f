"""The registration storm: many compute hosts registering through the Placement API at once.

Each host does what nova-compute does when it first reports: create its
provider (``POST /resource_providers``), then set its inventories, its
traits and its aggregates (three ``PUT``s, each with the generation the
previous answer gave), four writes in all; a failed call ends that host's
registration.  C concurrent clients are P client processes (spawned) of T
threads each, every thread with its own keep-alive connection; host *i*
belongs to client *i* mod C.  All clients connect, wait at a barrier, then
register their hosts one after the other.

The hosts are placement-bench's (24 cores x16, 256 GB x1.5 with 1,024 MB
reserved), each with four standard traits nova reports for a libvirt host
and its row's aggregate (100 hosts a row, as placement-bench groups them).
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from berth.bench import cloud
from berth.bench.processes import launch
from berth.bench.progress import Advance
from berth.bench.records import latency_summary
from berth.bench.transport import HttpTransport, Transport

KINDS = ("create", "inventories", "traits", "aggregates")
TRAITS = (
    "COMPUTE_NET_ATTACH_INTERFACE",
    "COMPUTE_VOLUME_EXTEND",
    "HW_CPU_X86_AVX2",
    "HW_CPU_X86_SSE42",
)
HOSTS_PER_ROW = 100
_INVENTORY_FIELDS = ("total", "reserved", "min_unit", "max_unit", "step_size", "allocation_ratio")


@dataclass(frozen=True)
class Storm:
    """The workload: how many hosts, from how many clients."""

    url: str
    hosts: int
    processes: int = 2
    threads: int = 32

    @property
    def clients(self) -> int:
        """Concurrent clients (processes x threads)."""
        return self.processes * self.threads


def host_specs(hosts: int) -> list[cloud.ProviderSpec]:
    """The hosts that register: placement-bench's, with traits and their row's aggregate."""
    specs = cloud.build(cloud.from_profile("placement-bench", hosts))
    for index, spec in enumerate(specs):
        spec.traits = set(TRAITS)
        spec.aggregates = {cloud.aggregate_uuid(index // HOSTS_PER_ROW)}
    return specs


def inventories_of(spec: cloud.ProviderSpec) -> dict[str, dict[str, Any]]:
    """The ``inventories`` of a PUT /resource_providers/{uuid}/inventories for ``spec``."""
    return {
        rc: dict(zip(_INVENTORY_FIELDS, inv, strict=True)) for rc, inv in spec.inventories.items()
    }


def _bodies(spec: cloud.ProviderSpec) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(kind, method, path, body) of the four writes; generations are filled in as answered."""
    path = f"/resource_providers/{spec.uuid}"
    inventories = inventories_of(spec)
    return [
        ("create", "POST", "/resource_providers", {"name": spec.name, "uuid": spec.uuid}),
        ("inventories", "PUT", path + "/inventories", {"inventories": inventories}),
        ("traits", "PUT", path + "/traits", {"traits": sorted(spec.traits)}),
        ("aggregates", "PUT", path + "/aggregates", {"aggregates": sorted(spec.aggregates)}),
    ]


class Client:
    """One registering client: its own connection, its counts and latencies per call kind."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.counts: Counter[str] = Counter()
        self.latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}

    def register(self, spec: cloud.ProviderSpec) -> bool:
        """The four writes of one host; False at the first that fails."""
        generation = 0
        for kind, method, path, body in _bodies(spec):
            if kind != "create":
                body = {**body, "resource_provider_generation": generation}
            t0 = time.perf_counter()
            status, raw = self.transport.request(method, path, body)
            took = time.perf_counter() - t0
            if not 200 <= status < 300:
                self.counts[f"error {kind} {status}"] += 1
                return False
            self.latencies[kind].append(took)
            self.counts["writes"] += 1
            generation = _generation(raw, generation)
        self.counts["registered"] += 1
        return True


def _generation(raw: bytes, previous: int) -> int:
    """The provider generation an answer gives (the previous one if it gives none)."""
    if not raw:
        return previous
    value = orjson.loads(raw)
    found = value.get("resource_provider_generation", value.get("generation", previous))
    return int(found)


def _client_hosts(storm: Storm, client: int) -> range:
    """Host indices of client ``client``: every C-th from its number."""
    return range(client, storm.hosts, storm.clients)


def work(storm: Storm, index: int, start: Any, out: Any, done: Any) -> None:
    """One client process: T threads, a connection each; puts its counts and latencies."""
    specs = host_specs(storm.hosts)
    transport = HttpTransport(storm.url)
    clients = [Client(transport) for _ in range(storm.threads)]

    def run(n: int) -> None:
        """Thread ``n``'s client: connect, wait for everyone, register its hosts."""
        client = clients[n]
        transport.request("GET", "/")  # connect before the clock starts
        start.wait()
        for host in _client_hosts(storm, index * storm.threads + n):
            client.register(specs[host])
            with done.get_lock():
                done.value += 1

    threads = [threading.Thread(target=run, args=(n,)) for n in range(storm.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for client in clients:
        counts.update(client.counts)
        for kind in KINDS:
            latencies[kind] += client.latencies[kind]
    out.put((dict(counts), latencies, time.monotonic()))


def run(storm: Storm, advance: Advance | None = None) -> dict[str, Any]:
    """The storm; providers/s, writes/s, errors and per-kind latencies."""
    mp = multiprocessing.get_context("spawn")
    start, out, done = mp.Barrier(storm.clients + 1), mp.Queue(), mp.Value("q", 0)
    procs = [
        mp.Process(target=work, args=(storm, i, start, out, done)) for i in range(storm.processes)
    ]
    launch(procs, start, "client")
    began = time.monotonic()
    results = _gather(procs, out, done, advance)
    for p in procs:
        p.join()
    return summarise(results, began)


def _gather(
    procs: list[Any], out: Any, done: Any, advance: Advance | None
) -> list[tuple[dict[str, int], dict[str, list[float]], float]]:
    """Every process's (counts, latencies, end time), moving the bar by hosts done."""
    results: list[tuple[dict[str, int], dict[str, list[float]], float]] = []
    shown = 0
    while len(results) < len(procs):
        try:
            results.append(out.get(timeout=0.5))
        except queue.Empty:
            if not any(p.is_alive() for p in procs) and out.empty():
                raise RuntimeError("a client process died (see its traceback)") from None
        now = int(done.value)
        if advance and now > shown:
            advance(now - shown)
            shown = now
    return results


def summarise(
    results: list[tuple[dict[str, int], dict[str, list[float]], float]], began: float
) -> dict[str, Any]:
    """Totals, rates over the time until the last process finished, latencies per kind."""
    counts: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    ended = began
    for found, lat, finished in results:
        counts.update(found)
        for kind in KINDS:
            latencies[kind] += lat.get(kind, [])
        ended = max(ended, finished)
    seconds = ended - began
    errors = {k.removeprefix("error "): v for k, v in sorted(counts.items()) if k[:6] == "error "}
    out: dict[str, Any] = {
        "registered": counts["registered"],
        "writes": counts["writes"],
        "errors": sum(errors.values()),
        "errors_by_call": errors,
        "seconds": round(seconds, 3),
        "providers_per_s": round(counts["registered"] / seconds, 2) if seconds else 0.0,
        "writes_per_s": round(counts["writes"] / seconds, 2) if seconds else 0.0,
    }
    for kind in KINDS:
        summary = latency_summary(latencies[kind])
        out[f"{kind}_p50_ms"] = summary["p50_ms"]
        out[f"{kind}_p99_ms"] = summary["p99_ms"]
    return out
