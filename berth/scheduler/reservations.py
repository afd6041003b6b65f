"""This worker's own claims, from selection until its candidates index has read them back.

Refreshing the index before every request costs a poll of the change feed
and a re-read of every changed provider.  With ``scheduler_index_refresh_ms``
above 0 the scheduler refreshes less often and instead remembers what its
own claims take: a selection *reserves* the amounts of the hosts it chose
(:meth:`Reservations.reserve`, under the index lock, so the next selection
of any thread counts them as used); the claim then *settles* the
reservation: kept if it committed, dropped if it was refused.  A kept
entry is forgotten once a refresh that *started after* the commit has run:
that refresh read it.  Entries still in flight are never forgotten.

Other workers' claims, and changes to traits and aggregates, are seen only
at the next refresh; until then a claim may be refused (full, a lost race,
or a rule that no longer holds: :mod:`berth.scheduler.recheck`) and the
next alternate is tried, so staleness costs retries, never correctness.  A refused claim, or
a request no host could take, makes the next request refresh first.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable

Amounts = dict[tuple[int, int], int]  # (provider id, class id) -> amount


class Reservation:
    """Amounts one selection took; ``serial`` is set when its claim commits."""

    __slots__ = ("amounts", "serial")

    def __init__(self, amounts: Amounts) -> None:
        self.amounts = amounts
        self.serial: int | None = None


class Reservations:
    """(provider id, class id) -> amount this process holds beyond its index."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: set[Reservation] = set()
        self.totals: Amounts = {}
        self.serial = itertools.count(1)
        self.last_refresh = float("-inf")

    def reserve(self, amounts: Iterable[Amounts]) -> list[Reservation]:
        """Count ``amounts`` (one per chosen host) as used until settled."""
        made = [Reservation(dict(a)) for a in amounts]
        with self.lock:
            for r in made:
                self.entries.add(r)
                self._count(r.amounts, 1)
        return made

    def settle(self, reservation: Reservation, committed: bool) -> None:
        """The claim behind ``reservation`` committed (keep it) or was refused (drop it)."""
        with self.lock:
            if reservation not in self.entries:
                return
            if committed:
                reservation.serial = next(self.serial)
            else:
                self.entries.discard(reservation)
                self._count(reservation.amounts, -1)

    def add(self, amounts: Amounts) -> None:
        """Remember a claim that committed without a reservation (an alternate host)."""
        (made,) = self.reserve([amounts])
        self.settle(made, True)

    def snapshot(self) -> Amounts:
        """Every pending amount, summed (a copy)."""
        with self.lock:
            return dict(self.totals)

    def invalidate(self) -> None:
        """Refresh before the next request: a claim was refused, the view was wrong."""
        self.last_refresh = float("-inf")

    def refresh(self, interval: float, refresh: Callable[[], bool]) -> None:
        """Run ``refresh`` if the last one is older than ``interval`` s; forget what it read.

        ``refresh`` returns False when it did not run (another thread's is
        under way): then nothing is forgotten, and that thread's refresh
        does the forgetting for what it read.
        """
        now = time.monotonic()
        if now - self.last_refresh < interval:
            return
        with self.lock:
            seen = next(self.serial)  # claims committed from here on may postdate the refresh
        if not refresh():
            return
        self.last_refresh = now
        with self.lock:
            read = {r for r in self.entries if r.serial is not None and r.serial < seen}
            self.entries -= read
            for r in read:
                self._count(r.amounts, -1)

    def _count(self, amounts: Amounts, sign: int) -> None:
        totals = self.totals
        for key, n in amounts.items():
            left = totals.get(key, 0) + sign * n
            if left:
                totals[key] = left
            else:
                totals.pop(key, None)
