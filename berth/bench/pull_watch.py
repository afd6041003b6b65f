"""Watching a pull run: which instances settled when, the window's count, when the run ends.

Every ``poll`` seconds one indexed query reads the uuids of the instances
still queued or claimed.  An instance the enqueuers reported accepted (its
``POST`` answered 202, so its rows were committed before the reading) that
is not among them has settled (active, or failed): its time is the reading's
minus its ``POST``'s.  The run ends when

* every accepted instance has settled and the enqueuers are done (``list``:
  the list was used up; ``full``: they were stopped), or
* nothing settled for ``settle`` seconds while instances wait and the
  enqueuers cannot add any (window full, or list used up): what waits fits
  on no host now, the cloud is full for it (``full``, or ``list``), or
* ``seconds`` have passed (``time``).
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from berth.bench.enqueue import Enqueuers
from berth.bench.progress import Advance
from berth.db import tables as t
from berth.db.engine import Database
from berth.pull.model import CLAIMED, QUEUED


@dataclass
class Watch:
    """What the watcher knows so far."""

    began: float
    waiting: dict[str, float] = field(default_factory=dict)  # accepted instance -> POST time
    settled: dict[str, float] = field(default_factory=dict)  # instance -> seconds to settle
    reported: int = 0  # (instance, request, sent) items received from the enqueuers
    last_change: float = 0.0
    results: list[Any] = field(default_factory=list)  # the enqueuers' own results
    ended: str = ""


def _drain(enq: Enqueuers, watch: Watch) -> None:
    """Take what the enqueuers reported: accepted instances, and finished processes."""
    while True:
        try:
            instance, _, sent = enq.seen.get_nowait()
        except queue.Empty:
            break
        watch.waiting[instance] = sent
        watch.reported += 1
    while True:
        try:
            watch.results.append(enq.out.get_nowait())
        except queue.Empty:
            break


def _read(db: Database, watch: Watch) -> int:
    """One reading: the accepted instances no longer queued or claimed settle now."""
    now = time.monotonic()
    query = select(t.pull_instances.c.uuid).where(t.pull_instances.c.state.in_((QUEUED, CLAIMED)))
    with db.read() as conn:
        pending = set(conn.execute(query).scalars())
    gone = [uuid for uuid in watch.waiting if uuid not in pending]
    for uuid in gone:
        watch.settled[uuid] = now - watch.waiting.pop(uuid)
    if gone:
        watch.last_change = now
    return len(gone)


def _accepted(watch: Watch) -> int:
    """Instances the finished enqueuers say were accepted (-1 while some still run)."""
    return sum(counts.get("accepted", 0) for _, counts, *_ in watch.results)


def _end(enq: Enqueuers, watch: Watch, settle: float, seconds: float) -> str:
    """Why the run ends now, or "" if it goes on."""
    done = len(watch.results) == len(enq.procs)
    used_up = int(enq.shared.taken.value) >= len(enq.plan.sizes)
    why = "list" if used_up else "full"
    if done and watch.reported >= _accepted(watch) and not watch.waiting:
        return why
    now = time.monotonic()
    blocked = done or enq.shared.outstanding() >= enq.plan.window
    if blocked and watch.waiting and now - watch.last_change >= settle:
        return why
    return "time" if now - watch.began >= seconds else ""


def watch_run(
    enq: Enqueuers, database_url: str, poll: float, settle: float, seconds: float,
    advance: Advance | None = None,
) -> Watch:  # fmt: skip
    """Watch until the run ends; the enqueuers are stopped and their results gathered."""
    watch = Watch(began=time.monotonic())
    watch.last_change = watch.began
    db = Database(database_url)
    try:
        while not watch.ended:
            _drain(enq, watch)
            gone = _read(db, watch)
            with enq.shared.settled.get_lock():
                enq.shared.settled.value += gone
            if advance and gone:
                advance(gone)
            watch.ended = _end(enq, watch, settle, seconds)
            if not watch.ended:
                time.sleep(poll)
        enq.shared.stop.set()
        _finish(enq, watch)
    finally:
        enq.shared.stop.set()
        db.dispose()
        for proc in enq.procs:  # only when the watch failed: _finish joined them otherwise
            if proc.is_alive():
                proc.terminate()
    return watch


def _finish(enq: Enqueuers, watch: Watch) -> None:
    """Wait for every enqueuer's results (they stop within one request)."""
    deadline = time.monotonic() + 120
    while len(watch.results) < len(enq.procs):
        if time.monotonic() > deadline:
            raise RuntimeError("an enqueuer did not stop (see its traceback)")
        _drain(enq, watch)
        time.sleep(0.05)
    for proc in enq.procs:
        proc.join()
