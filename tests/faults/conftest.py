"""Private database servers, started once per test session (see private_db.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import REQUIRE

from tests.faults.private_db import SERVERS, PrivateServer, available


def _server(kind: str) -> Iterator[PrivateServer]:
    missing = available(kind)
    if missing:
        if REQUIRE:
            pytest.fail(missing)
        pytest.skip(missing)
    with SERVERS[kind]() as server:
        yield server


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivateServer]:
    """A PostgreSQL server of this session's own, free to stop, kill and restart."""
    yield from _server("postgresql")


@pytest.fixture(scope="session")
def private_mariadb() -> Iterator[PrivateServer]:
    """A MariaDB server of this session's own, free to stop, kill and restart."""
    yield from _server("mysql")


@pytest.fixture(params=["postgresql", "mysql"])
def private_server(request: pytest.FixtureRequest) -> PrivateServer:
    """Each private server in turn, running (a test that stopped it left it stopped)."""
    name = "private_postgres" if request.param == "postgresql" else "private_mariadb"
    server: PrivateServer = request.getfixturevalue(name)
    if not server.answers():
        server.start()
    return server
