"""Weighers: how good is this host?  Higher is better.

A weigher is a small class with a ``name``, ``applies(ctx)`` and
``score(host, ctx) -> float`` (a raw value); ``WEIGHERS`` makes one by name
(the free-room weighers are one class, told which resource class to score).
As in Nova, each weigher's raw values are normalised to 0..1 over the hosts
being compared, multiplied by the weigher's multiplier (``scheduler_weighers``:
``ram=-1.0,cpu=-1.0``) and summed.  The resource weighers score *free* room,
so a positive multiplier spreads instances and a negative one packs them
(pack-first).  Other projects add weighers through entry points
(:mod:`berth.scheduler.plugins`, :func:`registry`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from functools import partial

from berth.scheduler import plugins
from berth.scheduler.context import SchedulingContext
from berth.scheduler.hoststate import HostState


class Weigher:
    """Base class: a raw score per host."""

    name: str = ""

    def applies(self, ctx: SchedulingContext) -> bool:
        """Whether the score can differ between hosts for this request."""
        return True

    def score(self, host: HostState, ctx: SchedulingContext) -> float:
        """The raw score of ``host`` (normalised across hosts by :func:`weigh`)."""
        raise NotImplementedError


class FreeRoom(Weigher):
    """Free room of one resource class in the host's tree."""

    def __init__(self, name: str, resource_class: str) -> None:
        self.name = name
        self.resource_class = resource_class

    def applies(self, ctx: SchedulingContext) -> bool:
        return self.resource_class in ctx.class_ids

    def score(self, host: HostState, ctx: SchedulingContext) -> float:
        return float(host.free(ctx.class_ids[self.resource_class], ctx.consumed))


# The free-room weighers: weigher name -> the resource class it scores.
FREE_ROOM = {"ram": "MEMORY_MB", "cpu": "VCPU", "disk": "DISK_GB"}


class Instances(Weigher):
    """Fewer instances score higher (a positive multiplier spreads by count)."""

    name = "instances"

    def score(self, host: HostState, ctx: SchedulingContext) -> float:
        return -float(ctx.catalog.instances.get(host.root, 0) + ctx.picked[host.root])


class ServerGroupSoft(Weigher):
    """soft-affinity: more group members score higher; soft-anti-affinity: fewer."""

    name = "server_group"

    def applies(self, ctx: SchedulingContext) -> bool:
        return ctx.policy in ("soft-affinity", "soft-anti-affinity")

    def score(self, host: HostState, ctx: SchedulingContext) -> float:
        members = float(ctx.group_hosts[host.root])
        return members if ctx.policy == "soft-affinity" else -members


class Metrics(Weigher):
    """Sum of host-reported values times ``scheduler_metric_weights`` (missing: 0).

    Each weight names a state key (``compute:/metrics/cpu_util=-1``) or a plain
    metric name (``cpu.percent=-1``: the compute namespace's metrics).
    """

    name = "metrics"

    def applies(self, ctx: SchedulingContext) -> bool:
        return bool(ctx.config.metric_weights)

    def score(self, host: HostState, ctx: SchedulingContext) -> float:
        states = host.attrs.states
        return sum(
            weight * (key.number(states) or 0.0) for key, weight in ctx.config.metric_weights
        )


WEIGHERS: dict[str, Callable[[], Weigher]] = {
    **{name: partial(FreeRoom, name, rc) for name, rc in FREE_ROOM.items()},
    **{w.name: w for w in (Instances, ServerGroupSoft, Metrics)},
}


@functools.cache
def registry() -> dict[str, Callable[[], Weigher]]:
    """Every weigher by name: the built-in ones and the installed entry points'."""
    return plugins.load(plugins.WEIGHER_GROUP, WEIGHERS)


def build(pairs: tuple[tuple[str, float], ...]) -> list[tuple[Weigher, float]]:
    """The weighers with a non-zero multiplier, in setting order."""
    known = registry()
    return [
        (plugins.make(name, known[name], Weigher, "scheduler_weighers"), multiplier)
        for name, multiplier in pairs
        if multiplier
    ]


def normalise(raw: Sequence[float]) -> list[float]:
    """Min-max to 0..1 (all equal: all 0)."""
    lo, hi = min(raw), max(raw)
    if hi <= lo:
        return [0.0] * len(raw)
    span = hi - lo
    return [(value - lo) / span for value in raw]


class Scores:
    """Raw scores per host, kept across the instances of one request.

    Placing an instance changes only the chosen host's free room, instance
    count and group members, so only that host is scored again
    (:meth:`forget`); the others' raw scores are reused.
    """

    def __init__(self) -> None:
        self.raw: dict[int, list[float]] = {}

    def of(
        self, host: HostState, weighers: list[tuple[Weigher, float]], ctx: SchedulingContext
    ) -> list[float]:
        """``host``'s raw score under each weigher (0 where a weigher does not apply)."""
        found = self.raw.get(host.root)
        if found is None:
            found = [w.score(host, ctx) if w.applies(ctx) else 0.0 for w, _ in weighers]
            self.raw[host.root] = found
        return found

    def forget(self, root: int) -> None:
        """Score host ``root`` again next time (an instance was placed there)."""
        self.raw.pop(root, None)


def weigh(
    hosts: Sequence[HostState],
    weighers: list[tuple[Weigher, float]],
    ctx: SchedulingContext,
    scores: Scores | None = None,
) -> list[float]:
    """The combined weight of each host, in the order given."""
    totals = [0.0] * len(hosts)
    if len(hosts) < 2 or not weighers:
        return totals
    scores = scores or Scores()
    rows = [scores.of(h, weighers, ctx) for h in hosts]
    for column, (_, multiplier) in enumerate(weighers):
        normalised = normalise([row[column] for row in rows])
        for i, value in enumerate(normalised):
            totals[i] += multiplier * value
    return totals
