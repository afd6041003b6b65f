"""Claims/s of N concurrent scheduler processes (a quick benchmark, not a test).

placement-bench's setup: compute nodes with 24 cores (ratio 16) and 256 GB
of RAM (ratio 1.5); six request sizes from 64 MB / 1 vCPU to 32 GB / 16 vCPU;
W worker processes, pack-first, each calling :func:`select_destinations` in
a loop for a fixed time.  Prints successful claims/s, conflicts (lost races
plus refused claims) and request latency percentiles::

    python -m tests.scheduler.bench_claims --database-url postgresql+psycopg://.../sched \\
        --hosts 800 --workers 8 --partitioning modulo --seconds 20 [--profile out.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import random
import statistics
import sys
import time
from collections import Counter
from typing import Any

from berth.candidates.synthetic import ProviderSpec

from berth import settings as settings_mod
from berth.candidates import synthetic
from berth.db import migrate
from berth.db.engine import Database
from berth.logging import configure as configure_logging
from berth.placement import catalog
from berth.scheduler import NoValidHost, RequestSpec, select_destinations
from berth.services import Services

SIZES = [(1, 64), (1, 512), (2, 2048), (4, 4096), (8, 16384), (16, 32768)]
NODE = {
    "VCPU": (24, 0, 1, 24, 1, 16.0),
    "MEMORY_MB": (262144, 0, 1, 262144, 1, 1.5),
}


def load(url: str, hosts: int) -> None:
    """A fresh schema with ``hosts`` compute nodes."""
    db = Database(url)
    if db.dialect != "sqlite":
        sys.path.insert(0, ".")
        from tests.conftest import wipe

        wipe(db)
    migrate.upgrade(db)
    catalog.sync(db)
    specs = [
        ProviderSpec(uuid=f"00000000-0000-0000-0000-{i:012d}", name=f"cn{i}", inventories=NODE)
        for i in range(1, hosts + 1)
    ]
    with db.write() as conn:
        synthetic.write(conn, specs)
    db.dispose()


def _services(args: argparse.Namespace, index: int) -> Services:
    settings = settings_mod.load(
        environ={},
        database_url=args.database_url,
        log_level="WARNING",
        scheduler_weighers=args.weighers,
        scheduler_partitioning=args.partitioning,
        scheduler_worker_index=index,
        scheduler_worker_count=args.workers,
        scheduler_scan_limit=args.scan_limit,
        scheduler_index_refresh_ms=args.index_refresh_ms,
        scheduler_host_subset_size=args.subset,
        scheduler_scan_random_start=args.random_start,
    )
    configure_logging(settings)
    return Services.from_settings(settings)


def _spec(rng: random.Random, batch: int, dry_run: bool = False) -> RequestSpec:
    vcpu, ram = rng.choice(SIZES)
    return RequestSpec(
        {"VCPU": vcpu, "MEMORY_MB": ram}, num_instances=batch, project_id="bench", dry_run=dry_run
    )


def worker(args: argparse.Namespace, index: int, start: Any, out: Any) -> None:
    """One scheduler process: warm up, wait for the others, schedule until the deadline."""
    services = _services(args, index)
    rng = random.Random(index)
    select_destinations(services, _spec(rng, 1, dry_run=True))  # loads the index
    stats: Counter[str] = Counter()
    latencies: list[float] = []
    # CPU time, not wall time: on a shared machine waiting says little.
    profile = cProfile.Profile(time.process_time) if args.profile and index == 0 else None
    start.wait()
    deadline = time.monotonic() + args.seconds
    cpu = time.process_time()
    if profile:
        profile.enable()
    while time.monotonic() < deadline:
        began = time.perf_counter()
        try:
            answer = select_destinations(services, _spec(rng, args.batch))
        except NoValidHost:
            stats["no_valid_host"] += 1
            continue
        finally:
            latencies.append(time.perf_counter() - began)
        stats["claimed"] += len(answer.selections)
        stats["requests"] += 1
        stats["lost_races"] += answer.lost_races
        stats["refused"] += answer.refused
    stats["cpu_us"] = int((time.process_time() - cpu) * 1e6)
    if profile:
        profile.disable()
        profile.dump_stats(args.profile)
    out.put((dict(stats), latencies))


def _postgres_cpu() -> float:
    """CPU seconds used so far by every process named postgres (Linux; 0 elsewhere)."""
    import os

    total = 0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else ():
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)
            if "(postgres" not in fields[0]:
                continue
            rest = fields[1].split()
            total += int(rest[11]) + int(rest[12])
        except (OSError, ValueError, IndexError):
            continue
    return total / tick


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the workers, gather their counts, summarise."""
    mp = multiprocessing.get_context("spawn")
    start, out = mp.Barrier(args.workers + 1), mp.Queue()
    procs = [mp.Process(target=worker, args=(args, i, start, out)) for i in range(args.workers)]
    for p in procs:
        p.start()
    start.wait()
    began = time.monotonic()
    pg_began = _postgres_cpu()
    stats: Counter[str] = Counter()
    latencies: list[float] = []
    for _ in procs:
        counts, lat = out.get(timeout=args.seconds + 600)
        stats.update(counts)
        latencies += lat
    elapsed = time.monotonic() - began
    pg_cpu = _postgres_cpu() - pg_began
    for p in procs:
        p.join()
    conflicts = stats["lost_races"] + stats["refused"]
    attempts = stats["requests"] + conflicts
    latencies.sort()
    return {
        "claims_per_s": stats["claimed"] / args.seconds,
        "requests_per_s": stats["requests"] / args.seconds,
        "conflicts_per_s": conflicts / args.seconds,
        "conflict_pct": 100 * conflicts / attempts if attempts else 0.0,
        "no_valid_host": stats["no_valid_host"],
        "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
        "claimed": stats["claimed"],
        "client_cpu_ms_per_claim": stats["cpu_us"] / 1000 / max(1, stats["claimed"]),
        # Every postgres process on this machine (other users of the server count too).
        "postgres_cpu_ms_per_claim": pg_cpu * 1000 / max(1, stats["claimed"]),
        "elapsed": elapsed,
    }


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--partitioning", default="none")
    parser.add_argument("--weighers", default="ram=-1,cpu=-1")
    parser.add_argument("--batch", type=int, default=1, help="instances per request")
    parser.add_argument("--scan-limit", type=int, default=0)
    parser.add_argument("--index-refresh-ms", type=int, default=0)
    parser.add_argument("--subset", type=int, default=1)
    parser.add_argument("--random-start", action="store_true")
    parser.add_argument("--profile", default="", help="cProfile worker 0 into this file")
    parser.add_argument("--no-load", action="store_true", help="reuse the database as it is")
    args = parser.parse_args(argv)
    if not args.no_load:
        load(args.database_url, args.hosts)
    result = run(args)
    shown = ", ".join(
        f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
    )
    settings = (
        f"hosts={args.hosts} workers={args.workers} partitioning={args.partitioning} "
        f"batch={args.batch} scan_limit={args.scan_limit} "
        f"index_refresh_ms={args.index_refresh_ms}"
    )
    print(f"{settings}: {shown}", flush=True)


if __name__ == "__main__":
    main()
