"""Readers' side of the change logs kept in the database: ``change_log`` and its kin.

A change log is an insert-only table written in the same transaction as the
change it records: an autoincrement id, what changed (the *key*: a provider
id in ``change_log``, a provider uuid in ``scheduler_state_changes``, an
aggregate uuid in ``scheduler_aggregate_changes``) and when.  No writer
updates a shared row, so writers never serialise on the log.
:class:`ChangeLog` names a table's columns; :data:`PROVIDERS` is the
Placement feed, the default.

A worker calls :meth:`ChangeFeed.poll` before answering a read from memory.
It returns the keys changed since the previous poll, or ``None``
when the worker must reload everything (first poll, or it fell behind the
retention window).

Ids are assigned at insert time but become visible at commit, so a smaller
id can appear after a larger one.  The feed therefore remembers the *holes*
below the highest id it has seen and keeps asking for those ids (by id: a
range from the oldest hole would read every row written since, on every
poll) until they are filled or older than ``HOLE_TIMEOUT`` (a rolled-back
transaction leaves a hole that is never filled) and still empty when a poll
reads them once more.  On a (re)start the missing ids among the last
``START_WINDOW`` below the top are holes too.  A write acknowledged before ``poll`` starts is
always returned by it: its row is committed and its id is either above the
highest id seen or one of the open holes.

Database outages.  A transaction cut off by a restart never commits: its ids
stay holes and time out.  ``HOLE_TIMEOUT`` is well above the longest a live
transaction can take to commit under the serving time limits
(``database_statement_timeout``, which also ends a transaction left idle), so
a hole is never given up while its writer may still commit.  A poll that
fails changes nothing (the next one reads from the same place), and the
"how long since the last poll" clock counts successful polls only: a worker
that could not read the log for longer than the retention window reloads
everything instead of trusting rows that may have been pruned meanwhile.
Each poll also reads back the newest row it had seen: if that row is gone
(the database was restored or failed over to a copy that lacks it) the
position means nothing any more and the worker reloads everything.  Pruning
always keeps the newest row, so a quiet spell alone does not cause that.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Column, Connection, Select, Table, bindparam, delete, func, select

from berth.db import tables as t
from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.db.lists import one_of

log = structlog.get_logger("berth.sync")

HOLE_TIMEOUT = 60.0
RETENTION_SECONDS = 600
PRUNE_EVERY = 60.0
EVERYTHING = 0
START_WINDOW = 1000
PAGE = 5000


class ChangeLog:
    """A change-log table as a feed reads it: its id, key and time columns.

    ``everything`` is the key of a row that means "reload everything" (None:
    the log has no such row).  The statements are built once per log: a
    statement object reused is not analysed again on every call.
    """

    def __init__(
        self, table: Table, key: str, at: str = "created_at", everything: Any = None
    ) -> None:
        self.table = table
        self.id: Column[int] = table.c.id
        self.key: Column[Any] = table.c[key]
        self.at: Column[Any] = table.c[at]
        self.everything = everything
        # Pages of PAGE rows in id order (see _since).
        self.since: Select[Any] = (
            select(self.id, self.key)
            .where(self.id >= bindparam("low"))
            .order_by(self.id)
            .limit(PAGE)
        )
        self.among: Select[Any] = select(self.id, self.key).where(one_of(self.id, "ids"))


# The Placement feed: provider ids, EVERYTHING for a catalogue change.
PROVIDERS = ChangeLog(t.change_log, "provider_id", everything=EVERYTHING)


@dataclass
class ChangeFeed:
    """Tracks this worker's position in one change log (the Placement feed by default)."""

    db: Database
    log: ChangeLog = PROVIDERS
    high: int = -1
    holes: dict[int, float] = field(default_factory=dict)
    last_poll: float = 0.0
    last_prune: float = 0.0

    def _start(self, conn: Connection) -> None:
        # Ids just below the top that are not there yet may belong to
        # transactions still in flight: watch them as holes.
        log_id = self.log.id
        top = int(conn.execute(select(func.max(log_id))).scalar() or 0)
        recent = set(conn.execute(select(log_id).where(log_id > top - START_WINDOW)).scalars())
        self.high = top
        now = time.monotonic()
        self.holes = {i: now for i in range(max(1, top - START_WINDOW + 1), top) if i not in recent}

    def restart(self) -> None:
        """Forget the position: the next poll starts afresh (and asks for a full reload)."""
        self.high = -1
        self.holes = {}

    def poll(self, conn: Connection | None = None) -> set[Any] | None:
        """Keys changed since the last poll (provider ids by default); None means reload all.

        Reads in ``conn`` (the caller's read transaction) when given.
        """
        if conn is None:
            with self.db.read() as own:
                return self.poll(own)
        rows = self.poll_rows(conn)
        return None if rows is None else {key for _, key in rows}

    def poll_rows(self, conn: Connection) -> list[tuple[int, Any]] | None:
        """(id, key) of the rows new since the last poll, in id order; None: reload all."""
        now = time.monotonic()
        if self.high < 0 or now - self.last_poll > RETENTION_SECONDS / 2:
            self._start(conn)
            self.last_poll = now
            return None
        # The newest row seen (it must still be there) and those after it, and the
        # holes: read by id, not by range from the oldest one, since a rolled-back
        # transaction leaves a hole that stays open HOLE_TIMEOUT seconds.  Holes past
        # their time are read once more before they are let go: polls may have
        # failed for longer than that (a cut link), and the hole filled meanwhile.
        rows = _since(conn, self.log, max(self.high, 1))
        if self.holes:
            rows = sorted(_filled(conn, self.log, sorted(self.holes)) + rows)
        self.last_poll = now
        if self.high > 0 and not any(row_id == self.high for row_id, _ in rows):
            log.warning("change feed position lost: reloading everything", position=self.high)
            self._start(conn)
            return None
        filled = {row_id for row_id, _ in rows}
        expired = [h for h, seen in self.holes.items() if now - seen >= HOLE_TIMEOUT]
        for hole in expired:
            if hole not in filled:
                del self.holes[hole]
        changed: list[tuple[int, Any]] = []
        for row_id, key in rows:
            if row_id > self.high:
                # After an empty start, ids below the first one seen are as
                # unknown as those below the top at a start.
                floor = self.high + 1 if self.high > 0 else max(1, row_id - START_WINDOW + 1)
                for missing in range(floor, row_id):
                    self.holes.setdefault(missing, now)
                self.high = row_id
            elif row_id in self.holes:
                del self.holes[row_id]
            else:
                continue
            if self.log.everything is not None and key == self.log.everything:
                return None
            changed.append((row_id, key))
        self._maybe_prune(now)
        return changed

    def _maybe_prune(self, now: float) -> None:
        if now - self.last_prune < PRUNE_EVERY:
            return
        self.last_prune = now
        horizon = utcnow() - datetime.timedelta(seconds=RETENTION_SECONDS)
        try:
            with self.db.write() as conn:
                # The newest row stays, however old: it is every reader's position.
                table = self.log
                top = conn.execute(select(func.max(table.id))).scalar() or 0
                conn.execute(delete(table.table).where(table.at < horizon, table.id < top))
        except Exception as exc:  # housekeeping: the changes this poll read must not be lost
            log.warning("change log prune failed", error=str(exc))


def _since(conn: Connection, log: ChangeLog, low: int) -> list[Any]:
    """(id, key) of the change rows from id ``low`` on, in id order, a page at a time.

    Pages of PAGE rows in id order: a LIMIT makes every planner walk the
    primary key from ``low``, whatever its statistics of the table say.
    Without one, PostgreSQL with statistics older than the log (autovacuum
    off or behind) guessed a third of the table matched and read all of it
    on every poll (1.6 ms, then 4.8 ms as the log grew by 20,000 rows).
    """
    rows: list[Any] = []
    while True:
        page = conn.execute(log.since, {"low": low}).all()
        rows += page
        if len(page) < PAGE:
            return rows
        low = page[-1][0] + 1


def _filled(conn: Connection, log: ChangeLog, ids: list[int]) -> list[Any]:
    """(id, key) of the change rows among ``ids`` that are there now."""
    found: list[Any] = []
    for start in range(0, len(ids), PAGE):
        found += conn.execute(log.among, {"ids": ids[start : start + PAGE]}).all()
    return found
