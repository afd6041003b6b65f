"""The benchmark cloud: provider specs, and rows x racks x hosts of compute nodes made of them.

placement-bench's layout (default 1 row x 5 racks x 20 hosts = 100 hosts),
with host sizes, allocation ratios, a fraction of hosts with a GPU trait,
aggregates, and optionally NUMA children and one shared storage pool per
rack.  Uuids are derived from positions, so two targets loaded with the same
topology hold the same uuids (and a request naming ``aggregate_uuid(0)``
means the same thing everywhere).

A :class:`ProviderSpec` is one provider to write, with its inventories,
usage, traits and aggregates; :mod:`berth.bench.cloud_db` writes specs
straight into a database (the tests' fixtures use it too) and
:mod:`berth.bench.cloud_api` through any Placement API.
"""

from __future__ import annotations

import math
import uuid as uuidlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any

GPU_TRAIT = "CUSTOM_GPU"
SHARING_TRAIT = "MISC_SHARES_VIA_AGGREGATE"
# Uuid namespaces (the high bits), so hosts, NUMA nodes, pools and aggregates never collide.
_HOST, _NUMA, _POOL, _AGG, _RACK_AGG = 0, 1, 2, 3, 4

# (total, reserved, min_unit, max_unit, step_size, allocation_ratio)
InventorySpec = tuple[int, int, int, int, int, float]


@dataclass
class ProviderSpec:
    """One provider to write; ``parent`` is the index of an earlier spec."""

    uuid: str
    name: str
    parent: int | None = None
    inventories: dict[str, InventorySpec] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=dict)
    traits: set[str] = field(default_factory=set)
    aggregates: set[str] = field(default_factory=set)


def _uuid(kind: int, index: int) -> str:
    """The uuid of object ``index`` of one kind (hosts, NUMA nodes, pools, aggregates)."""
    return str(uuidlib.UUID(int=(kind << 64) + index + 1))


def host_uuid(index: int) -> str:
    """The uuid of host number ``index`` (0-based, in topology order)."""
    return _uuid(_HOST, index)


def host_index(uuid: str) -> int:
    """The inverse of :func:`host_uuid` (-1 for anything else)."""
    value = uuidlib.UUID(uuid).int
    return value - 1 if value >> 64 == _HOST else -1


def aggregate_uuid(index: int) -> str:
    """The uuid of aggregate number ``index``."""
    return _uuid(_AGG, index)


@dataclass(frozen=True)
class Topology:
    """What to build: the layout, the host size and the extras."""

    rows: int = 1
    racks: int = 5
    hosts_per_rack: int = 20
    hosts: int = 0  # when > 0: exactly this many hosts, racks as needed
    vcpus: int = 24
    vcpu_ratio: float = 16.0
    memory_mb: int = 262144
    memory_ratio: float = 1.5
    memory_reserved_mb: int = 0
    disk_gb: int = 0
    disk_ratio: float = 1.0
    gpu_fraction: float = 0.0
    aggregates: int = 0
    numa_nodes: int = 0
    shared_storage_gb: int = 0  # > 0: one sharing DISK_GB pool per rack

    @property
    def host_count(self) -> int:
        """How many compute hosts the topology has."""
        return self.hosts or self.rows * self.racks * self.hosts_per_rack

    @property
    def rack_count(self) -> int:
        """How many racks hold them."""
        return math.ceil(self.host_count / self.hosts_per_rack)

    def as_dict(self) -> dict[str, Any]:
        """The settings, for a result line."""
        return {**asdict(self), "host_count": self.host_count}


# Named starting points; every field can still be overridden.
PROFILES: dict[str, Topology] = {
    # placement-bench (2016): 24 cores x16, 256 GB x1.5 with 1,024 MB reserved for the host.
    "placement-bench": Topology(memory_reserved_mb=1024),
    # The allocation-candidates issue's cloud: 64 cores x16, 256 GB x1.5 (512 reserved),
    # 2 TB disk, 10% with CUSTOM_GPU, 10 aggregates.
    "candidates": Topology(
        vcpus=64,
        memory_reserved_mb=512,
        disk_gb=2000,
        gpu_fraction=0.1,
        aggregates=10,
    ),
}


