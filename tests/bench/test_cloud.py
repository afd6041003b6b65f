"""The benchmark cloud's layout: counts, trees, traits, aggregates, uuids."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from berth.bench import cloud, cloud_db
from berth.bench.cloud import GPU_TRAIT, SHARING_TRAIT, Topology


@pytest.mark.parametrize(
    ("topo", "hosts", "providers"),
    [
        (Topology(), 100, 100),
        (Topology(rows=2, racks=3, hosts_per_rack=4), 24, 24),
        (Topology(hosts=45), 45, 45),
        (Topology(hosts=10, numa_nodes=2), 10, 30),
        (Topology(hosts=45, shared_storage_gb=1000, disk_gb=100), 45, 48),
    ],
)
def test_counts(topo: Topology, hosts: int, providers: int) -> None:
    specs = cloud.build(topo)
    assert topo.host_count == hosts
    assert len(specs) == providers
    assert len({s.uuid for s in specs}) == providers
    assert len({s.name for s in specs}) == providers


def test_default_is_placement_bench() -> None:
    specs = cloud.build(cloud.PROFILES["placement-bench"])
    vcpu = specs[0].inventories["VCPU"]
    memory = specs[0].inventories["MEMORY_MB"]
    assert (vcpu[0], vcpu[5]) == (24, 16.0)
    assert (memory[0], memory[5]) == (262144, 1.5)
    assert "DISK_GB" not in specs[0].inventories
    assert not any(s.traits or s.aggregates for s in specs)
    assert specs[0].name.startswith("r00-k000-h000") and specs[99].name.startswith("r00-k004-h019")


def test_candidates_profile_gpu_and_aggregates() -> None:
    topo = dataclasses.replace(cloud.PROFILES["candidates"], hosts=1000)
    specs = cloud.build(topo)
    assert sum(GPU_TRAIT in s.traits for s in specs) == 100
    assert {a for s in specs for a in s.aggregates} == {cloud.aggregate_uuid(i) for i in range(10)}
    assert specs[0].inventories["MEMORY_MB"][1] == 512


def test_numa_children_hold_compute_and_root_keeps_disk() -> None:
    specs = cloud.build(Topology(hosts=3, numa_nodes=2, vcpus=24, disk_gb=100))
    roots = [i for i, s in enumerate(specs) if s.parent is None]
    assert len(roots) == 3
    for root in roots:
        children = [s for s in specs if s.parent == root]
        assert len(children) == 2
        assert sum(c.inventories["VCPU"][0] for c in children) == 24
        assert set(specs[root].inventories) == {"DISK_GB"}
        assert all("HW_NUMA_ROOT" in c.traits for c in children)


def test_shared_storage_pool_per_rack_shares_an_aggregate() -> None:
    specs = cloud.build(Topology(hosts=40, hosts_per_rack=20, shared_storage_gb=5000, disk_gb=9))
    pools = [s for s in specs if SHARING_TRAIT in s.traits]
    assert len(pools) == 2
    hosts = [s for s in specs if "VCPU" in s.inventories]
    assert not any("DISK_GB" in h.inventories for h in hosts)
    for pool in pools:
        sharing = [h for h in hosts if pool.aggregates & h.aggregates]
        assert len(sharing) == 20


def test_host_uuid_round_trip() -> None:
    for i in (0, 1, 99, 99_999):
        assert cloud.host_index(cloud.host_uuid(i)) == i
    assert cloud.host_index(cloud.aggregate_uuid(3)) == -1


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25, 1.0])
def test_gpu_fraction_is_exact(fraction: float) -> None:
    specs = cloud.build(Topology(hosts=200, gpu_fraction=fraction))
    assert sum(GPU_TRAIT in s.traits for s in specs) == int(200 * fraction)


@pytest.mark.parametrize("step", [7, 100, 20_000])
def test_bulk_chunks_cut_only_before_a_root(step: int) -> None:
    specs = cloud.build(Topology(hosts=90, numa_nodes=2, shared_storage_gb=10))
    edges = cloud_db.chunks(specs, step)
    assert edges[0][0] == 0 and edges[-1][1] == len(specs)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(edges))
    for start, end in edges:
        assert specs[start].parent is None
        assert all(s.parent is None or start <= s.parent < end for s in specs[start:end])
