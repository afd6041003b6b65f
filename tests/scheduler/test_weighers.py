"""Each weigher, table-driven: raw scores of two hosts, and who wins after weighing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from berth.scheduler.context import Hints
from berth.scheduler.host_attributes import HostAttributes
from berth.scheduler.spec import RequestSpec
from berth.scheduler.weighers import WEIGHERS, build, normalise, weigh
from tests.scheduler.helpers import (
    FakeCatalog,
    attrs,
    context,
    group,
    host,
    make_provider,
    uuid_of,
    world,
)


@dataclass
class Case:
    """Host 1 and host 2 under one weigher: their raw scores."""

    weigher: str
    scores: tuple[float, float]
    used1: dict[str, int] = field(default_factory=dict)
    used2: dict[str, int] = field(default_factory=dict)
    hints: Hints = field(default_factory=Hints)
    attrs1: HostAttributes = field(default_factory=HostAttributes)
    attrs2: HostAttributes = field(default_factory=HostAttributes)
    instances: dict[int, int] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    applies: bool = True


CASES = {
    "ram: free MEMORY_MB": Case("ram", (32768 - 4096, 32768.0), used1={"MEMORY_MB": 4096}),
    "cpu: free VCPU": Case("cpu", (10.0, 16.0), used1={"VCPU": 6}),
    "disk: free DISK_GB": Case("disk", (500.0, 400.0), used2={"DISK_GB": 100}),
    "instances: fewer is better": Case("instances", (-3.0, 0.0), instances={1: 3}),
    "soft-affinity: members attract": Case(
        "server_group",
        (2.0, 0.0),
        hints=Hints(group=group("soft-affinity", {"a": uuid_of(1), "b": uuid_of(1)})),
    ),
    "soft-anti-affinity: members repel": Case(
        "server_group",
        (-1.0, 0.0),
        hints=Hints(group=group("soft-anti-affinity", {"a": uuid_of(1)})),
    ),
    "hard policy: soft weigher off": Case(
        "server_group", (0.0, 0.0), hints=Hints(group=group("anti-affinity")), applies=False
    ),
    "metrics: weighted sum": Case(
        "metrics",
        (-80.0 + 2.0, -10.0),
        attrs1=attrs(compute={"metrics": {"cpu.percent": 80.0, "net.gbps": 1.0}}),
        attrs2=attrs(compute={"metrics": {"cpu.percent": 10.0}}),
        config={"metric_weights": "cpu.percent=-1,net.gbps=2"},
    ),
    "metrics: state keys of any namespace": Case(
        "metrics",
        (-50.0 + 3 * 40.0, 3 * 10.0),
        attrs1=attrs(compute={"metrics": {"cpu_util": 50}}, net={"free": {"gbps": 40}}),
        attrs2=attrs(net={"free": {"gbps": 10}, "up": True}),
        config={"metric_weights": "compute:/metrics/cpu_util=-1,net:/free/gbps=3,net:/up=100"},
    ),
    "metrics: none configured": Case("metrics", (0.0, 0.0), applies=False),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_raw_scores(case: Case) -> None:
    u = world(make_provider(1, case.used1), make_provider(2, case.used2))
    catalog = FakeCatalog(instances=case.instances)
    ctx = context(u, RequestSpec(resources={"VCPU": 1}), case.hints, catalog, **case.config)
    w = WEIGHERS[case.weigher]()
    assert w.applies(ctx) is case.applies
    if case.applies:
        got = (w.score(host(u, 1, case.attrs1), ctx), w.score(host(u, 2, case.attrs2), ctx))
        assert got == case.scores


def test_every_weigher_has_a_case() -> None:
    assert {c.weigher for c in CASES.values()} == set(WEIGHERS)


@pytest.mark.parametrize(
    ("weighers", "winner"),
    [
        ("ram=1.0", 2),  # spread: the emptier host
        ("ram=-1.0", 1),  # pack: the fuller host
        ("ram=-1.0,cpu=3.0", 2),  # CPU free room outweighs
        ("ram=0.0", None),  # off: all equal
    ],
)
def test_multipliers_make_pack_or_spread(weighers: str, winner: int | None) -> None:
    u = world(make_provider(1, {"MEMORY_MB": 8192, "VCPU": 8}), make_provider(2))
    ctx = context(u, weighers=weighers)
    hosts = [host(u, 1), host(u, 2)]
    totals = weigh(hosts, build(ctx.config.weighers), ctx)
    if winner is None:
        assert totals[0] == totals[1]
    else:
        assert max(range(2), key=totals.__getitem__) + 1 == winner


@pytest.mark.parametrize(
    ("raw", "expected"),
    [([1.0, 3.0, 2.0], [0.0, 1.0, 0.5]), ([5.0, 5.0], [0.0, 0.0]), ([-2.0, 0.0], [0.0, 1.0])],
)
def test_normalise(raw: list[float], expected: list[float]) -> None:
    assert normalise(raw) == expected


def test_request_consumption_counts_as_used() -> None:
    u = world(make_provider(1), make_provider(2))
    ctx = context(u, weighers="cpu=1.0")
    ctx.consumed[(1, 0)] = 10  # earlier instances of this request took 10 VCPU on host 1
    assert WEIGHERS["cpu"]().score(host(u, 1), ctx) == 6.0


def test_cached_scores_match_fresh_ones_after_a_placement() -> None:
    from berth.scheduler.weighers import Scores

    u = world(make_provider(1, {"VCPU": 4}), make_provider(2), make_provider(3, {"VCPU": 8}))
    ctx = context(u, RequestSpec(resources={"VCPU": 2}, num_instances=3), weighers="cpu=1,ram=1")
    hosts = [host(u, pid, VCPU=2) for pid in (1, 2, 3)]
    weighers = build(ctx.config.weighers)
    scores = Scores()
    for _ in range(3):
        cached = weigh(hosts, weighers, ctx, scores)
        assert cached == weigh(hosts, weighers, ctx)  # no cache: everything scored again
        best = hosts[max(range(3), key=cached.__getitem__)]
        ctx.take(best)
        scores.forget(best.root)
