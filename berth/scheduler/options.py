"""The scheduler's parsed settings as plain data: :class:`SchedulerConfig`.

What every stage reads (the request context, filters, weighers, the
partitioner).  Parsing and checking the settings is
:func:`berth.scheduler.config.from_settings`, which needs the filter and
weigher registries; keeping the data here lets those registries' modules
use it without an import cycle.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field

from berth.scheduler.state_keys import StateKey

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
}


@dataclass(frozen=True)
class MetricLimit:
    """A value of host state must satisfy ``value <op> bound`` (``cpu.percent<=90``,
    ``compute:/metrics/cpu_util<=90``: ``name`` is a state key)."""

    name: str
    op: str
    bound: float
    key: StateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", StateKey.parse(self.name))

    def allows(self, value: float) -> bool:
        """Whether ``value`` is within the limit."""
        return COMPARISONS[self.op](value, self.bound)

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.bound:g}"


@dataclass(frozen=True)
class SchedulerConfig:
    """Everything the pipeline needs from the settings."""

    filters: tuple[str, ...]
    weighers: tuple[tuple[str, float], ...]
    host_subset_size: int
    alternates: int
    claim_retries: int
    claim_batch: int
    scan_limit: int
    scan_random_start: bool
    partitioning: str
    partition_fallback: bool
    worker_index: int
    worker_count: int
    worker_heartbeat: int
    hash_replicas: int
    refresh_seconds: float
    index_refresh_seconds: float
    metric_limits: tuple[MetricLimit, ...]
    metric_weights: tuple[tuple[StateKey, float], ...]
    default_availability_zone: str
    host_fresh_namespace: str
    host_fresh_seconds: int
