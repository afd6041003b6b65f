"""Measure GET /allocation_candidates over HTTP against a synthetic cloud (not a test).

    .venv/bin/python tests/candidates/bench_http.py -n 10000 [--filter sql] [--requests 500]

Loads the cloud with :mod:`berth.candidates.synthetic` into a fresh SQLite
file (or reuses ``--database-url``), starts ``berth serve`` with one worker,
times the first request (cold index load), then sends requests one at a time
over a keep-alive connection and prints p50/p99, plus the worker's RSS.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import running_berth

from berth.candidates import synthetic

QUERIES = {
    "limit50": "resources=VCPU:2,MEMORY_MB:4096,DISK_GB:20&limit=50",
    "gpu_limit50": "resources=VCPU:2,MEMORY_MB:4096,DISK_GB:20&required=CUSTOM_GPU&limit=50",
    "all": "resources=VCPU:2,MEMORY_MB:4096,DISK_GB:20",
}


def _get(conn: http.client.HTTPConnection, query: str) -> tuple[float, int, bytes]:
    headers = {"x-auth-token": "admin", "openstack-api-version": "placement 1.39"}
    started = time.perf_counter()
    conn.request("GET", "/allocation_candidates?" + query, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    return time.perf_counter() - started, resp.status, body


def _rss_mb(port: int) -> float:
    """RSS of the gunicorn worker (the child listening process with the most memory)."""
    out = subprocess.run(["ps", "-eo", "rss,args"], capture_output=True, text=True).stdout
    rss = [int(line.split()[0]) for line in out.splitlines() if f":{port}" in line]
    return max(rss, default=0) / 1024


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def main() -> None:
    """Run the benchmark and print one line per query."""
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--providers", type=int, default=10_000)
    parser.add_argument("--database-url")
    parser.add_argument("--filter", default="memory")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--queries", default="limit50,gpu_limit50,all")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="berth-bench-")
    url = args.database_url or f"sqlite:///{tmp}/bench.sqlite"
    if not args.database_url:
        started = time.monotonic()
        synthetic.main(["--database-url", url, "-n", str(args.providers)])
        print(f"load: {time.monotonic() - started:.1f}s")
    env = {"BERTH_CANDIDATES_FILTER": args.filter, "BERTH_LOG_LEVEL": "WARNING"}
    spawned = time.monotonic()
    with running_berth(url, workers=1, env=env) as base:
        port = int(base.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port)
        first = QUERIES[args.queries.split(",")[0]]
        cold, status, body = _get(conn, first)
        print(
            f"cold first request: {cold * 1000:.0f} ms (status {status}); "
            f"start to first answer: {time.monotonic() - spawned:.2f}s"
        )
        for name in args.queries.split(","):
            query = QUERIES[name]
            count = args.requests if name != "all" else max(10, args.requests // 25)
            times = []
            for _ in range(count):
                elapsed, status, body = _get(conn, query)
                assert status == 200, body[:300]
                times.append(elapsed)
            found = len(json.loads(body)["allocation_requests"])
            print(
                f"{name:12s} n={count:4d} candidates={found:6d} "
                f"p50={statistics.median(times) * 1000:7.2f} ms "
                f"p99={_percentile(times, 99) * 1000:7.2f} ms "
                f"max={max(times) * 1000:7.2f} ms"
            )
        print(f"worker RSS: {_rss_mb(port):.0f} MB")
    if not args.database_url:
        os.remove(f"{tmp}/bench.sqlite")


if __name__ == "__main__":
    main()
