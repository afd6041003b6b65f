"""A real three-node MariaDB Galera cluster on this machine (``scripts/galera``).

:func:`start_cluster` starts a cluster of its own (data in a temporary
directory, SQL and Galera ports picked free, so that several run side by
side), or uses the one ``BERTH_GALERA_DIR`` names (``BERTH_GALERA_PORT``,
``BERTH_GALERA_GCOMM_PORT``), started if need be.  :meth:`Cluster.stop`
stops what :func:`start_cluster` started (a cluster already running is left
so).  Used by ``tests/galera`` and by :mod:`berth.bench.multihost` (one node
per berth host).  Needs galera-4, MariaDB and rsync (docs/deploy.md).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

from berth.db.engine import Database

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "galera"
NODES = (1, 2, 3)
# Reads wait until the node has applied everything committed before them.
SYNC_WAIT = "init_command=SET SESSION wsrep_sync_wait=1"
START_TIMEOUT = 300


class ClusterError(RuntimeError):
    """The cluster could not start (the reason is the message)."""


@dataclass
class Cluster:
    """A running cluster, as ``scripts/galera`` sees it through ``env``."""

    env: dict[str, str]
    sql_port: int
    own: bool = False  # its directory is ours: removed by stop()
    already: bool = False  # it ran before start_cluster(): stop() leaves it
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

    def urls(self, database: str, sync_wait: bool = False) -> list[str]:
        """``database``'s URL on each node, node 1 first."""
        return [self.url(n, database, sync_wait) for n in NODES]

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

    def admin(self, statement: str) -> None:
        """Run ``statement`` on node 1, outside any database."""
        db = Database(self.url(1))
        try:
            with db.engine.connect() as conn:
                conn.execute(text(statement))
                conn.commit()
        finally:
            db.dispose()

    def create_database(self, name: str) -> None:
        """Create ``name`` (utf8mb4) unless it exists; :meth:`stop` drops it."""
        self.databases.add(name)
        self.admin(f"CREATE DATABASE IF NOT EXISTS {name} CHARACTER SET utf8mb4")

    def drop_databases(self) -> None:
        """Drop the databases :meth:`create_database` made."""
        for name in self.databases:
            try:
                self.admin(f"DROP DATABASE IF EXISTS {name}")
            except Exception:  # a cluster that went away keeps nothing anyway
                continue

    def stop(self) -> None:
        """Drop its databases; stop the cluster unless it ran before, remove its directory
        if it is ours."""
        self.drop_databases()
        if self.already:
            return
        subprocess.run([SCRIPT, "stop"], env=self.env, capture_output=True, check=False)
        if self.own:  # the script removes it; not if it failed half way
            shutil.rmtree(self.env["BERTH_GALERA_DIR"], ignore_errors=True)


def free_block(first: int, size: int) -> int:
    """The first port from ``first`` (step 100) with ``size`` free ports after it."""
    for base in range(first, first + 20_000, 100):
        try:
            for port in range(base, base + size):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise ClusterError("no free ports for a Galera cluster")


def start_cluster() -> Cluster:
    """A running three-node cluster (see the module docstring); ClusterError if it cannot."""
    env = dict(os.environ)
    own = "BERTH_GALERA_DIR" not in env
    if own:
        # Offset by pid so that sessions starting together try different blocks.
        # SQL on base..base+2; Galera, IST and SST on base+10.. (node N: +10N..+10N+2).
        base = free_block(20_000 + os.getpid() % 50 * 100, 33)
        env.update(
            BERTH_GALERA_DIR=tempfile.mkdtemp(prefix="berth-galera-"),
            BERTH_GALERA_PORT=str(base),
            BERTH_GALERA_GCOMM_PORT=str(base + 10),
        )
    cluster = Cluster(env, int(env.get("BERTH_GALERA_PORT", "4306")), own=own)
    try:
        if not own:
            status = subprocess.run([SCRIPT, "status"], env=env, capture_output=True)
            cluster.already = status.returncode == 0
        cluster.script("start")
    except FileNotFoundError as exc:
        raise ClusterError(str(exc)) from None
    except subprocess.CalledProcessError as exc:
        cluster.stop()
        raise ClusterError(f"scripts/galera start failed: {exc.stdout}{exc.stderr}") from None
    except subprocess.TimeoutExpired:
        cluster.stop()
        raise ClusterError(f"scripts/galera start took over {START_TIMEOUT}s") from None
    return cluster
