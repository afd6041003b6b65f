"""Which changes of one change log a worker's memory holds, when some arrive pushed.

A catalog that follows a log both ways (changes pushed by a sync backend,
and its own reads of the log through :class:`~berth.sync.feed.ChangeFeed`)
must neither apply a pushed change older than what it holds (pushes may
arrive out of order: two writers publish after their commits, in any order)
nor read again from the database what a push already gave it.  The
:class:`Ledger` keeps, per key, the id of the newest change held (a log id
is the change's sequence number: for one key ids grow in commit order), and
the ids of pushed changes the log reader has not reached yet:

* :meth:`accept`: apply this pushed change?  Yes when it is newer than the
  key's version; for a key without one (nothing applied since the last full
  load) when it is newer than the log position of that load, or one of the
  ids the feed still waits for (a transaction in flight during the load).
* :meth:`unseen`: of the rows a log read returned, those no push delivered,
  by key, with the newest id of each: the catalog reads those keys from the
  database and records them with :meth:`mark`.
* :meth:`reloaded`: after a full load, forget everything but its position.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from berth.sync.feed import ChangeFeed


class Ledger:
    """The versions and delivered ids of one log (module docstring)."""

    def __init__(self, feed: ChangeFeed) -> None:
        self.feed = feed
        self.floor = 0
        self.versions: dict[Hashable, int] = {}
        self.delivered: set[int] = set()

    def accept(self, key: Hashable, change_id: int) -> bool:
        """Whether a pushed change is newer than what is held (recorded as held if so)."""
        known = self.versions.get(key)
        if known is None:
            fresh = change_id > self.floor or change_id in self.feed.holes
        else:
            fresh = change_id > known
        if fresh:
            self.versions[key] = change_id
            self.delivered.add(change_id)
        return fresh

    def unseen(self, rows: Sequence[tuple[int, Any]]) -> dict[Any, int]:
        """Keys of the rows no push delivered, each with its newest id; forgets the ids the
        log reader has passed."""
        need: dict[Any, int] = {}
        for row_id, key in rows:
            if row_id in self.delivered:
                self.delivered.discard(row_id)
            else:
                need[key] = max(need.get(key, 0), row_id)
        # Ids at or below the reader's position that it does not wait for will never come.
        high, holes = self.feed.high, self.feed.holes
        self.delivered = {i for i in self.delivered if i > high or i in holes}
        return need

    def mark(self, key: Hashable, change_id: int) -> None:
        """``key`` was read from the database after the change ``change_id`` committed."""
        self.versions[key] = max(self.versions.get(key, self.floor), change_id)

    def reloaded(self) -> None:
        """Everything was read afresh at the feed's position."""
        self.floor = max(self.feed.high, 0)
        self.versions = {}
        self.delivered = set()
