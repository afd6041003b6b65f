"""Choice (pack, spread, random) and the fleet's eligibility bookkeeping."""

from __future__ import annotations

import collections

import pytest

from berth.agent.fleet import Fleet
from tests.agent.helpers import host, queue

# Three hosts of 8 VCPU: 0 empty, 1 half used, 2 with room for exactly one more instance.
USED = [{}, {"VCPU": 4}, {"VCPU": 7}]


def fleet(choice: str, used: list[dict[str, int]] = USED, seed: int | None = 1) -> Fleet:
    f = Fleet([host(i, used=u) for i, u in enumerate(used)], choice, seed)
    f.set_queue(queue(VCPU=1))
    return f


@pytest.mark.parametrize(
    ("choice", "exclude", "expected"),
    [
        ("pack", (), 2),  # the fullest that still fits
        ("pack", (2,), 1),
        ("spread", (), 0),  # the emptiest
        ("spread", (0,), 1),
        ("pack", (0, 1, 2), None),
    ],
)
def test_best(choice: str, exclude: tuple[int, ...], expected: int | None) -> None:
    best = fleet(choice).best("q", exclude)
    assert (best.index if best else None) == expected


def test_full_host_is_not_eligible() -> None:
    f = fleet("pack", [{}, {"VCPU": 8}])
    assert f.eligible_count("q") == 1
    assert f.best("q").index == 0


def test_pack_follows_usage() -> None:
    """Reserving on the packed host fills it; the next choice is the next fullest."""
    f = fleet("pack")
    h2 = f.best("q")
    f.reserve(h2, "i1", {"VCPU": 1})
    assert f.eligible_count("q") == 2
    assert f.best("q").index == 1
    f.release(h2, "i1")
    assert f.best("q").index == 2


def test_random_picks_every_eligible_host() -> None:
    f = fleet("random", [{}, {}, {}, {"VCPU": 8}], seed=7)
    seen: collections.Counter[int] = collections.Counter()
    for n in range(300):
        h = f.best("q")
        seen[h.index] += 1
        f.reserve(h, f"i{n}", {"VCPU": 0})  # a change of version: a fresh random key
        f.release(h, f"i{n}")
    assert set(seen) == {0, 1, 2}
    assert min(seen.values()) > 50


def test_served_queues_change_is_signalled() -> None:
    f = Fleet([host(0)], "pack")
    changes: list[frozenset[str]] = []
    f.on_change = lambda: changes.append(f.serving())
    f.set_queue(queue("small", VCPU=4))
    f.set_queue(queue("big", VCPU=16))  # fits nowhere: not served, no change
    assert changes == [frozenset({"small"})]
    h = f.hosts[0]
    f.reserve(h, "a", {"VCPU": 4})
    f.reserve(h, "b", {"VCPU": 4})  # full: small is no longer served
    assert changes[-1] == frozenset()
    f.release(h, "a")
    assert changes[-1] == frozenset({"small"})
    f.remove_queue("small")
    assert changes[-1] == frozenset()


def test_claimed_amounts_survive_a_usage_reread() -> None:
    """Placement's usage counts claimed instances; pending ones are added back on top."""
    f = fleet("pack", [{}])
    h = f.hosts[0]
    f.reserve(h, "claimed", {"VCPU": 2})
    f.reserve(h, "pending", {"VCPU": 3})
    f.claimed(h, "claimed")
    f.set_usage(h, {"VCPU": 2})  # Placement holds the claimed one's allocation
    assert h.used["VCPU"] == 5
    assert f.release(h, "claimed")
    assert h.used["VCPU"] == 3
    assert not f.release(h, "unknown")


def test_compacting_keeps_the_order() -> None:
    f = fleet("pack", [{} for _ in range(5)])
    for n in range(500):
        h = f.hosts[n % 5]
        f.reserve(h, f"i{n}", {"VCPU": 0})
    assert len(f.eligible["q"].heap) <= 4 * 5 + 64
    assert f.best("q") is not None


def test_refusals_are_counted() -> None:
    f = Fleet([host(0, traits=("CUSTOM_GPU",)), host(1), host(2, used={"VCPU": 8})], "pack")
    q = queue("gpu", required=("CUSTOM_GPU",), VCPU=1)
    assert f.refusals(q) == {"missing required trait": 2}


@pytest.mark.parametrize(
    ("used", "limit", "room"),
    [
        ([{}, {}], 64, 16),  # 8 VCPU per host, 1 per instance
        ([{}, {}], 5, 5),  # counted only up to the limit
        ([{"VCPU": 7}, {"VCPU": 8}], 64, 1),  # the full host is not eligible
        ([{"VCPU": 5}, {}], 64, 11),
    ],
)
def test_room(used: list[dict[str, int]], limit: int, room: int) -> None:
    assert fleet("pack", used).room("q", limit) == room


def test_room_counts_the_tightest_class() -> None:
    f = Fleet([host(0, used={"MEMORY_MB": 13312})], "pack")
    f.set_queue(queue("q", VCPU=1, MEMORY_MB=1024))  # 15360 usable: 2 more by memory, 8 by VCPU
    assert f.room("q", 64) == 2
