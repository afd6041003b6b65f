"""Strategies, partitioning and request sizes: the lab's own scheduling logic."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from berth.bench import cloud, strategies
from berth.scheduler import config as sched_config
from berth.settings import load


def _summary(used: int, capacity: int = 100) -> dict:
    return {"resources": {"VCPU": {"capacity": capacity, "used": used}}}


CANDIDATES = [("a", _summary(10)), ("b", _summary(90)), ("c", _summary(50))]


@pytest.mark.parametrize(
    ("strategy", "first", "last"),
    [("pack", "b", "a"), ("spread", "a", "b")],
)
def test_order(strategy: str, first: str, last: str) -> None:
    ranked = strategies.order(CANDIDATES, {"VCPU": 1}, strategy, random.Random(0))
    assert CANDIDATES[ranked[0]][0] == first
    assert CANDIDATES[ranked[-1]][0] == last


def test_random_order_is_a_permutation_that_varies() -> None:
    rng = random.Random(1)
    firsts = {strategies.order(CANDIDATES, {"VCPU": 1}, "random", rng)[0] for _ in range(50)}
    assert firsts == {0, 1, 2}


def test_free_score_ignores_classes_not_asked_for() -> None:
    summary = {"resources": {"VCPU": {"capacity": 10, "used": 5}, "DISK_GB": {"capacity": 1}}}
    assert strategies.free_score(summary, {"VCPU": 1}) == 0.5
    assert strategies.free_score(summary, {"MEMORY_MB": 1}) == 0.0


def test_modulo_partition_is_host_number_mod_workers() -> None:
    owner = strategies.owner_function("modulo", 8)
    assert [owner(cloud.host_uuid(i)) for i in range(10)] == [i % 8 for i in range(10)]


def test_hash_partition_covers_every_worker_evenly_enough() -> None:
    owner = strategies.owner_function("hash", 8)
    counts = Counter(owner(cloud.host_uuid(i)) for i in range(8000))
    assert set(counts) == set(range(8))
    assert min(counts.values()) > 400  # 1000 each on average


def test_no_partitioning_owns_everything() -> None:
    owner = strategies.owner_function("none", 8)
    assert {owner(cloud.host_uuid(i)) for i in range(100)} == {0}


def test_mine_first_keeps_order_within_each_part() -> None:
    hosts = [cloud.host_uuid(i) for i in range(6)]
    owner = strategies.owner_function("modulo", 2)
    assert strategies.mine_first([5, 4, 3, 2, 1, 0], hosts, owner, 0) == [4, 2, 0, 5, 3, 1]


def test_request_sizes_are_placement_bench_six() -> None:
    rng = random.Random(0)
    seen = {tuple(strategies.request_size(rng).values()) for _ in range(500)}
    assert seen == set(strategies.SIZES)


@pytest.mark.parametrize("strategy", strategies.STRATEGIES)
@pytest.mark.parametrize("partitioning", strategies.PARTITIONINGS)
def test_scheduler_settings_are_valid_berth_settings(strategy: str, partitioning: str) -> None:
    chosen = strategies.scheduler_settings(strategy, partitioning, 3, 8)
    config = sched_config.from_settings(load(environ={}, **chosen))
    if partitioning == "none":
        assert config.partitioning == "none" and config.worker_count == 0
    else:
        assert (config.worker_index, config.worker_count) == (3, 8)
    multipliers = dict(config.weighers)
    if strategy == "pack":
        assert multipliers["ram"] < 0 and config.host_subset_size == 1
    elif strategy == "spread":
        assert multipliers["ram"] > 0
    elif strategy == "random":
        assert not any(multipliers.values()) and config.host_subset_size > 1
    else:  # berth's defaults, untouched
        assert "scheduler_weighers" not in chosen and "scheduler_host_subset_size" not in chosen


def test_default_strategy_unpartitioned_changes_no_setting() -> None:
    assert strategies.scheduler_settings("default", "none", 0, 8) == {}
    assert strategies.server_env("default", "none") == {}


def test_strict_partitions_keep_a_client_to_its_own_hosts() -> None:
    hosts = [cloud.host_uuid(i) for i in range(6)]
    owner = strategies.owner_function("strict", 3)
    assert [i for i in range(6) if owner(hosts[i]) == 1] == [1, 4]


def test_default_strategy_keeps_the_servers_order() -> None:
    pairs = [(cloud.host_uuid(i), {}) for i in range(5)]
    assert strategies.order(pairs, {"VCPU": 1}, "default", random.Random(1)) == [0, 1, 2, 3, 4]


def test_server_env_has_no_fixed_worker_index() -> None:
    env = strategies.server_env("pack", "hash")
    assert env["BERTH_SCHEDULER_PARTITIONING"] == "consistent"
    assert "BERTH_SCHEDULER_WORKER_INDEX" not in env
    load(environ=env)  # every variable is a valid setting


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError):
        strategies.scheduler_settings("best", "none", 0, 1)
