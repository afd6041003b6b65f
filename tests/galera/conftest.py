"""A real three-node MariaDB Galera cluster (``scripts/galera``), started once a session.

The session starts a cluster of its own: data in a temporary directory, SQL
and Galera ports picked free, stopped at the end, so that test sessions run
side by side on one machine never share (or kill) each other's nodes.  With
``BERTH_GALERA_DIR`` set, the cluster there (``BERTH_GALERA_PORT``,
``BERTH_GALERA_GCOMM_PORT``) is used instead, started if need be and left
running if it already was.  When the cluster cannot start the tests skip
with the reason, or fail when ``BERTH_TEST_REQUIRE_DATABASES=1``.

Each test gets a fresh, migrated database on the cluster (:func:`galera_db`),
seen through node 1 with reads that wait for replication
(``wsrep_sync_wait``), so its checks see every write any node acknowledged;
:func:`fresh_database` makes more (one a module, for servers kept running).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from conftest import REQUIRE, wipe
from server import ROOT
from sqlalchemy import text

from berth.db import migrate
from berth.db.engine import Database
from berth.placement import catalog

SCRIPT = ROOT / "scripts" / "galera"
NODES = (1, 2, 3)
DATABASE = f"berth_g{os.getpid()}"
# Reads wait until the node has applied everything committed before them.
SYNC_WAIT = "init_command=SET SESSION wsrep_sync_wait=1"
START_TIMEOUT = 300


@dataclass
class Cluster:
    """A running cluster, as ``scripts/galera`` sees it through ``env``."""

    env: dict[str, str]
    sql_port: int
    databases: set[str] = field(default_factory=set)

    def script(self, *args: str) -> str:
        """Run ``scripts/galera args``; its output (CalledProcessError when it fails)."""
        done = subprocess.run(
            [str(SCRIPT), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=True,
        )
        return done.stdout

    def url(self, node: int, database: str = "berth", sync_wait: bool = False) -> str:
        """The URL of ``database`` on ``node`` (1-3)."""
        url = f"mysql+pymysql://root@127.0.0.1:{self.sql_port + node - 1}/{database}"
        return f"{url}?{SYNC_WAIT}" if sync_wait else url

    def urls(self, database: str) -> list[str]:
        """``database``'s URL on each node, node 1 first."""
        return [self.url(n, database) for n in NODES]

    def kill(self, node: int) -> None:
        """SIGKILL ``node`` (a crash)."""
        self.script("kill-node", str(node))

    def start_node(self, node: int) -> str:
        """(Re)start ``node``; returns once it is Synced again (the script's report)."""
        return self.script("start-node", str(node))

    def status(self, node: int, name: str) -> str:
        """A ``SHOW GLOBAL STATUS`` value of ``node``."""
        db = Database(self.url(node))
        try:
            with db.read() as conn:
                row = conn.execute(text("SHOW GLOBAL STATUS LIKE :name"), {"name": name}).first()
        finally:
            db.dispose()
        return str(row[1]) if row else ""

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until every node has applied everything committed so far."""
        deadline = time.monotonic() + timeout
        while True:
            seen = {self.status(n, "wsrep_last_committed") for n in NODES}
            if len(seen) == 1:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"nodes still apart after {timeout}s: {seen}")
            time.sleep(0.2)

    def conflicts(self) -> int:
        """Certification failures and brute-force aborts of local transactions, all nodes."""
        return sum(
            int(self.status(n, name) or 0)
            for n in NODES
            for name in ("wsrep_local_cert_failures", "wsrep_local_bf_aborts")
        )


def _free_block(first: int, size: int) -> int:
    """The first port from ``first`` (step 100) with ``size`` free ports after it."""
    for base in range(first, first + 20_000, 100):
        try:
            for port in range(base, base + size):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports for a Galera cluster")


def _unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"Galera cluster: {reason}")
    pytest.skip(f"Galera cluster: {reason}")


@pytest.fixture(scope="session")
def galera() -> Iterator[Cluster]:
    """This session's three-node cluster (see the module docstring)."""
    env = dict(os.environ)
    own = "BERTH_GALERA_DIR" not in env
    if own:
        # Offset by pid so that sessions starting together try different blocks.
        # SQL on base..base+2; Galera, IST and SST on base+10.. (node N: +10N..+10N+2).
        base = _free_block(20_000 + os.getpid() % 50 * 100, 33)
        env.update(
            BERTH_GALERA_DIR=tempfile.mkdtemp(prefix="berth-galera-"),
            BERTH_GALERA_PORT=str(base),
            BERTH_GALERA_GCOMM_PORT=str(base + 10),
        )
    cluster = Cluster(env, int(env.get("BERTH_GALERA_PORT", "4306")))
    already = False
    try:
        if not own:
            status = subprocess.run([SCRIPT, "status"], env=env, capture_output=True)
            already = status.returncode == 0
        cluster.script("start")
    except FileNotFoundError as exc:
        _unavailable(str(exc))
    except subprocess.CalledProcessError as exc:
        _stop(cluster, own)
        _unavailable(f"scripts/galera start failed: {exc.stdout}{exc.stderr}")
    except subprocess.TimeoutExpired:
        _stop(cluster, own)
        _unavailable(f"scripts/galera start took over {START_TIMEOUT}s")
    try:
        yield cluster
    finally:
        _drop(cluster)
        if not already:
            _stop(cluster, own)


def _stop(cluster: Cluster, own: bool) -> None:
    subprocess.run([SCRIPT, "stop"], env=cluster.env, capture_output=True, check=False)
    if own:  # the script removes it; not if it failed half way
        shutil.rmtree(cluster.env["BERTH_GALERA_DIR"], ignore_errors=True)


def _admin(cluster: Cluster, statement: str) -> None:
    db = Database(cluster.url(1))
    try:
        with db.engine.connect() as conn:
            conn.execute(text(statement))
            conn.commit()
    finally:
        db.dispose()


def _drop(cluster: Cluster) -> None:
    for name in cluster.databases:
        try:
            _admin(cluster, f"DROP DATABASE IF EXISTS {name}")
        except Exception:  # a cluster that went away keeps nothing anyway
            continue


def fresh_database(cluster: Cluster, name: str) -> Database:
    """Database ``name`` on the cluster, empty and migrated; through node 1, reads waiting
    for replication.  Dropped at the end of the session."""
    cluster.databases.add(name)
    _admin(cluster, f"CREATE DATABASE IF NOT EXISTS {name} CHARACTER SET utf8mb4")
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
