"""Workload pieces shared by every claims target: request sizes, strategies, partitions.

Request sizes are placement-bench's six (``const.RESOURCE_TEMPLATES`` in
jaypipes/placement-bench: micro 1 vCPU / 64 MB, small 1 / 1,024, medium
2 / 4,096, large 4 / 8,192, xlarge 8 / 16,384, xxlarge 16 / 32,768; no
disk).  A *strategy* orders candidate hosts (pack: fullest first; spread:
emptiest first; random; default: berth's scheduler with its default
weighers, or for a client the first candidate in the server's order).
*Partitioning* gives each of W schedulers its own hosts: ``modulo`` (host
number % W) or ``hash`` (a consistent-hash ring of the workers, berth's
:class:`~berth.scheduler.partition.Ring`); a scheduler prefers its own hosts
and falls back to the others only when none fits.  ``strict`` is
placement-bench's modulo: a client considers its own hosts only, and its
partition being full is the end of its run (client-side claims only).

In berth's scheduler the same choices are settings
(:func:`scheduler_settings`); for any other Placement the lab's own client
applies them to the candidates the API returns (:func:`order`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# (VCPU, MEMORY_MB), smallest first: placement-bench's micro .. xxlarge.
SIZES: list[tuple[int, int]] = [
    (1, 64),
    (1, 1024),
    (2, 4096),
    (4, 8192),
    (8, 16384),
    (16, 32768),
]
STRATEGIES = ("pack", "spread", "random", "default")
PARTITIONINGS = ("none", "modulo", "strict", "hash")
HASH_REPLICAS = 64


def request_size(rng: random.Random) -> dict[str, int]:
    """One of the six sizes, at random."""
    vcpu, ram = rng.choice(SIZES)
    return {"VCPU": vcpu, "MEMORY_MB": ram}


def scheduler_settings(strategy: str, partitioning: str, index: int, count: int) -> dict[str, Any]:
    """berth scheduler settings that implement ``strategy`` and ``partitioning``.

    ``default`` changes no weigher; ``none`` changes no partitioning setting.
    """
    if strategy not in STRATEGIES or partitioning not in PARTITIONINGS:
        raise ValueError(f"strategy {strategy!r} / partitioning {partitioning!r}")
    chosen: dict[str, Any] = {}
    if strategy != "default":
        weighers = {"pack": "ram=-1,cpu=-1", "spread": "ram=1,cpu=1", "random": "ram=0"}
        chosen["scheduler_weighers"] = weighers[strategy]
        # random: no weights, a random host among the whole scan window.
        chosen["scheduler_host_subset_size"] = 1000 if strategy == "random" else 1
    if partitioning != "none":
        kind = {"hash": "consistent", "strict": "modulo"}.get(partitioning, partitioning)
        chosen["scheduler_partitioning"] = kind
        if partitioning == "strict":  # placement-bench's: a worker stops when its hosts are full
            chosen["scheduler_partition_fallback"] = False
        # Packing its own hosts, a worker fills them in order; unpartitioned
        # workers start at random places so that they do not all pick one host.
        chosen["scheduler_scan_random_start"] = strategy != "pack"
        chosen["scheduler_worker_index"] = index
        chosen["scheduler_worker_count"] = count
    return chosen


def owner_function(partitioning: str, workers: int) -> Callable[[str], int]:
    """Host uuid -> the worker that owns it (remembered: a client asks about the same hosts)."""
    if partitioning in ("modulo", "strict"):

        def find(uuid: str) -> int:
            """The lab's host uuids count from 1 (:func:`berth.bench.cloud.host_uuid`)."""
            return (int(uuid.replace("-", ""), 16) - 1) % workers

    elif partitioning == "hash":
        from berth.scheduler.partition import Ring  # the scheduler's own ring, imported late

        names = [f"worker-{i}" for i in range(workers)]
        ring = Ring(names, HASH_REPLICAS)

        def find(uuid: str) -> int:
            """The worker after the uuid's point on the ring."""
            return names.index(ring.owner(uuid))

    else:
        return lambda uuid: 0
    known: dict[str, int] = {}

    def owner(uuid: str) -> int:
        """``find``, once per host."""
        found = known.get(uuid)
        if found is None:
            found = known[uuid] = find(uuid)
        return found

    return owner


def free_score(summary: Mapping[str, Any], wanted: Mapping[str, int]) -> float:
    """How empty a host is for the classes asked for (0..1, mean over classes)."""
    resources = summary.get("resources", {})
    total, counted = 0.0, 0
    for rc in wanted:
        entry = resources.get(rc)
        capacity = entry.get("capacity") if entry else 0
        if capacity:
            total += 1.0 - entry.get("used", 0) / capacity
            counted += 1
    return total / counted if counted else 0.0


def order(
    candidates: Sequence[tuple[str, Mapping[str, Any]]],
    wanted: Mapping[str, int],
    strategy: str,
    rng: random.Random,
) -> list[int]:
    """Indices of ``candidates`` ((host uuid, summary) pairs), best first."""
    indices = list(range(len(candidates)))
    if strategy == "default":  # the server's order
        return indices
    if strategy == "random":
        rng.shuffle(indices)
        return indices
    scores = [free_score(summary, wanted) for _, summary in candidates]
    # Ties broken at random so that equal hosts are not always taken in the same order.
    jitter = [rng.random() for _ in indices]
    sign = 1.0 if strategy == "pack" else -1.0
    return sorted(indices, key=lambda i: (sign * scores[i], jitter[i]))


def mine_first(
    ranked: Sequence[int],
    hosts: Sequence[str],
    owner: Callable[[str], int],
    me: int,
) -> list[int]:
    """``ranked`` with this worker's hosts first (order kept within each part)."""
    own = [i for i in ranked if owner(hosts[i]) == me]
    rest = [i for i in ranked if owner(hosts[i]) != me]
    return own + rest


def server_env(strategy: str, partitioning: str) -> dict[str, str]:
    """``BERTH_*`` variables for a berth server whose workers schedule this way.

    Server workers find each other by heartbeat, so no fixed index is set.
    """
    chosen = scheduler_settings(strategy, partitioning, 0, 1)
    chosen.pop("scheduler_worker_index", None)
    chosen.pop("scheduler_worker_count", None)
    return {f"BERTH_{name.upper()}": str(value) for name, value in chosen.items()}
