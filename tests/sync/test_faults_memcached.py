"""Faults of the memcached backend: a private server of this module's own, killed and restarted
while two workers follow host state (tests/sync/faults.py plays the outage)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from berth.db.engine import Database
from berth.scheduler.hoststate import HostCatalog
from berth.sync.backends import open_sync
from berth.sync.protocol import StateSync
from tests.sync.faults import outage
from tests.sync.servers import PrivateServer, channel


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateServer]:
    made = PrivateServer("memcached", tmp_path_factory.mktemp("memcached"))
    made.start()
    yield made
    made.stop()


def test_workers_fall_back_to_the_logs_and_come_back(
    server: PrivateServer, sqlite_db: Database
) -> None:
    opened: list[StateSync] = []
    name = channel()

    def make() -> StateSync:
        opened.append(open_sync("memcached", server.url, sqlite_db, name))
        return opened[-1]

    def kill(readers: list[HostCatalog]) -> None:
        server.kill()

    try:
        outage(sqlite_db, make, kill, server.start)
    finally:
        for sync in opened:
            sync.close()
