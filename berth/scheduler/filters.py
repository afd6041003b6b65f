"""Filters: may this host take the instance?  Each says why not: a code, and a few words.

A filter is a small class with a ``name``, its ``reasons`` (the constant
codes it may give, the metric's label values), ``applies(ctx)`` (is it
relevant to this request at all? decided once per request) and
``feasible(host, ctx) -> Reason | None``.  ``per_instance`` filters depend
on where earlier instances of the same request went, so the pipeline runs
them for each instance; the others run once per host per request.
Filters are registered by name in :data:`FILTERS` (other projects' through
the entry points :mod:`berth.scheduler.plugins` reads: :func:`registry`)
and enabled, in order, by the ``scheduler_filters`` setting.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ClassVar

from berth.scheduler import plugins
from berth.scheduler.context import SchedulingContext
from berth.scheduler.explain import Reason, ReasonCode
from berth.scheduler.hoststate import HostState

# The reasons whose words never change, built once.
DISABLED = Reason("disabled", "host disabled")
ISOLATED = Reason("isolated", "isolated to other projects")
ANTI_AFFINITY = Reason("anti_affinity", "anti-affinity: host already holds group members")
AFFINITY_ELSEWHERE = Reason("affinity_elsewhere", "affinity: the group is on another host")
AFFINITY_NO_ROOM = Reason("affinity_no_room", "affinity: no room for every instance of the request")
NOT_SAME_HOST = Reason("not_same_host", "not the host of a same_host instance")
DIFFERENT_HOST = Reason("different_host", "hosts a different_host instance")
IGNORED = Reason("ignored", "ignored by the request")
FULL_AFTER_CLAIMS = Reason("full_after_claims", "full after claims the index has not read yet")


class Filter:
    """Base class: applies to every request, runs once per host."""

    name: ClassVar[str] = ""
    reasons: ClassVar[tuple[ReasonCode, ...]] = ()
    per_instance: ClassVar[bool] = False

    def applies(self, ctx: SchedulingContext) -> bool:
        """Whether this filter has anything to check for this request."""
        return True

    def feasible(self, host: HostState, ctx: SchedulingContext) -> Reason | None:
        """None when ``host`` passes, else the reason it does not."""
        raise NotImplementedError


class HostEnabled(Filter):
    """Operators can take a host out of scheduling (``disabled``)."""

    name = "host_enabled"
    reasons = ("disabled",)

    def feasible(self, host: HostState, ctx: SchedulingContext) -> Reason | None:
        return DISABLED if host.attrs.disabled else None


class AvailabilityZone(Filter):
    """The host's zone (its own, else its aggregates', else the default) is the asked one."""

    name = "availability_zone"
    reasons = ("other_zone",)

    def applies(self, ctx: SchedulingContext) -> bool:
        return ctx.spec.availability_zone is not None

    def feasible(self, host: HostState, ctx: SchedulingContext) -> Reason | None:
        zone = (
            host.attrs.availability_zone
            or host.aggregates.availability_zone
            or ctx.config.default_availability_zone
        )
        wanted = ctx.spec.availability_zone
        if zone == wanted:
            return None
        return Reason("other_zone", f"not in availability zone {wanted}")


class TenantIsolation(Filter):
    """Hosts in aggregates with ``filter_tenant_id*`` metadata take only those projects."""

    name = "tenant_isolation"
    reasons = ("isolated",)

    def feasible(self, host: HostState, ctx: SchedulingContext) -> Reason | None:
        tenants = host.aggregates.tenants
        if tenants and ctx.project_id not in tenants:
            return ISOLATED
        return None


class AggregateExtraSpecs(Filter):
    """Flavor extra specs (``aggregate_instance_extra_specs:KEY``) must match aggregate metadata."""

    name = "aggregate_extra_specs"
    reasons = ("aggregate_metadata",)

    def applies(self, ctx: SchedulingContext) -> bool:
        return bool(ctx.extra_specs)

    def feasible(self, host: HostState, ctx: SchedulingContext) -> Reason | None:
        metadata = host.aggregates.metadata
        for key, wanted in ctx.extra_specs:
            if wanted not in metadata.get(key, ()):
                return Reason("aggregate_metadata", f"aggregate metadata {key} is not {wanted}")
        return None


class ServerGroupRules(Filter):
    """Hard affinity / anti-affinity (with ``max_server_per_host``) of the request's group."""

    name = "server_group"
    reasons = ("anti_affinity", "affinity_elsewhere", "affinity_no_room")
    per_instance = True

    def applies(self, ctx: SchedulingContext) -> bool:
        return ctx.policy in ("affinity", "anti-affinity")

    def feasible(self, host: HostState, ctx: SchedulingContext) -> Reason | None:
        members = ctx.group_hosts
        assert ctx.group is not None
        if ctx.policy == "anti-affinity":
            if members[host.root] >= ctx.group.per_host_limit:
                return ANTI_AFFINITY
            return None
        occupied = [root for root, n in members.items() if n > 0]
        if occupied:
            return None if host.root in occupied else AFFINITY_ELSEWHERE
        # The first member decides for the rest of the request: room for all of them.
        if ctx.remaining > 1:
            for rc, amount in ctx.requested:
                if host.free(rc, ctx.consumed) < amount * ctx.remaining:
                    return AFFINITY_NO_ROOM
        return None


