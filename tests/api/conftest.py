"""An in-process berth app for fast HTTP-level tests (SQLite, or each database)."""

from __future__ import annotations

from collections.abc import Iterator

import falcon.testing
import pytest

from berth.db.engine import Database
from tests.helpers import in_process_client


@pytest.fixture
def client(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> Iterator[falcon.testing.TestClient]:
    """A Falcon test client on a fresh SQLite database (admin token by default)."""
    with in_process_client(sqlite_db, monkeypatch, enforce_new_defaults=False) as client:
        yield client


@pytest.fixture
def any_client(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> Iterator[falcon.testing.TestClient]:
    """The same on SQLite, PostgreSQL and MariaDB in turn."""
    with in_process_client(db, monkeypatch, enforce_new_defaults=False) as client:
        yield client
