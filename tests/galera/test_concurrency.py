"""The concurrency tests' workloads with their writers spread over the three Galera nodes.

Each reuses a test written for one database (its workload and its invariant
checks), with writer i connected to node ``i % 3``: two writers on
different nodes that race for one provider meet only at commit, in
Galera's certification, and the loser must be run again like any lost
generation race.  The certification conflicts each run provoked are counted
from the nodes' ``wsrep_local_cert_failures`` and ``wsrep_local_bf_aborts``.
"""

from __future__ import annotations

import time

import pytest

from berth.db.engine import Database
from tests.domain import test_allocation_races as allocation_races
from tests.galera.conftest import DATABASE, Cluster
from tests.scheduler import test_concurrency as scheduler_races
from tests.scheduler.conftest import write_cloud

pytestmark = pytest.mark.slow


def test_allocation_writers_on_three_nodes(galera: Cluster, galera_db: Database) -> None:
    """8 processes writing allocations through 3 nodes: no over-commit, no lost write."""
    providers = allocation_races.make_providers(galera_db, 3)
    galera.settle()
    before = galera.conflicts()
    expected, stats = allocation_races.run(galera_db, providers, galera.urls(DATABASE))
    conflicts = galera.conflicts() - before
    allocation_races.check(galera_db, expected, stats)
    print(f"galera allocations: {dict(stats)}, {conflicts} certification conflicts")


def test_schedulers_on_three_nodes(galera: Cluster, galera_db: Database) -> None:
    """8 scheduler processes (server groups among their requests) through 3 nodes."""
    write_cloud(galera_db, scheduler_races.HOSTS, inventories=scheduler_races.INVENTORY)
    galera.settle()
    before = galera.conflicts()
    started = time.monotonic()
    placed, failed, stats = scheduler_races.run(galera_db, galera.urls(DATABASE))
    elapsed = time.monotonic() - started
    conflicts = galera.conflicts() - before
    scheduler_races.check(galera_db, placed, stats)
    print(
        f"galera scheduler: {len(placed)} placed, {len(failed)} refused in {elapsed:.1f}s, "
        f"{dict(stats)}, {conflicts} certification conflicts"
    )
