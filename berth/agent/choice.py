"""Which eligible host takes a message: ``pack``, ``spread`` or ``random``.

Each queue keeps its eligible hosts in a heap ordered by the choice's key,
so choosing costs O(log n) however many hosts the agent runs (a scan of
10,000 hosts per message would not fit on a small machine).  A host's entry
is pushed again whenever its usage changes (its ``version``); entries of an
older version, or of a host no longer eligible, are stale and dropped when
they reach the top.

* ``pack``: the fullest host that still fits (its most used class's share);
* ``spread``: the emptiest;
* ``random``: any, uniformly (drawn from a list of the members: a heap of
  random keys would favour the host just chosen, whose fresh key competes
  with keys that were all above the last minimum).

Ties go to the host added first (its fleet index).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable

from berth.agent.model import Host

Key = Callable[[Host, random.Random], float]

CHOICES: dict[str, Key] = {
    "pack": lambda host, rng: -host.fullness(),
    "spread": lambda host, rng: host.fullness(),
    "random": lambda host, rng: 0.0,  # not ordered: drawn from EligibleHosts.order
}

# Rebuild a heap when stale entries outnumber live ones by this factor (bounded memory).
COMPACT_FACTOR = 4


class EligibleHosts:
    """The hosts that can take one instance of a queue, best first by the choice."""

    def __init__(self, choice: str, rng: random.Random) -> None:
        self.key = CHOICES[choice]
        self.rng = rng
        self.members: dict[int, Host] = {}
        self.heap: list[tuple[float, int, int]] = []  # (key, host index, host version)
        self.pushed: dict[int, int] = {}  # host index -> the version of its newest entry
        self.random = choice == "random"
        self.order: list[int] = []  # random: the members' indices, any order
        self.pos: dict[int, int] = {}  # random: host index -> its place in ``order``

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, host: Host) -> bool:
        return host.index in self.members

    def update(self, host: Host, eligible: bool) -> None:
        """Record that ``host`` is (or is not) eligible now, with its current usage."""
        if not eligible:
            if self.members.pop(host.index, None) is not None and self.random:
                self._unlist(host.index)
            self.pushed.pop(host.index, None)
            return
        if self.random:
            if host.index not in self.members:
                self.pos[host.index] = len(self.order)
                self.order.append(host.index)
            self.members[host.index] = host
            return
        self.members[host.index] = host
        if self.pushed.get(host.index) == host.version:
            return  # its current entry is in the heap already
        self.pushed[host.index] = host.version
        heapq.heappush(self.heap, (self.key(host, self.rng), host.index, host.version))
        if len(self.heap) > COMPACT_FACTOR * len(self.members) + 64:
            self._compact()

    def best(self, exclude: Iterable[int] = ()) -> Host | None:
        """The best eligible host whose index is not in ``exclude`` (None: there is none)."""
        if self.random:
            return self._draw(set(exclude))
        skipped: list[tuple[float, int, int]] = []
        excluded = set(exclude)
        found = None
        while self.heap:
            entry = self.heap[0]
            host = self.members.get(entry[1])
            if host is None or host.version != entry[2]:
                heapq.heappop(self.heap)  # stale
                continue
            if host.index in excluded:
                skipped.append(heapq.heappop(self.heap))
                continue
            found = host
            break
        for entry in skipped:
            heapq.heappush(self.heap, entry)
        return found

    def _draw(self, excluded: set[int]) -> Host | None:
        """A uniformly random member not in ``excluded``."""
        for _ in range(8):  # exclusions are few: a draw or two finds a host
            if not self.order:
                return None
            index = self.order[self.rng.randrange(len(self.order))]
            if index not in excluded:
                return self.members[index]
        left = [i for i in self.order if i not in excluded]
        return self.members[self.rng.choice(left)] if left else None

    def _unlist(self, index: int) -> None:
        """Remove ``index`` from ``order`` (swap with the last)."""
        place = self.pos.pop(index)
        last = self.order.pop()
        if last != index:
            self.order[place] = last
            self.pos[last] = place

    def _compact(self) -> None:
        """Keep only each member's current entry."""
        self.heap = [
            entry
            for entry in self.heap
            if (host := self.members.get(entry[1])) is not None and host.version == entry[2]
        ]
        heapq.heapify(self.heap)
