"""Readers' side of the change feed kept in the database (table ``change_log``).

A worker calls :meth:`ChangeFeed.poll` before answering a read from memory.
It returns the provider ids changed since the previous poll, or ``None``
when the worker must reload everything (first poll, or it fell behind the
retention window).

Ids are assigned at insert time but become visible at commit, so a smaller
id can appear after a larger one.  The feed therefore remembers the *holes*
below the highest id it has seen and keeps reading from the oldest hole until
it is filled or older than ``HOLE_TIMEOUT`` (a rolled-back transaction leaves
a hole that is never filled).  On a (re)start the missing ids among the last
``START_WINDOW`` below the top are holes too.  A write acknowledged before ``poll`` starts is
always returned by it: its row is committed and its id is either above the
highest id seen or one of the open holes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.exc import DBAPIError

from berth.db import tables as t
from berth.db.clock import utcnow
from berth.db.engine import Database, is_transient

HOLE_TIMEOUT = 60.0
RETENTION_SECONDS = 600
PRUNE_EVERY = 60.0
EVERYTHING = 0
START_WINDOW = 1000


@dataclass
class ChangeFeed:
    """Tracks this worker's position in the change log."""

    db: Database
    high: int = -1
    holes: dict[int, float] = field(default_factory=dict)
    last_poll: float = 0.0
    last_prune: float = 0.0

    def _start(self) -> None:
        # Ids just below the top that are not there yet may belong to
        # transactions still in flight: watch them as holes.
        with self.db.read() as conn:
            top = int(conn.execute(select(func.max(t.change_log.c.id))).scalar() or 0)
            recent = set(
                conn.execute(
                    select(t.change_log.c.id).where(t.change_log.c.id > top - START_WINDOW)
                ).scalars()
            )
        self.high = top
        now = time.monotonic()
        self.holes = {i: now for i in range(max(1, top - START_WINDOW + 1), top) if i not in recent}

    def poll(self) -> set[int] | None:
        """Provider ids changed since the last poll; None means reload all."""
        now = time.monotonic()
        if self.high < 0 or now - self.last_poll > RETENTION_SECONDS / 2:
            self._start()
            self.last_poll = now
            return None
        self.last_poll = now
        self.holes = {h: seen for h, seen in self.holes.items() if now - seen < HOLE_TIMEOUT}
        low = min(self.holes, default=self.high + 1)
        low = min(low, self.high + 1)
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.change_log.c.id, t.change_log.c.provider_id)
                .where(t.change_log.c.id >= low)
                .order_by(t.change_log.c.id)
            ).all()
        changed: set[int] = set()
        for row_id, provider_id in rows:
            if row_id > self.high:
                for missing in range(self.high + 1, row_id):
                    self.holes.setdefault(missing, now)
                self.high = row_id
            elif row_id in self.holes:
                del self.holes[row_id]
            else:
                continue
            if provider_id == EVERYTHING:
                return None
            changed.add(provider_id)
        self._maybe_prune(now)
        return changed

    def _maybe_prune(self, now: float) -> None:
        if now - self.last_prune < PRUNE_EVERY:
            return
        self.last_prune = now
        import datetime

        horizon = utcnow() - datetime.timedelta(seconds=RETENTION_SECONDS)
        try:
            with self.db.write() as conn:
                conn.execute(delete(t.change_log).where(t.change_log.c.created_at < horizon))
        except DBAPIError as exc:
            # Another worker pruning the same rows at once (a deadlock, or a
            # certification failure on Galera): they are gone or go next time.
            if not is_transient(exc):
                raise
