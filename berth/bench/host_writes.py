"""One process of ``berth bench host-updates``, run as a script against any berth tree.

``python host_writes.py TREE prepare URL HOSTS`` migrates the (empty) database
at ``URL`` with TREE's migrations and writes HOSTS providers; it prints them
as a JSON list.  ``python host_writes.py TREE write URL SECONDS RTT_MS
HOST...`` connects, prints ``ready``, waits for a line on its stdin, then
writes metrics to its hosts in turn (TREE's own host write, in a write
transaction retried as the API retries it) for SECONDS and prints each
write's latency and how many writes lost every attempt, as JSON.

It imports ``berth`` from TREE, not from where it was installed, so the same
run can measure an older checkout beside this one (:mod:`berth.bench.hostupdates`).
It is therefore started by path and imports nothing of berth before it has
put TREE first on ``sys.path``.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import time
from typing import Any, TextIO

ATTEMPTS = 10  # attempts of one write, as the API makes them (berth.placement.write.retry)
WARM_ATTEMPTS = 100


def _use_tree(tree: str) -> None:
    sys.path[0] = tree  # instead of this file's folder, whose modules would shadow others
    import berth

    if not berth.__file__ or not berth.__file__.startswith(tree.rstrip("/") + "/"):
        raise SystemExit(f"berth was imported from {berth.__file__}, not from {tree}")


def _host_write(host_attributes: Any) -> Any:
    """``write(conn, host, metrics)`` with the tree's own host write (its signature changed
    in scheduler 1.3, when host state moved into namespaces)."""
    if list(inspect.signature(host_attributes.put_host).parameters)[1] == "rules":
        from berth.scheduler.namespaces import StateRules

        rules = StateRules(65536)
        return lambda conn, host, metrics: host_attributes.put_host(
            conn, rules, host, {"metrics": metrics}
        )
    return lambda conn, host, metrics: host_attributes.put_host(
        conn, host, host_attributes.HostAttributes(metrics=metrics)
    )


def prepare(url: str, hosts: int) -> list[str]:
    """Migrate the database at ``url`` and write ``hosts`` hosts; their uuids."""
    from berth.bench import cloud_db
    from berth.bench.cloud import ProviderSpec
    from berth.db import migrate
    from berth.db.engine import Database
    from berth.placement import catalog

    db = Database(url)
    migrate.upgrade(db)
    catalog.sync(db)
    specs = [
        ProviderSpec(
            uuid=f"00000000-0000-0000-0000-{i:012d}",
            name=f"cn{i}",
            inventories={"VCPU": (8, 0, 1, 8, 1, 1.0)},
        )
        for i in range(1, hosts + 1)
    ]
    with db.write() as conn:
        cloud_db.write(conn, specs)
    db.dispose()
    return [s.uuid for s in specs]


def write(
    url: str, seconds: float, rtt: float, hosts: list[str], protocol: TextIO
) -> dict[str, Any]:
    """Write metrics to ``hosts`` in turn for ``seconds`` once told to: each write's
    seconds (``latencies``), and how many lost every attempt (``gave_up``).

    ``rtt`` seconds are waited before each statement and commit (no CPU): the
    database on another machine, where a lock held across a transaction's
    round trips bounds every writer's rate.
    """
    from sqlalchemy import event

    from berth.db.engine import Database
    from berth.placement.errors import ConcurrentUpdate
    from berth.placement.write.retry import atomically
    from berth.scheduler import host_attributes

    db = Database(url)
    if rtt > 0:
        for name in ("before_cursor_execute", "commit"):
            event.listen(db.engine, name, lambda *_: time.sleep(rtt))
    host_write = _host_write(host_attributes)
    # One write before the clock starts: connected, and whatever the first write loads loaded
    # (the writers start together: with one shared row, that write may lose a few times).
    warm = functools.partial(host_write, host=hosts[0], metrics={})
    for _ in range(WARM_ATTEMPTS):
        try:
            atomically(db, warm, ATTEMPTS, operation="bench")
            break
        except ConcurrentUpdate:
            continue
    print("ready", file=protocol, flush=True)
    sys.stdin.readline()
    latencies: list[float] = []
    gave_up, stop, i = 0, time.monotonic() + seconds, 0
    while time.monotonic() < stop:
        host, metrics = hosts[i % len(hosts)], {"cpu": float(i)}
        began = time.perf_counter()
        once = functools.partial(host_write, host=host, metrics=metrics)
        try:
            atomically(db, once, ATTEMPTS, operation="bench")
            latencies.append(time.perf_counter() - began)
        except ConcurrentUpdate:  # what the API would answer 409 to
            gave_up += 1
        i += 1
    db.dispose()
    return {"latencies": latencies, "gave_up": gave_up}


def main(argv: list[str]) -> int:
    # Only this protocol goes to stdout: whatever the tree prints (its logs: a retried write
    # logs) goes to stderr.
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    tree, mode, url, *rest = argv
    _use_tree(tree)
    if mode == "prepare":
        found: Any = prepare(url, int(rest[0]))
    else:
        seconds, rtt_ms, *hosts = rest
        found = write(url, float(seconds), float(rtt_ms) / 1000, hosts, protocol)
    print(json.dumps(found), file=protocol, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
