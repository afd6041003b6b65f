"""Fixtures of the pull fault tests: a database URL per backend for ``berth serve``."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BACKENDS, server_database_url

# berth serve with two agents and a sweeper on SQLite's one writer is a test of SQLite's
# lock timeouts, not of pull dispatch: the servers only (tests/pull covers SQLite).
SERVERS = [b for b in ("postgresql", "mysql") if b in BACKENDS]


@pytest.fixture(params=[b for b in SERVERS if b == "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A wiped PostgreSQL database for berth serve (berth migrates it at start)."""
    url = server_database_url(request.param)
    assert url is not None
    return url
