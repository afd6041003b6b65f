"""Filling the cloud until it is full, as placement-bench did: the request list and the fill level.

placement-bench (``benchmark.py``, ``queue_instance_requests``) made one
list of random requests before a run and replayed it in every scenario: it
drew sizes at random until their RAM added up to the cloud's usable RAM,
``(total - reserved) x ratio`` per host, plus 100 GB per host (times the
workers; the serial run's list, one worker, was then reused by the others)
so that there are always more requests than fit.  The same seed and the same
cloud give the same list here.
"""

from __future__ import annotations

import math
import random

from sqlalchemy import func, select

from berth.bench.cloud import Topology
from berth.bench.strategies import SIZES
from berth.db import tables as t
from berth.db.engine import Database

SURPLUS_MB_PER_HOST = 1024 * 100  # placement-bench's "fudging factor", one worker


def request_list(topo: Topology, seed: int = 0) -> bytes:
    """The fixed list for ``topo``: one byte per request, the index of its size in SIZES."""
    usable = (topo.memory_mb - topo.memory_reserved_mb) * topo.memory_ratio
    remaining = math.floor(usable * topo.host_count) + SURPLUS_MB_PER_HOST * topo.host_count
    rng = random.Random(seed)
    out = bytearray()
    while remaining > 0:
        index = rng.randrange(len(SIZES))
        remaining -= SIZES[index][1]
        if remaining > 0:
            out.append(index)
    return bytes(out)


def fill_level(database_url: str) -> dict[str, float]:
    """Per class, the share of usable capacity allocated, in % (``vcpu_used_pct``...)."""
    used = (
        select(t.allocations.c.resource_class_id, func.sum(t.allocations.c.used))
        .group_by(t.allocations.c.resource_class_id)
    )  # fmt: skip
    inv = t.inventories.c
    usable = (
        select(inv.resource_class_id, func.sum((inv.total - inv.reserved) * inv.allocation_ratio))
        .group_by(inv.resource_class_id)
    )  # fmt: skip
    names = select(t.resource_classes.c.id, t.resource_classes.c.name)
    db = Database(database_url)
    try:
        with db.read() as conn:
            by_id = {int(rc): str(name) for rc, name in conn.execute(names)}
            taken = {int(rc): float(n or 0) for rc, n in conn.execute(used)}
            capacity = {int(rc): float(n or 0) for rc, n in conn.execute(usable)}
    finally:
        db.dispose()
    out = {}
    for rc, name in by_id.items():
        if name in ("VCPU", "MEMORY_MB") and capacity.get(rc):
            out[f"{name.lower()}_used_pct"] = round(100 * taken.get(rc, 0.0) / capacity[rc], 2)
    return out
