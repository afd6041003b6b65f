"""Faults of the pg_notify backend: the workers' listening sessions ended by the server
(``pg_terminate_backend``) while they follow host state (tests/sync/faults.py plays it).
The shared PostgreSQL itself is never stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from berth.db.engine import Database
from berth.scheduler.hoststate import HostCatalog
from berth.sync.backends import open_sync
from berth.sync.backends.pg_notify import PgNotifySync
from berth.sync.protocol import StateSync
from tests.conftest import fresh_database
from tests.sync.faults import outage
from tests.sync.servers import channel


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Database]:
    db = fresh_database("postgresql", tmp_path)
    yield db
    db.dispose()


def test_workers_whose_session_ends_catch_up_and_listen_again(pg: Database) -> None:
    opened: list[StateSync] = []
    name = channel()

    def make() -> StateSync:
        opened.append(open_sync("pg_notify", "", pg, name))
        return opened[-1]

    def kill(readers: list[HostCatalog]) -> None:
        pids = []
        for reader in readers:
            assert isinstance(reader.sync, PgNotifySync) and reader.sync.backend_pid
            pids.append(reader.sync.backend_pid)
        with pg.write() as conn:
            for pid in pids:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    try:
        # The server stays up: the sessions come back within a reconnect's wait.
        outage(pg, make, kill, lambda: None, stays_down=False)
    finally:
        for sync in opened:
            sync.close()
