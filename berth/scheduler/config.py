"""The scheduler's settings, parsed and checked once: :func:`from_settings`.

The ``scheduler_*`` fields of :class:`berth.settings.Settings` are plain
strings and integers (so they work as environment variables); this module
turns them into a :class:`~berth.scheduler.options.SchedulerConfig` (lists,
multipliers and limits, state keys parsed), and says clearly what is wrong
with a bad one, including filter and weigher names their registries (the
built-in ones and those of installed entry points) do not know.
"""

from __future__ import annotations

import functools

from berth.scheduler import filters, weighers
from berth.scheduler.namespaces import NAME
from berth.scheduler.options import COMPARISONS, MetricLimit, SchedulerConfig
from berth.scheduler.state_keys import StateKey
from berth.settings import Settings


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _pairs(text: str, setting: str) -> tuple[tuple[str, float], ...]:
    out = []
    for part in _names(text):
        # The last "=": a state key may hold one, a multiplier never does.
        name, sep, value = part.rpartition("=") if "=" in part else (part, "", "")
        try:
            out.append((name.strip(), float(value) if sep else 1.0))
        except ValueError:
            raise ValueError(f"{setting}: bad multiplier in {part!r}") from None
    return tuple(out)


def _limits(text: str) -> tuple[MetricLimit, ...]:
    out = []
    for part in _names(text):
        for op in COMPARISONS:  # two-character operators are listed first
            name, sep, bound = part.partition(op)
            if sep:
                try:
                    out.append(MetricLimit(name.strip(), op, float(bound)))
                except ValueError:
                    raise ValueError(f"scheduler_metric_limits: bad bound in {part!r}") from None
                break
        else:
            raise ValueError(f"scheduler_metric_limits: no comparison in {part!r}")
    return tuple(out)


def _keys(pairs: tuple[tuple[str, float], ...]) -> tuple[tuple[StateKey, float], ...]:
    return tuple((StateKey.parse(name), weight) for name, weight in pairs)


def _check(config: SchedulerConfig) -> None:
    known = filters.registry()
    unknown = [name for name in config.filters if name not in known]
    if unknown:
        raise ValueError(f"scheduler_filters: unknown {unknown}; known: {sorted(known)}")
    known_weighers = weighers.registry()
    unknown = [name for name, _ in config.weighers if name not in known_weighers]
    if unknown:
        raise ValueError(f"scheduler_weighers: unknown {unknown}; known: {sorted(known_weighers)}")
    if not NAME.match(config.host_fresh_namespace):
        raise ValueError(
            f"scheduler_host_fresh_namespace: bad name {config.host_fresh_namespace!r}"
        )
    if config.host_subset_size < 1:
        raise ValueError("scheduler_host_subset_size must be at least 1")
    if config.alternates < 0 or config.claim_retries < 1 or config.scan_limit < 0:
        raise ValueError("scheduler_alternates >= 0, claim_retries >= 1, scan_limit >= 0")
    if config.claim_batch < 0:
        raise ValueError("scheduler_claim_batch must be 0 (no group commit) or more")
    if config.worker_count > 0 and not 0 <= config.worker_index < config.worker_count:
        raise ValueError("scheduler_worker_index must be in [0, scheduler_worker_count)")


@functools.cache
def from_settings(settings: Settings) -> SchedulerConfig:
    """The parsed configuration (ValueError naming the bad setting)."""
    config = SchedulerConfig(
        filters=_names(settings.scheduler_filters),
        weighers=_pairs(settings.scheduler_weighers, "scheduler_weighers"),
        host_subset_size=settings.scheduler_host_subset_size,
        alternates=settings.scheduler_alternates,
        claim_retries=settings.scheduler_claim_retries,
        claim_batch=settings.scheduler_claim_batch,
        scan_limit=settings.scheduler_scan_limit,
        scan_random_start=settings.scheduler_scan_random_start,
        partitioning=settings.scheduler_partitioning,
        partition_fallback=settings.scheduler_partition_fallback,
        worker_index=settings.scheduler_worker_index,
        worker_count=settings.scheduler_worker_count,
        worker_heartbeat=settings.scheduler_worker_heartbeat,
        hash_replicas=settings.scheduler_hash_replicas,
        refresh_seconds=settings.scheduler_refresh_ms / 1000,
        index_refresh_seconds=settings.scheduler_index_refresh_ms / 1000,
        metric_limits=_limits(settings.scheduler_metric_limits),
        metric_weights=_keys(_pairs(settings.scheduler_metric_weights, "scheduler_metric_weights")),
        default_availability_zone=settings.scheduler_default_availability_zone,
        host_fresh_namespace=settings.scheduler_host_fresh_namespace,
        host_fresh_seconds=settings.scheduler_host_fresh_seconds,
    )
    _check(config)
    return config
