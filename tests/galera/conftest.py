"""A real three-node MariaDB Galera cluster (``scripts/galera``, through
:mod:`berth.bench.galera`), started once a session.

The session starts a cluster of its own: data in a temporary directory, SQL
and Galera ports picked free, stopped at the end, so that test sessions run
side by side on one machine never share (or kill) each other's nodes.  With
``BERTH_GALERA_DIR`` set, the cluster there (``BERTH_GALERA_PORT``,
``BERTH_GALERA_GCOMM_PORT``) is used instead, started if need be and left
running if it already was.  When the cluster cannot start the tests skip
with the reason, or fail when ``BERTH_TEST_REQUIRE_DATABASES=1``.  The
session's fixture ``galera`` is in tests/conftest.py (tests/multihost uses
the same cluster).

Each test gets a fresh, migrated database on the cluster (:func:`galera_db`),
seen through node 1 with reads that wait for replication
(``wsrep_sync_wait``), so its checks see every write any node acknowledged;
:func:`fresh_database` makes more (one a module, for servers kept running).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from conftest import wipe

from berth.bench.galera import NODES, Cluster
from berth.db import migrate
from berth.db.engine import Database
from berth.placement import catalog

__all__ = ["DATABASE", "NODES", "Cluster", "fresh_database"]

DATABASE = f"berth_g{os.getpid()}"


def fresh_database(cluster: Cluster, name: str) -> Database:
    """Database ``name`` on the cluster, empty and migrated; through node 1, reads waiting
    for replication.  Dropped at the end of the session."""
    cluster.create_database(name)
    db = Database(cluster.url(1, name, sync_wait=True))
    wipe(db)
    migrate.upgrade(db)
    catalog.sync(db)
    return db


@pytest.fixture
def galera_db(galera: Cluster) -> Iterator[Database]:
    """A fresh database on the cluster (see :func:`fresh_database`)."""
    db = fresh_database(galera, DATABASE)
    yield db
    db.dispose()
