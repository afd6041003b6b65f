"""Partitioning: who owns which host, and the scan order a worker follows."""

from __future__ import annotations

from collections import Counter

import pytest

from berth.db.engine import Database
from berth.scheduler.partition import Membership, Partitioner, Ring
from berth.scheduler.scan import phases, rotated
from tests.scheduler.helpers import config, context, make_provider, world


def _partitioner(strategy: str, index: int, count: int) -> Partitioner:
    c = config(partitioning=strategy, worker_index=index, worker_count=count)
    return Partitioner(c, None)  # type: ignore[arg-type]  # fixed membership: no database


@pytest.mark.parametrize("strategy", ["modulo", "consistent"])
def test_every_host_has_exactly_one_owner(strategy: str) -> None:
    u = world(*(make_provider(pid) for pid in range(1, 201)))
    workers = [_partitioner(strategy, i, 4) for i in range(4)]
    owners = Counter(sum(w.owns(pid, u) for w in workers) for pid in u.roots)
    assert owners == {1: 200}
    shares = [sum(w.owns(pid, u) for pid in u.roots) for w in workers]
    assert min(shares) > 200 / 4 / 2, shares  # roughly balanced


def test_consistent_hashing_moves_few_hosts_when_a_worker_joins() -> None:
    keys = [f"host-{i}" for i in range(2000)]
    before = Ring([f"w{i}" for i in range(4)], 64)
    after = Ring([f"w{i}" for i in range(5)], 64)
    moved = sum(before.owner(k) != after.owner(k) for k in keys)
    assert moved < len(keys) * 0.35  # ~1/5 expected; modulo would move ~4/5


def test_none_is_inactive() -> None:
    assert not _partitioner("none", 0, 4).active
    assert not _partitioner("modulo", 0, 1).active


def test_own_hosts_first_then_the_rest() -> None:
    u = world(*(make_provider(pid) for pid in range(1, 11)))
    p = _partitioner("modulo", 1, 3)
    ctx = context(u)
    mine, rest = phases(u.roots, p, ctx, random_start=False)
    assert list(mine) == [1, 4, 7, 10]
    assert list(rest) == [2, 3, 5, 6, 8, 9]


def test_rotated_visits_everything_once() -> None:
    anchors = list(range(50))
    for _ in range(20):
        assert sorted(rotated(anchors, True)) == anchors
    assert list(rotated(anchors, False)) == anchors


def test_discovered_membership(sqlite_db: Database) -> None:
    a, b = Membership(sqlite_db, 10), Membership(sqlite_db, 10)
    a.current()
    assert b.current() == sorted([a.name, b.name])
    a.leave()
    b.beaten = float("-inf")
    assert b.current() == [b.name]
