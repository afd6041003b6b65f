"""Sharing hosts out among scheduler workers, so concurrent claims rarely collide.

Strategies (``scheduler_partitioning``):

``none``        every worker considers every host;
``modulo``      worker *i* of *n* prefers hosts whose provider id % n == i;
``consistent``  a hash ring of the live workers (``scheduler_hash_replicas``
                points each); a host belongs to the first worker point after
                the hash of its uuid, so a worker joining or leaving moves
                only about 1/n of the hosts.

A worker scans its own hosts first and falls back to the others only when
none of its own fits (the pipeline does that), so partitioning never makes
a request fail that could succeed.

Who the workers are: either fixed by ``scheduler_worker_index`` /
``scheduler_worker_count`` (one process per index, e.g. a benchmark), or
discovered: every process heartbeats a row in ``scheduler_workers`` (from
any host sharing the database) and the live rows, sorted by name, are the
members.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import socket
import threading
import time
import uuid as uuidlib
from datetime import timedelta

from sqlalchemy import Connection, delete, insert, select, update

from berth.candidates.model import Universe
from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.db.tables import SCHED_WORKER
from berth.placement.write.retry import atomically
from berth.scheduler.options import SchedulerConfig

# A heartbeat that loses a race (two workers removing the same dead row from
# different Galera nodes) is run again, up to this many times in all.
HEARTBEAT_ATTEMPTS = 3


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class Ring:
    """A consistent-hash ring of worker names."""

    def __init__(self, members: list[str], replicas: int) -> None:
        points = sorted((_hash(f"{m}#{r}"), m) for m in members for r in range(replicas))
        self.keys = [key for key, _ in points]
        self.owners = [owner for _, owner in points]

    def owner(self, key: str) -> str:
        """The member owning ``key``."""
        at = bisect.bisect(self.keys, _hash(key)) % len(self.keys)
        return self.owners[at]


class Membership:
    """This process's name and the live workers, by heartbeat in the database."""

    def __init__(self, db: Database, heartbeat: int) -> None:
        self.db = db
        self.heartbeat = max(1, heartbeat)
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuidlib.uuid4().hex[:8]}"
        self.members: list[str] = [self.name]
        self.beaten = float("-inf")
        self.lock = threading.Lock()

    def current(self) -> list[str]:
        """Live worker names, sorted (heartbeats at most every ``heartbeat`` seconds)."""
        now = time.monotonic()
        if now - self.beaten >= self.heartbeat:
            with self.lock:
                self._beat()
                self.beaten = now
        return self.members

    def _beat(self) -> None:
        self.members = atomically(
            self.db, self._beat_once, HEARTBEAT_ATTEMPTS, operation="membership"
        )

    def _beat_once(self, conn: Connection) -> list[str]:
        """Refresh this worker's row and drop the dead ones; the live names."""
        stamp = utcnow()
        done = conn.execute(
            update(SCHED_WORKER).where(SCHED_WORKER.c.name == self.name).values(heartbeat_at=stamp)
        )
        if done.rowcount != 1:
            conn.execute(
                insert(SCHED_WORKER).values(name=self.name, heartbeat_at=stamp, created_at=stamp)
            )
        dead = stamp - timedelta(seconds=10 * self.heartbeat)
        conn.execute(delete(SCHED_WORKER).where(SCHED_WORKER.c.heartbeat_at < dead))
        live = stamp - timedelta(seconds=3 * self.heartbeat)
        rows = conn.execute(select(SCHED_WORKER.c.name).where(SCHED_WORKER.c.heartbeat_at >= live))
        return sorted(set(rows.scalars()) | {self.name})

    def leave(self) -> None:
        """Drop this worker's row (a clean shutdown hands its hosts over at once)."""
        with self.db.write() as conn:
            conn.execute(delete(SCHED_WORKER).where(SCHED_WORKER.c.name == self.name))


class Partitioner:
    """Which hosts this worker prefers; :meth:`owns` is called once per host scanned."""

    def __init__(self, config: SchedulerConfig, db: Database) -> None:
        self.strategy = config.partitioning
        self.replicas = config.hash_replicas
        self.fixed = config.worker_count > 0
        self.index = config.worker_index if self.fixed else 0
        self.count = config.worker_count if self.fixed else 1
        self.membership = None if self.fixed else Membership(db, config.worker_heartbeat)
        self.me = f"worker-{self.index}"
        self.members = [f"worker-{i}" for i in range(self.count)]
        self.ring = Ring(self.members, self.replicas)
        self._owned: dict[int, bool] = {}

    @property
    def active(self) -> bool:
        """False when every host is this worker's (no partitioning, or alone)."""
        return self.strategy != "none" and self.count > 1

    def refresh(self) -> None:
        """Follow membership changes (discovered workers only)."""
        if self.strategy == "none" or self.membership is None:
            return
        members = self.membership.current()
        if members != self.members:
            self.members = members
            self.me = self.membership.name
            self.count = len(members)
            self.index = members.index(self.me)
            self.ring = Ring(members, self.replicas)
            self._owned = {}

    def owns(self, root: int, universe: Universe) -> bool:
        """Whether host ``root`` is in this worker's partition."""
        if self.strategy == "modulo":
            return root % self.count == self.index
        owned = self._owned.get(root)
        if owned is None:
            owner = self.ring.owner(universe.providers[root].uuid)
            owned = self._owned[root] = owner == self.me
        return owned
