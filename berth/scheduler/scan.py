"""The host scan: candidates, then the request-wide filters, host by host, bounded.

Nomad-style: hosts are visited in an order (this worker's partition first,
from a fixed or random start), each one asked of the candidates engine and
run through the filters that do not depend on earlier instances; the scan
stops after ``scheduler_scan_limit`` hosts got through (0: no limit) and is
resumed only when the hosts found so far cannot take the next instance.
It moves on to the other workers' hosts only once its own are exhausted.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Hashable, Iterator, Sequence

from berth.candidates.model import Universe
from berth.scheduler.candidates import CandidateSource
from berth.scheduler.context import SchedulingContext
from berth.scheduler.explain import CANDIDATES, Explanation, Reason
from berth.scheduler.filters import Filter
from berth.scheduler.hoststate import HostState
from berth.scheduler.partition import Partitioner


def rotated(anchors: Sequence[int], random_start: bool) -> Iterator[int]:
    """``anchors`` in order, starting from a random position when asked."""
    start = random.randrange(len(anchors)) if random_start and anchors else 0
    for i in range(start, len(anchors)):
        yield anchors[i]
    for i in range(start):
        yield anchors[i]


def phases(
    anchors: Sequence[int],
    partitioner: Partitioner,
    ctx: SchedulingContext,
    random_start: bool,
    known: Misses | None = None,
) -> list[Iterator[int]]:
    """This worker's hosts first, then the rest (one phase when not partitioned, and
    no second one when ``scheduler_partition_fallback`` is off).

    Scanning its own hosts in a fixed order (a packing worker), the scan
    starts after the leading hosts ``known`` to yield no candidate.
    """
    if not partitioner.active:
        return [rotated(anchors, random_start)]
    u = ctx.universe
    owns = partitioner.owns
    rest = [(a for a in rotated(anchors, random_start) if not owns(a, u))]
    if not ctx.config.partition_fallback:
        rest = []
    if random_start or known is None:
        return [(a for a in rotated(anchors, random_start) if owns(a, u)), *rest]
    return [known.own_after_misses(anchors, partitioner, u), *rest]


class Misses:
    """One request shape's misses (root -> reason) and its partition's hosts in order."""

    def __init__(self) -> None:
        self.reasons: dict[int, Reason] = {}
        self.own: list[int] = []
        self.own_of: tuple[object, ...] | None = None
        self.prefix = 0  # own[:prefix] are all misses

    def own_after_misses(
        self, anchors: Sequence[int], partitioner: Partitioner, u: Universe
    ) -> Iterator[int]:
        """This worker's anchors in order, after the leading ones known to be misses."""
        # The ring itself, not its id(): a replaced ring's address can be reused.
        key = (partitioner.strategy, partitioner.count, partitioner.index, partitioner.ring)
        if key != self.own_of:
            self.own = [a for a in anchors if partitioner.owns(a, u)]
            self.own_of, self.prefix = key, 0
        own, i = self.own, self.prefix
        while i < len(own) and own[i] in self.reasons:
            i += 1
        self.prefix = i
        return itertools.islice(own, i, None)


class MissMemo:
    """Hosts the candidates stage turned away, and why, per request shape and index version.

    Whether a host yields a candidate depends only on the index and on the
    request's resources, traits and aggregates; until the index next
    changes (:attr:`MemoryIndex.version`) the answer is the same, so a
    packing scan does not ask again about the hosts it filled, and a
    partitioned one starts after them.  Used under the index lock.
    """

    MAX_SHAPES = 256

    def __init__(self) -> None:
        self.version = -1
        self.shapes: dict[Hashable, Misses] = {}

    def of(self, version: int, shape: Hashable) -> Misses:
        """The misses known for ``shape`` at index ``version``."""
        if version != self.version or len(self.shapes) >= self.MAX_SHAPES:
            self.version, self.shapes = version, {}
        found = self.shapes.get(shape)
        if found is None:
            found = self.shapes[shape] = Misses()
        return found


class HostScan:
    """Feasible hosts found so far, extended on demand."""

    def __init__(
        self,
        source: CandidateSource,
        ctx: SchedulingContext,
        filters: list[Filter],
        explanation: Explanation,
        order: list[Iterator[int]],
        limit: int,
        misses: dict[int, Reason] | None = None,
    ) -> None:
        self.source = source
        self.misses = {} if misses is None else misses
        self.ctx = ctx
        self.filters = filters
        self.explanation = explanation
        self.order = order
        self.limit = limit
        self.hosts: list[HostState] = []

    def more(self) -> bool:
        """Find up to ``limit`` more feasible hosts; False when there are none left."""
        wanted = self.limit or -1
        added = 0
        while self.order and added != wanted:
            root = next(self.order[0], None)
            if root is None:
                self.order.pop(0)
                if added:
                    break  # the next phase only when this one gave nothing
                continue
            host = self.examine(root)
            if host is not None:
                self.hosts.append(host)
                added += 1
        self.explanation.complete = not self.order
        return added > 0

    def examine(self, root: int) -> HostState | None:
        """The host if it passes the candidates stage and every request-wide filter."""
        ctx = self.ctx
        explanation = self.explanation
        explanation.examined += 1
        source = self.source
        known = self.misses.get(root)
        if known is not None:
            explanation.reject(CANDIDATES, known)
            return None
        candidate = source.at(root)
        if candidate is None:
            why = self.misses[root] = source.why_not(root)
            explanation.reject(CANDIDATES, why)
            return None
        provider = source.universe.providers[root]
        host = HostState(
            provider,
            source.tree(root),
            candidate,
            ctx.catalog.attributes(provider.uuid),
            ctx.catalog.view(provider.aggregates, source.agg_uuid),
        )
        for f in self.filters:
            reason = f.feasible(host, ctx)
            if reason is not None:
                explanation.reject(f.name, reason)
                return None
        explanation.found += 1
        return host
