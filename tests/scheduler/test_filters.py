"""Each filter, table-driven: a host, a request, and the reason expected (None: passes).

The reason's text is what people read; its code must be one of the filter's
declared ``reasons`` (the Prometheus label values).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from berth.scheduler.context import Hints, SchedulingContext
from berth.scheduler.explain import REASON_CODES
from berth.scheduler.filters import FILTERS, build
from berth.scheduler.host_attributes import HostAttributes
from berth.scheduler.hoststate import AggregateView
from berth.scheduler.spec import RequestSpec
from tests.scheduler.helpers import attrs, context, group, host, make_provider, uuid_of, world

OTHER = uuid_of(2)
HERE = uuid_of(1)


@dataclass
class Case:
    """One row: which filter, the request, the host, and the verdict."""

    filter: str
    expected: str | None
    spec: dict[str, Any] = field(default_factory=dict)
    attrs: HostAttributes = field(default_factory=HostAttributes)
    view: AggregateView = field(default_factory=AggregateView)
    hints: Hints = field(default_factory=Hints)
    config: dict[str, Any] = field(default_factory=dict)
    setup: Callable[[SchedulingContext], None] | None = None
    used: dict[str, int] = field(default_factory=dict)
    applies: bool = True


def _picked_here(n: int) -> Callable[[SchedulingContext], None]:
    def setup(ctx: SchedulingContext) -> None:
        ctx.group_hosts[1] += n

    return setup


# host_fresh judges against the request's clock: fixed here, so the words are too.
NOW = datetime.datetime(2026, 12, 3, 12, 0, 0)


def _clock(ctx: SchedulingContext) -> None:
    ctx.now = NOW
    ctx.fresh_after = NOW - datetime.timedelta(seconds=ctx.config.host_fresh_seconds)


def _ago(seconds: int) -> datetime.datetime:
    return NOW - datetime.timedelta(seconds=seconds)


def _consumed(amount: int) -> Callable[[SchedulingContext], None]:
    def setup(ctx: SchedulingContext) -> None:
        ctx.consumed[(1, 0)] = amount

    return setup


CASES = {
    "enabled host passes": Case("host_enabled", None),
    "disabled host": Case("host_enabled", "host disabled", attrs=HostAttributes(disabled=True)),
    "no zone asked: filter off": Case("availability_zone", None, applies=False),
    "zone from host": Case(
        "availability_zone",
        None,
        spec={"availability_zone": "az1"},
        attrs=HostAttributes(availability_zone="az1"),
    ),
    "zone from aggregate": Case(
        "availability_zone",
        None,
        spec={"availability_zone": "az1"},
        view=AggregateView(availability_zone="az1"),
    ),
    "host zone beats aggregate": Case(
        "availability_zone",
        "not in availability zone az1",
        spec={"availability_zone": "az1"},
        attrs=HostAttributes(availability_zone="az2"),
        view=AggregateView(availability_zone="az1"),
    ),
    "default zone": Case("availability_zone", None, spec={"availability_zone": "nova"}),
    "other zone": Case(
        "availability_zone", "not in availability zone az9", spec={"availability_zone": "az9"}
    ),
    "open host": Case("tenant_isolation", None, spec={"project_id": "p1"}),
    "isolated to us": Case(
        "tenant_isolation",
        None,
        spec={"project_id": "p1"},
        view=AggregateView(tenants=frozenset({"p1", "p2"})),
    ),
    "isolated to others": Case(
        "tenant_isolation",
        "isolated to other projects",
        spec={"project_id": "p3"},
        view=AggregateView(tenants=frozenset({"p1"})),
    ),
    "no extra specs: filter off": Case("aggregate_extra_specs", None, applies=False),
    "extra spec matches": Case(
        "aggregate_extra_specs",
        None,
        spec={"extra_specs": {"aggregate_instance_extra_specs:ssd": "true"}},
        view=AggregateView(metadata={"ssd": frozenset({"true"})}),
    ),
    "bare extra spec key matches": Case(
        "aggregate_extra_specs",
        None,
        spec={"extra_specs": {"ssd": "true", "hw:cpu_policy": "dedicated"}},
        view=AggregateView(metadata={"ssd": frozenset({"true"})}),
    ),
    "extra spec differs": Case(
        "aggregate_extra_specs",
        "aggregate metadata ssd is not true",
        spec={"extra_specs": {"aggregate_instance_extra_specs:ssd": "true"}},
        view=AggregateView(metadata={"ssd": frozenset({"false"})}),
    ),
    "extra spec missing": Case(
        "aggregate_extra_specs",
        "aggregate metadata ssd is not true",
        spec={"extra_specs": {"aggregate_instance_extra_specs:ssd": "true"}},
    ),
    "anti-affinity, empty host": Case(
        "server_group", None, hints=Hints(group=group("anti-affinity", {"i": OTHER}))
    ),
    "anti-affinity, member here": Case(
        "server_group",
        "anti-affinity: host already holds group members",
        hints=Hints(group=group("anti-affinity", {"i": HERE})),
    ),
    "anti-affinity, earlier instance of this request here": Case(
        "server_group",
        "anti-affinity: host already holds group members",
        hints=Hints(group=group("anti-affinity")),
        setup=_picked_here(1),
    ),
    "max_server_per_host 2, one here": Case(
        "server_group", None, hints=Hints(group=group("anti-affinity", {"i": HERE}, limit=2))
    ),
    "max_server_per_host 2, two here": Case(
        "server_group",
        "anti-affinity: host already holds group members",
        hints=Hints(group=group("anti-affinity", {"i": HERE, "j": HERE}, limit=2)),
    ),
    "affinity, group elsewhere": Case(
        "server_group",
        "affinity: the group is on another host",
        hints=Hints(group=group("affinity", {"i": OTHER})),
    ),
    "affinity, group here": Case(
        "server_group", None, hints=Hints(group=group("affinity", {"i": HERE}))
    ),
    "affinity, first of 3 needs room for all": Case(
        "server_group",
        "affinity: no room for every instance of the request",
        spec={"resources": {"VCPU": 8}, "num_instances": 3},
        hints=Hints(group=group("affinity")),
    ),
    "affinity, first of 2 fits both": Case(
        "server_group",
        None,
        spec={"resources": {"VCPU": 8}, "num_instances": 2},
        hints=Hints(group=group("affinity")),
    ),
    "soft policy: hard filter off": Case(
        "server_group", None, hints=Hints(group=group("soft-anti-affinity")), applies=False
    ),
    "same_host here": Case("same_host", None, hints=Hints(same_hosts={HERE})),
    "same_host elsewhere": Case(
        "same_host", "not the host of a same_host instance", hints=Hints(same_hosts={OTHER})
    ),
    "same_host instance placed nowhere": Case(
        "same_host", "not the host of a same_host instance", hints=Hints(same_hosts=set())
    ),
    "different_host here": Case(
        "different_host", "hosts a different_host instance", hints=Hints(different_hosts={HERE})
    ),
    "different_host elsewhere": Case("different_host", None, hints=Hints(different_hosts={OTHER})),
    "ignored": Case("ignore_hosts", "ignored by the request", hints=Hints(ignored={HERE})),
    "not ignored": Case("ignore_hosts", None, hints=Hints(ignored={OTHER})),
    "metric within limit": Case(
        "metrics_threshold",
        None,
        attrs=attrs(compute={"metrics": {"cpu.percent": 50.0}}),
        config={"metric_limits": "cpu.percent<=90"},
    ),
    "metric over limit": Case(
        "metrics_threshold",
        "metric cpu.percent<=90 not met",
        attrs=attrs(compute={"metrics": {"cpu.percent": 95.0}}),
        config={"metric_limits": "cpu.percent<=90"},
    ),
    "metric missing": Case(
        "metrics_threshold", "no metric cpu.percent", config={"metric_limits": "cpu.percent<=90"}
    ),
    "no limits: filter off": Case("metrics_threshold", None, applies=False),
    "compute pointer over limit": Case(
        "metrics_threshold",
        "metric compute:/metrics/cpu_util<=90 not met",
        attrs=attrs(compute={"metrics": {"cpu_util": 95}}),
        config={"metric_limits": "compute:/metrics/cpu_util<=90"},
    ),
    "other namespace within limit": Case(
        "metrics_threshold",
        None,
        attrs=attrs(net={"links": {"eth/0": {"gbps": 25}}}),
        config={"metric_limits": "net:/links/eth~10/gbps>=10"},
    ),
    "other namespace under limit": Case(
        "metrics_threshold",
        "metric net:/links/eth~10/gbps>=10 not met",
        attrs=attrs(net={"links": {"eth/0": {"gbps": 1}}}),
        config={"metric_limits": "net:/links/eth~10/gbps>=10"},
    ),
    "a value that is no number is missing": Case(
        "metrics_threshold",
        "no metric net:/up",
        attrs=attrs(net={"up": True}),
        config={"metric_limits": "net:/up>=1"},
    ),
    "a plain name is not looked up elsewhere": Case(
        "metrics_threshold",
        "no metric cpu.percent",
        attrs=attrs(net={"metrics": {"cpu.percent": 1}}),
        config={"metric_limits": "cpu.percent<=90"},
    ),
    "fresh state": Case("host_fresh", None, attrs=attrs(_ago(119), compute={}), setup=_clock),
    "stale state": Case(
        "host_fresh",
        "compute state 121 s old: counted as down",
        attrs=attrs(_ago(121), compute={}),
        setup=_clock,
    ),
    "no state in the namespace": Case(
        "host_fresh",
        "no net state: counted as down",
        attrs=attrs(_ago(1), compute={}),
        config={"host_fresh_namespace": "net"},
        setup=_clock,
    ),
    "shorter freshness": Case(
        "host_fresh",
        "net state 11 s old: counted as down",
        attrs=attrs(_ago(11), net={}),
        config={"host_fresh_namespace": "net", "host_fresh_seconds": 10},
        setup=_clock,
    ),
    "request fit: room left": Case(
        "request_fit", None, spec={"num_instances": 2}, setup=_consumed(10)
    ),
    "request fit: earlier instances filled it": Case(
        "request_fit",
        "full after claims the index has not read yet",
        spec={"num_instances": 2},
        setup=_consumed(15),
        used={"VCPU": 1},
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_filter(case: Case) -> None:
    u = world(make_provider(1, case.used), make_provider(2))
    spec = RequestSpec(**{"resources": {"VCPU": 1}, **case.spec})
    ctx = context(u, spec, case.hints, **case.config)
    if case.setup is not None:
        case.setup(ctx)
    f = FILTERS[case.filter]()
    assert f.applies(ctx) is case.applies
    if not case.applies:
        return  # the pipeline never asks a filter that does not apply
    state = host(u, 1, case.attrs, case.view, **spec.resources)
    reason = f.feasible(state, ctx)
    assert (None if reason is None else reason.text) == case.expected
    if reason is not None:
        assert reason.code in f.reasons  # the metric's label: one of the filter's constants


def test_every_filter_has_a_case() -> None:
    assert {c.filter for c in CASES.values()} == set(FILTERS)


def test_build_keeps_order_and_adds_request_fit_last() -> None:
    names = [f.name for f in build(("metrics_threshold", "host_enabled"))]
    assert names == ["metrics_threshold", "host_enabled", "request_fit"]


def test_reason_codes_are_declared_once_and_known() -> None:
    """Every filter declares its codes; together with the candidates' they are REASON_CODES."""
    declared = [code for f in FILTERS.values() for code in f.reasons]
    assert all(f.reasons for f in FILTERS.values())
    assert len(declared) == len(set(declared))
    candidates = {"no_inventory", "lacked_trait", "forbidden_trait", "not_in_aggregates"}
    candidates |= {"lacked_capacity", "no_candidate"}
    assert set(declared) | candidates == REASON_CODES
