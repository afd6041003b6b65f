"""SQLite has no server to restart, but its file can be locked or unusable: a clean 503, no hang."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import falcon.testing
import pytest

from berth import settings as settings_mod
from berth.api.app import create_app
from berth.db.engine import Database
from berth.policy import Enforcer
from berth.services import Services, timeouts
from tests.faults.answers import RETRY_AFTER, assert_unavailable

HEADERS = {"x-auth-token": "admin", "openstack-api-version": "placement 1.20"}


def _client(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[falcon.testing.TestClient, Services]:
    monkeypatch.setattr(falcon.testing.client.wsgiref.validate, "validator", lambda app: app)
    settings = settings_mod.load(environ={}, database_url=url, database_lock_timeout=1.0)
    services = Services(
        settings=settings, db=Database(url, timeouts(settings)), enforcer=Enforcer(True)
    )
    return falcon.testing.TestClient(create_app(settings, services), headers=HEADERS), services


def test_locked_file_is_a_prompt_503(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    client, services = _client(sqlite_db.url, monkeypatch)
    path = sqlite_db.url.removeprefix("sqlite:///")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
        started = time.monotonic()
        answer = client.simulate_post("/resource_providers", json={"name": "rp"})
        took = time.monotonic() - started
        # Reads go on (WAL), and readiness with them.
        assert client.simulate_get("/resource_providers").status_code == 200
        assert client.simulate_get("/healthcheck/ready").status_code == 200
    finally:
        other.execute("ROLLBACK")
        other.close()
        services.close()
    assert_unavailable(answer, "waiting for a lock", took, bound=3)


def test_unusable_file_is_a_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "berth.sqlite").mkdir()  # a directory where the database file should be
    client, services = _client(f"sqlite:///{tmp_path / 'berth.sqlite'}", monkeypatch)
    try:
        answer = client.simulate_get("/resource_providers")
        ready = client.simulate_get("/healthcheck/ready")
    finally:
        services.close()
    assert_unavailable(answer, "database file unavailable")
    assert ready.status_code == 503
    assert ready.headers["retry-after"] == RETRY_AFTER
    assert ready.json["status"] == "unavailable"