def from_profile(profile: str, hosts: int = 0, **fields: Any) -> Topology:
    """The named profile with ``hosts`` and the ``fields`` that are not None changed."""
    changed = {k: v for k, v in fields.items() if v is not None}
    return replace(PROFILES[profile], hosts=hosts, **changed)


def _inventory(total: int, ratio: float, reserved: int = 0) -> InventorySpec:
    """An inventory of ``total`` units, any amount from 1 to all of them."""
    return (total, reserved, 1, total, 1, ratio)


def _has_gpu(index: int, fraction: float) -> bool:
    """Spread GPU hosts evenly: host i has one when floor((i+1)f) > floor(i f)."""
    return fraction > 0 and math.floor((index + 1) * fraction) > math.floor(index * fraction)


def _host(topo: Topology, index: int, rack: int) -> ProviderSpec:
    """Compute host ``index`` in ``rack`` (its compute inventory on NUMA children if any)."""
    inventories: dict[str, InventorySpec] = {}
    if not topo.numa_nodes:
        inventories["VCPU"] = _inventory(topo.vcpus, topo.vcpu_ratio)
        inventories["MEMORY_MB"] = _inventory(
            topo.memory_mb, topo.memory_ratio, topo.memory_reserved_mb
        )
    if topo.disk_gb and not topo.shared_storage_gb:
        inventories["DISK_GB"] = _inventory(topo.disk_gb, topo.disk_ratio)
    aggregates = {aggregate_uuid(index % topo.aggregates)} if topo.aggregates else set()
    if topo.shared_storage_gb:
        aggregates.add(_uuid(_RACK_AGG, rack))
    row, rack_in_row = divmod(rack, topo.racks)
    return ProviderSpec(
        uuid=host_uuid(index),
        name=f"r{row:02d}-k{rack_in_row:03d}-h{index % topo.hosts_per_rack:03d}-{index:06d}",
        inventories=inventories,
        traits={GPU_TRAIT} if _has_gpu(index, topo.gpu_fraction) else set(),
        aggregates=aggregates,
    )


def _numa_children(topo: Topology, index: int, parent: int) -> list[ProviderSpec]:
    """The host's NUMA nodes, sharing its VCPU and memory evenly."""
    n = topo.numa_nodes
    children = []
    for node in range(n):
        children.append(
            ProviderSpec(
                uuid=_uuid(_NUMA, index * n + node),
                name=f"h{index:06d}-numa{node}",
                parent=parent,
                inventories={
                    "VCPU": _inventory(topo.vcpus // n, topo.vcpu_ratio),
                    "MEMORY_MB": _inventory(
                        topo.memory_mb // n, topo.memory_ratio, topo.memory_reserved_mb // n
                    ),
                },
                traits={"HW_NUMA_ROOT"},
            )
        )
    return children


def _pool(topo: Topology, rack: int) -> ProviderSpec:
    """The sharing DISK_GB pool of ``rack``."""
    return ProviderSpec(
        uuid=_uuid(_POOL, rack),
        name=f"storage-pool-{rack:05d}",
        inventories={"DISK_GB": _inventory(topo.shared_storage_gb, topo.disk_ratio)},
        traits={SHARING_TRAIT},
        aggregates={_uuid(_RACK_AGG, rack)},
    )


def build(topo: Topology) -> list[ProviderSpec]:
    """Every provider of the topology, parents before their children."""
    specs: list[ProviderSpec] = []
    for index in range(topo.host_count):
        rack = index // topo.hosts_per_rack
        if topo.shared_storage_gb and index % topo.hosts_per_rack == 0:
            specs.append(_pool(topo, rack))
        parent = len(specs)
        specs.append(_host(topo, index, rack))
        if topo.numa_nodes:
            specs.extend(_numa_children(topo, index, parent))
    return specs
