"""What pinging pooled connections before every use costs (``BERTH_DATABASE_PING_AFTER=0``).

Not a test: a measurement behind docs/operations.md ("Database outages").
Over a private PostgreSQL or MariaDB server it measures

1. in one process, the time of ``db.read()`` + ``SELECT 1`` with and
   without a ping at every checkout, and
2. over HTTP, a ``berth serve`` with 2 workers under 8 client threads
   (``GET /resource_providers/{uuid}`` and ``GET /allocation_candidates``),
   alternating runs with ``BERTH_DATABASE_PING_AFTER`` 0 and 1 (the default).

Run: ``PYTHONPATH=. python -m tests.faults.measure_ping [postgresql|mysql] [seconds]``.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import running_berth

from berth.db import migrate
from berth.db.engine import Database, Timeouts
from berth.placement import catalog
from tests.faults.private_db import SERVERS
from tests.scheduler.conftest import write_cloud

HEADERS = {"x-auth-token": "admin", "openstack-api-version": "placement 1.36"}
CLIENTS = 8


def checkouts(url: str, ping_after: float, n: int = 3000) -> float:
    """Microseconds per ``db.read()`` + ``SELECT 1``."""
    db = Database(url, Timeouts(ping_after=ping_after))
    try:
        for _ in range(100):
            with db.read() as conn:
                conn.execute(text("SELECT 1"))
        started = time.perf_counter()
        for _ in range(n):
            with db.read() as conn:
                conn.execute(text("SELECT 1"))
        return (time.perf_counter() - started) / n * 1e6
    finally:
        db.dispose()


def http_run(url: str, hosts: list[str], ping_after: float, seconds: float) -> dict[str, float]:
    """Requests/s and latency percentiles (ms) of one server run."""
    env = {"BERTH_DATABASE_PING_AFTER": str(ping_after)}
    latencies: list[float] = []
    with running_berth(url, workers=2, env=env) as base:
        stop = time.monotonic() + seconds

        def client(seed: int) -> None:
            with httpx.Client(base_url=base, headers=HEADERS, timeout=30) as http:
                http.get("/allocation_candidates", params={"resources": "VCPU:1"})  # warm
                i = seed
                while time.monotonic() < stop:
                    started = time.perf_counter()
                    if i % 2:
                        r = http.get(f"/resource_providers/{hosts[i % len(hosts)]}")
                    else:
                        r = http.get(
                            "/allocation_candidates", params={"resources": "VCPU:1", "limit": "5"}
                        )
                    assert r.status_code == 200, r.text
                    latencies.append(time.perf_counter() - started)
                    i += 1

        threads = [threading.Thread(target=client, args=(s,)) for s in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    q = statistics.quantiles(latencies, n=100)
    return {"rps": len(latencies) / seconds, "p50": q[49] * 1000, "p99": q[98] * 1000}


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "postgresql"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 8.0
    with SERVERS[kind]() as server:
        url = server.create_database("berth_ping")
        db = Database(url)
        migrate.upgrade(db)
        catalog.sync(db)
        hosts = write_cloud(db, 50)
        db.dispose()
        for ping_after in (1.0, 0.0, 1.0, 0.0):
            print(
                f"{kind} checkout+SELECT 1, ping_after={ping_after}: "
                f"{checkouts(url, ping_after):.1f} us"
            )
        results: dict[float, list[dict[str, float]]] = {0.0: [], 1.0: []}
        for ping_after in (1.0, 0.0, 1.0, 0.0, 1.0, 0.0):
            result = http_run(url, hosts, ping_after, seconds)
            results[ping_after].append(result)
            print(
                f"{kind} http ping_after={ping_after}: "
                + ", ".join(f"{k} {v:.1f}" for k, v in result.items())
            )
        for ping_after, runs in results.items():
            print(
                f"{kind} http ping_after={ping_after} median of {len(runs)}: "
                + ", ".join(f"{k} {statistics.median(r[k] for r in runs):.1f}" for k in runs[0])
            )


if __name__ == "__main__":
    main()
