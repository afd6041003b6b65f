"""Workload pieces shared by every claims target: request sizes, strategies, partitions.

Request sizes are placement-bench's six, from 1 vCPU / 64 MB to 16 vCPU /
32 GB.  A *strategy* orders candidate hosts (pack: fullest first; spread:
emptiest first; random).  *Partitioning* gives each of W schedulers its own
hosts: ``modulo`` (host number % W) or ``hash`` (a consistent-hash ring of
the workers, berth's :class:`~berth.scheduler.partition.Ring`); a scheduler
prefers its own hosts and falls back to the others only when none fits.

In berth's scheduler the same choices are settings
(:func:`scheduler_settings`); for any other Placement the lab's own client
applies them to the candidates the API returns (:func:`order`).
"""

from __future__ import annotations

import random
import uuid as uuidlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

SIZES: list[tuple[int, int]] = [(1, 64), (1, 512), (2, 2048), (4, 4096), (8, 16384), (16, 32768)]
STRATEGIES = ("pack", "spread", "random")
PARTITIONINGS = ("none", "modulo", "hash")
HASH_REPLICAS = 64


def request_size(rng: random.Random) -> dict[str, int]:
    """One of the six sizes, at random."""
    vcpu, ram = rng.choice(SIZES)
    return {"VCPU": vcpu, "MEMORY_MB": ram}


def scheduler_settings(strategy: str, partitioning: str, index: int, count: int) -> dict[str, Any]:
    """berth scheduler settings that implement ``strategy`` and ``partitioning``."""
    if strategy not in STRATEGIES or partitioning not in PARTITIONINGS:
        raise ValueError(f"strategy {strategy!r} / partitioning {partitioning!r}")
    weighers = {"pack": "ram=-1,cpu=-1", "spread": "ram=1,cpu=1", "random": "ram=0"}[strategy]
    return {
        "scheduler_weighers": weighers,
        # random: no weights, a random host among the whole scan window.
        "scheduler_host_subset_size": 1000 if strategy == "random" else 1,
        "scheduler_partitioning": "consistent" if partitioning == "hash" else partitioning,
        # Packing its own hosts, a worker fills them in order; unpartitioned
        # workers start at random places so that they do not all pick one host.
        "scheduler_scan_random_start": not (strategy == "pack" and partitioning != "none"),
        "scheduler_worker_index": index if partitioning != "none" else -1,
        "scheduler_worker_count": count if partitioning != "none" else 0,
    }


def owner_function(partitioning: str, workers: int) -> Callable[[str], int]:
    """Host uuid -> the worker that owns it."""
    if partitioning == "modulo":
        return lambda uuid: (uuidlib.UUID(uuid).int - 1) % workers
    if partitioning == "hash":
        from berth.scheduler.partition import Ring  # the scheduler's own ring, imported late

        names = [f"worker-{i}" for i in range(workers)]
        ring = Ring(names, HASH_REPLICAS)
        return lambda uuid: names.index(ring.owner(uuid))
    return lambda uuid: 0


def free_score(summary: Mapping[str, Any], wanted: Mapping[str, int]) -> float:
    """How empty a host is for the classes asked for (0..1, mean over classes)."""
    resources = summary.get("resources", {})
    parts = []
    for rc in wanted:
        entry = resources.get(rc)
        if entry and entry.get("capacity"):
            parts.append(1.0 - entry.get("used", 0) / entry["capacity"])
    return sum(parts) / len(parts) if parts else 0.0


def order(
    candidates: Sequence[tuple[str, Mapping[str, Any]]],
    wanted: Mapping[str, int],
    strategy: str,
    rng: random.Random,
) -> list[int]:
    """Indices of ``candidates`` ((host uuid, summary) pairs), best first."""
    indices = list(range(len(candidates)))
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
    chosen.pop("scheduler_worker_index")
    chosen.pop("scheduler_worker_count")
    return {f"BERTH_{name.upper()}": str(value) for name, value in chosen.items()}
