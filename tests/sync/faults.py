"""The outage every backend's fault test plays: up, server gone, back.

Two workers (host catalogs with backends of their own) and a writer share a
SQLite database.  The workers read the change logs every ``R`` seconds when
their backend is down and every ``CHECK`` (far longer than the test) when it
listens, so what they see while it listens came pushed.

1. Up: a write is seen by both through the backend (no read of the logs).
2. The server goes: a write committed then (its publish fails) is seen by
   both within ``DETECT + R`` of its commit: they noticed and fell back to
   the logs (the documented bound during an outage, docs/scheduler.md).
   Then writes keep coming while the workers answer: whenever a worker does
   not trust its backend, what it holds lacks no write committed more than
   ``R`` before.
3. It returns: both trust it again once they read the logs, and a write is
   seen through the backend again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from berth.db.engine import Database
from berth.scheduler.hoststate import HostCatalog
from berth.sync import protocol
from berth.sync.protocol import StateSync
from tests.scheduler.conftest import host_uuid, write_cloud
from tests.sync.helpers import cpu, live, put_metric, wait_for

H1 = host_uuid(1)
R = 0.2
CHECK = 60.0
# How long a worker may take to notice that its server is gone (docs/scheduler.md: at
# once when its connection closes), with room for a busy machine.
DETECT = 3.0
SLACK = 1.0


def _seen_pushed(db: Database, writer: StateSync, readers: list[HostCatalog], value: int) -> None:
    polls = [r.counts["polls"] for r in readers]
    put_metric(db, writer, H1, value)
    for reader in readers:
        wait_for(lambda r=reader: (r.refresh(R), cpu(r, H1) == value)[1], 5, f"{value} pushed")  # type: ignore[misc]
    assert [r.counts["polls"] for r in readers] == polls, "read the logs instead"


def _polling_within_r(db: Database, writer: StateSync, readers: list[HostCatalog]) -> int:
    """Write 10, 11, ... every 50 ms for a second while the readers answer; every answer of
    a reader that does not trust its backend holds each write committed ``R`` before it.
    Returns how many answers were judged."""
    committed: list[tuple[float, int]] = []
    judged = 0
    for value in range(10, 30):
        put_metric(db, writer, H1, value)
        committed.append((time.monotonic(), value))
        time.sleep(0.05)
        for reader in readers:
            asked = time.monotonic()
            reader.refresh(R)
            if reader.live:
                continue
            due = [v for at, v in committed if at <= asked - R]
            seen = cpu(reader, H1)
            assert not due or (seen is not None and seen >= due[-1]), (seen, due[-1])
            judged += 1
    return judged


def outage(
    db: Database,
    open_sync: Callable[[], StateSync],
    kill: Callable[[list[HostCatalog]], None],
    revive: Callable[[], None],
    stays_down: bool = True,
) -> None:
    """Play the outage (module docstring); ``kill`` ends the server (or the readers'
    connections to it), ``revive`` brings it back."""
    write_cloud(db, 2)
    writer = open_sync()
    readers = [HostCatalog(db, open_sync(), CHECK) for _ in range(2)]
    for reader in readers:
        wait_for(live(reader, R), 10, "listening and trusted")
    _seen_pushed(db, writer, readers, 1)

    epochs = [r.synced_epoch for r in readers]
    kill(readers)
    committed = time.monotonic()
    put_metric(db, writer, H1, 2)
    for reader in readers:
        wait_for(lambda r=reader: (r.refresh(R), cpu(r, H1) == 2)[1], DETECT + R + SLACK, "2")  # type: ignore[misc]
    assert time.monotonic() - committed <= DETECT + R + SLACK
    if stays_down:
        assert not any(r.live for r in readers), "still trusting a backend that is gone"
        assert _polling_within_r(db, writer, readers) > 0

    revive()
    for reader in readers:
        wait_for(live(reader, R), 15, "trusted again")
    assert all(r.synced_epoch > e for r, e in zip(readers, epochs, strict=True))
    time.sleep(protocol.PUBLISH_RETRY_S)  # the writer tries the server again after this
    _seen_pushed(db, writer, readers, 3)
