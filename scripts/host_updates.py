#!/usr/bin/env python3
"""Host updates per second with concurrent writers: the cost of one shared counter row.

Each of ``--writers`` processes writes metrics to its own hosts (scheduler
1.0's host write, ``berth.scheduler.host_attributes.put_host``, in a write
transaction retried as the API retries it) as fast as it can for
``--seconds``; the script prints the updates per second of all of them
together, and each write's latency.  Point ``--tree`` at a checkout to
measure its code: before scheduler 1.3 every host write bumped the one
``scheduler_revisions`` row, so writers queued behind its lock; from 1.3 a
write adds a row to the ``scheduler_state_changes`` log and shares no row
with other hosts' writes.

    nice -n 19 .venv/bin/python scripts/host_updates.py --tree /path/to/old/checkout
    nice -n 19 .venv/bin/python scripts/host_updates.py --tree .
    nice -n 19 .venv/bin/python scripts/host_updates.py --tree . --rtt-ms 2

With a local database the writers' own CPU is usually the limit; ``--rtt-ms``
adds a network round trip before each statement and commit (time.sleep, no
CPU), as when the database is on another machine, which is when a lock held
across a transaction's trips bounds everyone's rate.

A database of its own (``berth_hostupdates_<pid>``) is created on the server
of ``--admin-url`` and dropped at the end.  Not a benchmark of the suite:
nothing is recorded.
"""

from __future__ import annotations

import argparse
import inspect
import multiprocessing
import statistics
import sys
import time
from typing import Any


def _import_tree(tree: str) -> None:
    sys.path.insert(0, tree)
    import berth

    if not berth.__file__ or not berth.__file__.startswith(tree.rstrip("/") + "/"):
        raise SystemExit(f"berth was imported from {berth.__file__}, not from {tree}")


def _writer(
    tree: str,
    url: str,
    hosts: list[str],
    seconds: float,
    rtt: float,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    """One writer process: metrics to its hosts, round robin, for ``seconds`` once told to go."""
    _import_tree(tree)
    from sqlalchemy import event

    from berth.db.engine import Database
    from berth.placement.write.retry import atomically
    from berth.scheduler import host_attributes

    db = Database(url)
    if rtt > 0:  # the database on another machine: every statement and commit waits a trip
        for name in ("before_cursor_execute", "commit"):
            event.listen(db.engine, name, lambda *_: time.sleep(rtt))
    write = _host_write(host_attributes)
    latencies: list[float] = []
    with db.engine.connect():  # connected before the clock starts
        pass
    ready.put(True)
    go.wait()
    stop = time.monotonic() + seconds
    i = 0
    while time.monotonic() < stop:
        host, metrics = hosts[i % len(hosts)], {"cpu": float(i)}
        began = time.perf_counter()
        atomically(db, lambda conn, h=host, m=metrics: write(conn, h, m), 10, operation="bench")
        latencies.append(time.perf_counter() - began)
        i += 1
    db.dispose()
    out.put(latencies)


def _host_write(host_attributes: Any) -> Any:
    """``write(conn, host, metrics)`` with the tree's own host write (its signature changed)."""
    parameters = list(inspect.signature(host_attributes.put_host).parameters)
    if parameters[1] == "rules":  # scheduler 1.3: only the fields named are written
        from berth.scheduler.namespaces import StateRules

        rules = StateRules(65536)
        return lambda conn, host, metrics: host_attributes.put_host(
            conn, rules, host, {"metrics": metrics}
        )
    return lambda conn, host, metrics: host_attributes.put_host(
        conn, host, host_attributes.HostAttributes(metrics=metrics)
    )


def _prepare(admin_url: str, hosts: int) -> tuple[str, list[str]]:
    """A fresh database on the admin URL's server, migrated, with ``hosts`` providers."""
    from sqlalchemy.engine import make_url

    from berth.bench import cloud_db
    from berth.bench.cloud import ProviderSpec
    from berth.db import migrate
    from berth.db.engine import Database
    from berth.placement import catalog

    name = f"berth_hostupdates_{multiprocessing.current_process().pid}"
    _admin(admin_url, f"DROP DATABASE IF EXISTS {name}")
    _admin(admin_url, f"CREATE DATABASE {name}")
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    db = Database(url)
    migrate.upgrade(db)
    catalog.sync(db)
    specs = [
        ProviderSpec(
            uuid=f"00000000-0000-0000-0000-{i:012d}",
            name=f"cn{i}",
            inventories={"VCPU": (8, 0, 1, 8, 1, 1.0)},
            traits=set(),
            aggregates=set(),
        )
        for i in range(1, hosts + 1)
    ]
    with db.write() as conn:
        cloud_db.write(conn, specs)
    db.dispose()
    return url, [s.uuid for s in specs]


def _admin(url: str, statement: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", required=True, help="the berth checkout whose code to measure")
    parser.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--hosts", type=int, default=800)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--rtt-ms",
        type=float,
        default=0.0,
        help="network round trip added before each statement and commit (the database on "
        "another machine: locks are then held for the trips)",
    )
    args = parser.parse_args()
    _import_tree(args.tree)
    url, uuids = _prepare(args.admin_url, args.hosts)
    try:
        ctx = multiprocessing.get_context("spawn")
        out, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        procs = [
            ctx.Process(
                target=_writer,
                args=(
                    args.tree,
                    url,
                    uuids[w :: args.writers],
                    args.seconds,
                    args.rtt_ms / 1000,
                    ready,
                    go,
                    out,
                ),
            )
            for w in range(args.writers)
        ]
        for proc in procs:
            proc.start()
        for _ in procs:  # every writer imported and connected
            ready.get(timeout=300)
        go.set()
        latencies = [lat for _ in procs for lat in out.get(timeout=args.seconds + 120)]
        for proc in procs:
            proc.join()
    finally:
        _admin(args.admin_url, f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[-1]}")
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0.0
    print(
        f"{args.tree}: {len(latencies) / args.seconds:.1f} host updates/s "
        f"({args.writers} writers, {args.hosts} hosts, {args.seconds:g} s, "
        f"round trip {args.rtt_ms:g} ms), "
        f"latency p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
