"""What looking for messages NATS lost costs a sweeper pass (berth/pull/recovery.py).

Not a test: a measurement behind docs/pull.md ("Faults").  On a scratch
database of the chosen server and a private nats-server, ``ROWS`` instances
are queued and published (the stream holds every message, as it does when
nothing was lost), then sweeper passes are timed, alternating a pass as
built and one with the check left out (``recovery.send_lost`` replaced by
nothing); then, ``LOSSES`` times, the streams are deleted (as a NATS that
lost its store) and the pass that finds and sends the messages again is
timed.

Run: ``PYTHONPATH=. python -m tests.pull_faults.measure_recovery
[postgresql|mysql|sqlite] [rows] [passes]``.
"""

from __future__ import annotations

import datetime
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from berth import settings as settings_mod
from berth.db import migrate
from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.placement import catalog
from berth.pull import outbox, queues, recovery, requests, sweeper
from berth.pull.bus import Bus
from berth.scheduler import flavors
from tests.conftest import _admin
from tests.pull.conftest import NatsServer, free_port

ADMIN = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
}
LOSSES = 5


def _database(backend: str, tmp: Path) -> tuple[str, Callable[[], None]]:
    """A scratch database's URL, and how to drop it."""
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'measure.sqlite'}", lambda: None
    name = f"berth_measure_{int(time.time())}"
    _admin(ADMIN[backend], f"CREATE DATABASE {name}")
    url = str(make_url(ADMIN[backend]).set(database=name).render_as_string(False))
    return url, lambda: _admin(ADMIN[backend], f"DROP DATABASE IF EXISTS {name}")


def _queue(db: Database, bus: Bus, settings: Any, rows: int) -> None:
    """``rows`` instances queued (100 a request) and published."""
    with db.write() as conn:
        flavors.create(conn, flavors.from_body({"name": "small", "resources": {"VCPU": 1}}))
    queues.sync(db, bus, settings)
    for n in range(0, rows, 100):
        order = requests.Order("small", min(100, rows - n), f"p{n // 100}", "u")
        with db.write() as conn:
            made = requests.enqueue(conn, order, ttl_seconds=3600)
        assert outbox.send(db, bus, made.instances) == len(made.instances)


def _ms(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def main(backend: str = "postgresql", rows: int = 1000, passes: int = 40) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        url, drop = _database(backend, tmp)
        nats = NatsServer(free_port(), tmp / "jetstream")
        nats.start()
        db = Database(url)
        try:
            migrate.upgrade(db)
            catalog.sync(db)
            settings = settings_mod.load(environ={}, database_url=url, nats_url=nats.url)
            bus = Bus(nats.url, settings.nats_timeout_s, 0)
            try:
                _measure(db, bus, settings, nats, rows, passes)
            finally:
                bus.close()
        finally:
            db.dispose()
            nats.stop()
            drop()


def _measure(db: Database, bus: Bus, settings: Any, nats: NatsServer, rows: int, n: int) -> None:
    _queue(db, bus, settings, rows)
    streams = recovery.Streams()
    later = utcnow() + datetime.timedelta(seconds=recovery.GRACE_S + 60)  # every row judged

    def one_pass() -> sweeper.Pass:
        return sweeper.run_pass(db, settings, lambda: bus, now=later, streams=streams)

    as_built = recovery.send_lost
    timed: dict[str, list[float]] = {"with": [], "without": [], "send_lost": []}
    one_pass()  # warm: connections, statements
    for _ in range(n):
        timed["with"].append(_ms(one_pass))
        recovery.send_lost = lambda *args: 0  # type: ignore[assignment]
        try:
            timed["without"].append(_ms(one_pass))
        finally:
            recovery.send_lost = as_built
        timed["send_lost"].append(_ms(lambda: as_built(db, bus, settings, later)))
    lost: list[tuple[float, int]] = []
    for _ in range(LOSSES):
        nats.empty()
        started = time.perf_counter()
        report = one_pass()
        lost.append(((time.perf_counter() - started) * 1000, report.lost))
    print(f"{db.dialect}, {rows} rows queued and published, {n} passes each (ms):")
    for label, values in timed.items():
        q = statistics.quantiles(values, n=10)
        print(f"  {label:<9} median {statistics.median(values):7.2f}  p10 {q[0]:7.2f}"
              f"  p90 {q[-1]:7.2f}")  # fmt: skip
    for ms, count in lost:
        print(f"  a pass after the streams were lost: {ms:7.1f} ms, {count} sent again")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0] if args else "postgresql", *(int(a) for a in args[1:3]))
