"""Concurrency: many processes reserving at once never pass the last unit of quota.

PROCESSES processes (spawned, each with its own engine and connections) meet
at a barrier, then each asks for ATTEMPTS reservations of one instance as
fast as it can, through ``atomically`` as the callers do (``racer.py``).
The limit leaves room for exactly ROOM of them (allocations and an earlier
reservation take the rest).  Afterwards exactly ROOM succeeded, every other
one was refused as over quota (none gave up), and the usage the database
holds is exactly the limit.  On PostgreSQL and MariaDB the reservations
race on the project's generation swap (the lost races are printed with
``-s``); on SQLite ``BEGIN IMMEDIATE`` serialises them already.  Without
the swap the concurrent reservations pass the limit together: the test
then fails on PostgreSQL and MariaDB (checked by hand).
"""

from __future__ import annotations

import multiprocessing
from collections import Counter

import pytest

from berth.db.engine import Database
from berth.scheduler.quotas import Scope
from tests.scheduler.quotas.helpers import allocate, big_host, reserve, set_limits, usage
from tests.scheduler.quotas.racer import ATTEMPTS, race

PROCESSES = 4
ROOM = 5
PROJECT = "p-race"


def _race(db: Database, scope: Scope) -> Counter[str]:
    mp = multiprocessing.get_context("spawn")
    start, out = mp.Barrier(PROCESSES), mp.Queue()
    procs = [mp.Process(target=race, args=(db.url, i, scope, start, out)) for i in range(PROCESSES)]
    for p in procs:
        p.start()
    outcomes: Counter[str] = Counter()
    for _ in procs:
        outcomes.update(out.get(timeout=300))
    for p in procs:
        p.join(timeout=60)
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize("limited", ["project", "user"])
def test_concurrent_reservations_never_pass_the_limit(db: Database, limited: str) -> None:
    """Exactly ROOM of PROCESSES * ATTEMPTS reservations pass, for a project's limit
    (every process a different user) and for a user's (every process that user)."""
    scope = Scope(PROJECT) if limited == "project" else Scope(PROJECT, "u-race")
    holder = Scope(PROJECT, scope.user_id or "u-early")
    host = big_host(db)
    for _ in range(2):
        allocate(db, host, PROJECT, holder.user_id or "", {"VCPU": 2})
    reserve(db, holder, {"VCPU": 2}, ttl=3600, now=None)
    limit = 3 + ROOM  # 2 instances in use, 1 reserved
    set_limits(db, scope, {"instances": limit, "VCPU": 2 * limit})

    outcomes = _race(db, scope)
    print(f"\n{db.dialect}, {limited}'s limit: {dict(outcomes)}")

    problems = [k for k in outcomes if k.startswith(("crash", "gave up"))]
    assert not problems, outcomes
    assert outcomes["reserved"] == ROOM, outcomes
    assert outcomes["exceeded"] == PROCESSES * ATTEMPTS - ROOM, outcomes
    counted = usage(db, scope, now=None)
    assert counted.counted("instances") == limit, counted
    assert counted.counted("VCPU") == 2 * limit, counted
