"""Concurrent enqueues never pass the last unit of quota (the quota race, through enqueue).

PROCESSES spawned processes meet at a barrier and each enqueues ATTEMPTS
requests of one instance (``racer.py``, through ``atomically`` as the handler
does); the project's limit leaves room for ROOM of them.  Exactly ROOM are
queued, every other one is refused as over quota, and the rows agree: ROOM
queued instances, each with its live reservation.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter

import pytest

from berth.db.engine import Database
from berth.scheduler import flavors, quotas
from berth.scheduler.flavors import Flavor
from berth.scheduler.quotas import Scope
from tests.pull.helpers import check_invariants, states
from tests.pull.racer import ATTEMPTS, race

PROCESSES = 4
ROOM = 3
PROJECT = "p-race"


@pytest.mark.slow
def test_concurrent_enqueues_never_pass_the_limit(db: Database) -> None:
    with db.write() as conn:
        flavors.create(conn, Flavor("11111111-1111-1111-1111-111111111111", "small", {"VCPU": 1}))
        quotas.set_limits(conn, Scope(PROJECT), {"instances": ROOM})
    mp = multiprocessing.get_context("spawn")
    start, out = mp.Barrier(PROCESSES), mp.Queue()
    procs = [
        mp.Process(target=race, args=(db.url, i, PROJECT, start, out)) for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    outcomes: Counter[str] = Counter()
    try:
        for _ in procs:
            outcomes.update(out.get(timeout=120))
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    print(f"\n{db.dialect}: {dict(outcomes)}")
    assert outcomes == {"queued": ROOM, "exceeded": PROCESSES * ATTEMPTS - ROOM}, outcomes
    assert states(db) == {"queued": ROOM}
    check_invariants(db)
