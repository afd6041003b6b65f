"""This worker's own recent claims, until its candidates index has read them back.

Refreshing the index before every request costs a poll of the change feed
and a re-read of every changed provider.  With ``scheduler_index_refresh_ms``
above 0 the scheduler refreshes less often and instead remembers what its
own successful claims took (:meth:`PendingClaims.add`); selection counts
those amounts as used (:meth:`snapshot`), so the worker does not keep
choosing a host it has just filled.  An entry is dropped once a refresh
that *started after* the claim committed has run: that refresh read it.
Other workers' claims are seen only at the next refresh; until then a
claim may be refused (full, or a lost race) and the next alternate is
tried, so staleness costs retries, never correctness.  A refused claim, or
a request no host could take, makes the next request refresh first.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable


class PendingClaims:
    """(provider id, class id) -> amount claimed by this process since its last refresh."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[tuple[int, dict[tuple[int, int], int]]] = []
        self.serial = itertools.count(1)
        self.last_refresh = float("-inf")

    def add(self, amounts: dict[tuple[int, int], int]) -> None:
        """Remember a committed claim (call after the commit)."""
        with self.lock:
            self.entries.append((next(self.serial), dict(amounts)))

    def snapshot(self) -> dict[tuple[int, int], int]:
        """Every pending amount, summed."""
        out: dict[tuple[int, int], int] = {}
        with self.lock:
            for _, amounts in self.entries:
                for key, n in amounts.items():
                    out[key] = out.get(key, 0) + n
        return out

    def invalidate(self) -> None:
        """Refresh before the next request: a claim was refused, the view was wrong."""
        self.last_refresh = float("-inf")

    def refresh(self, interval: float, refresh: Callable[[], None]) -> None:
        """Run ``refresh`` if the last one is older than ``interval`` s; forget what it read."""
        now = time.monotonic()
        if now - self.last_refresh < interval:
            return
        with self.lock:
            seen = next(self.serial)  # claims added from here on may postdate the refresh
        refresh()
        self.last_refresh = now
        with self.lock:
            self.entries = [(n, amounts) for n, amounts in self.entries if n > seen]