class SameHost(Filter):
    """Only the hosts of the ``same_host`` instances."""

    name = "same_host"
    reasons = ("not_same_host",)

    def applies(self, ctx: SchedulingContext) -> bool:
        return ctx.same_hosts is not None

    def feasible(self, host: HostState, ctx: SchedulingContext) -> Reason | None:
        assert ctx.same_hosts is not None
        return None if host.root in ctx.same_hosts else NOT_SAME_HOST


class DifferentHost(Filter):
    """None of the hosts of the ``different_host`` instances."""

    name = "different_host"
    reasons = ("different_host",)

    def applies(self, ctx: SchedulingContext) -> bool:
        return bool(ctx.different_hosts)

    def feasible(self, host: HostState, ctx: SchedulingContext) -> Reason | None:
        return DIFFERENT_HOST if host.root in ctx.different_hosts else None


class IgnoreHosts(Filter):
    """The request's ``ignore_hosts`` (names or uuids)."""

    name = "ignore_hosts"
    reasons = ("ignored",)

    def applies(self, ctx: SchedulingContext) -> bool:
        return bool(ctx.ignored)

    def feasible(self, host: HostState, ctx: SchedulingContext) -> Reason | None:
        return IGNORED if host.root in ctx.ignored else None


class MetricsThreshold(Filter):
    """Host-reported values within ``scheduler_metric_limits`` (a missing one fails).

    Each limit names a state key: ``compute:/metrics/cpu_util<=90``, or a plain
    metric name (``cpu.percent<=90``: the compute namespace's metrics).
    """

    name = "metrics_threshold"
    reasons = ("metric_missing", "metric_limit")

    def applies(self, ctx: SchedulingContext) -> bool:
        return bool(ctx.config.metric_limits)

    def feasible(self, host: HostState, ctx: SchedulingContext) -> Reason | None:
        states = host.attrs.states
        for limit in ctx.config.metric_limits:
            value = limit.key.number(states)
            if value is None:
                return Reason("metric_missing", f"no metric {limit.name}")
            if not limit.allows(value):
                return Reason("metric_limit", f"metric {limit} not met")
        return None


class HostFresh(Filter):
    """A host whose state in ``scheduler_host_fresh_namespace`` was received more than
    ``scheduler_host_fresh_seconds`` ago (or never) counts as down."""

    name = "host_fresh"
    reasons = ("state_missing", "state_stale")

    def feasible(self, host: HostState, ctx: SchedulingContext) -> Reason | None:
        namespace = ctx.config.host_fresh_namespace
        received = host.attrs.received_at(namespace)
        if received is None:
            return Reason("state_missing", f"no {namespace} state: counted as down")
        if received < ctx.fresh_after:
            age = int((ctx.now - received).total_seconds())
            return Reason("state_stale", f"{namespace} state {age} s old: counted as down")
        return None


class RequestFit(Filter):
    """Room left after this request's earlier instances and this worker's unread claims.

    Always on (the pipeline adds it last) whenever there is anything to count.
    """

    name = "request_fit"
    reasons = ("full_after_claims",)
    per_instance = True

    def applies(self, ctx: SchedulingContext) -> bool:
        return ctx.spec.num_instances > 1 or bool(ctx.consumed)

    def feasible(self, host: HostState, ctx: SchedulingContext) -> Reason | None:
        consumed = ctx.consumed
        if not consumed:
            return None
        providers = ctx.universe.providers
        for (pid, rc), amount in host.candidate.amounts.items():
            taken = consumed.get((pid, rc))
            if taken:
                inv = providers[pid].inventories[rc]
                if inv.used + taken + amount > inv.capacity:
                    return FULL_AFTER_CLAIMS
        return None


FILTERS: dict[str, type[Filter]] = {
    f.name: f
    for f in (
        HostEnabled,
        AvailabilityZone,
        TenantIsolation,
        AggregateExtraSpecs,
        ServerGroupRules,
        SameHost,
        DifferentHost,
        IgnoreHosts,
        MetricsThreshold,
        HostFresh,
        RequestFit,
    )
}


@functools.cache
def registry() -> dict[str, Callable[[], Filter]]:
    """Every filter by name: the built-in ones and the installed entry points'."""
    return plugins.load(plugins.FILTER_GROUP, FILTERS)


def build(names: tuple[str, ...]) -> list[Filter]:
    """The enabled filters in order, plus :class:`RequestFit` (always last)."""
    known = registry()
    filters = [
        plugins.make(name, known[name], Filter, "scheduler_filters")
        for name in names
        if name != RequestFit.name
    ]
    return [*filters, RequestFit()]
