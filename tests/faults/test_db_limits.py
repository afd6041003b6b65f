"""The serving engine's time limits and connection health, on private PostgreSQL and MariaDB.

Each limit reaches the server session; a lock held elsewhere ends in a 503
after about the lock timeout (not after retries of it); an idle pooled
connection that a restart killed is replaced before use; a write whose
connection dies during COMMIT is answered 503 saying its outcome is unknown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import falcon.testing
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from berth import settings as settings_mod
from berth.api.app import create_app
from berth.db import migrate
from berth.db.engine import CommitUnknown, Database, Timeouts, unavailable
from berth.placement import catalog
from berth.policy import Enforcer
from berth.services import Services, timeouts
from tests.faults.answers import assert_unavailable
from tests.faults.private_db import PrivateServer

LIMITS = Timeouts(connect=2, lock=1, statement=3, pool=2)
RP = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def url(private_server: PrivateServer) -> str:
    url = private_server.create_database("berth_limits")
    db = Database(url)
    migrate.upgrade(db)
    catalog.sync(db)
    db.dispose()
    return url


@pytest.fixture
def services(url: str) -> Iterator[Services]:
    """A worker's services over the private server, with short limits."""
    settings = settings_mod.load(
        environ={},
        database_url=url,
        database_lock_timeout=1.0,
        database_statement_timeout=3.0,
        database_connect_timeout=2.0,
    )
    made = Services(
        settings=settings, db=Database(url, timeouts(settings)), enforcer=Enforcer(True)
    )
    yield made
    made.close()


@pytest.fixture
def app(services: Services, monkeypatch: pytest.MonkeyPatch) -> falcon.testing.TestClient:
    """The API in this process over ``services``."""
    monkeypatch.setattr(falcon.testing.client.wsgiref.validate, "validator", lambda app: app)
    return falcon.testing.TestClient(
        create_app(services.settings, services), headers={"x-auth-token": "admin"}
    )


def _setting(db: Database, name: str) -> str:
    with db.read() as conn:
        if db.dialect == "postgresql":
            return str(conn.execute(text(f"SHOW {name}")).scalar())
        return str(conn.execute(text(f"SELECT @@SESSION.{name}")).scalar())


def test_limits_reach_the_session(url: str) -> None:
    db = Database(url, LIMITS)
    try:
        if db.dialect == "postgresql":
            assert _setting(db, "statement_timeout") == "3s"
            assert _setting(db, "lock_timeout") == "1s"
            assert _setting(db, "idle_in_transaction_session_timeout") == "3s"
        else:
            assert _setting(db, "innodb_lock_wait_timeout") == "1"
            assert float(_setting(db, "max_statement_time")) == 3.0
    finally:
        db.dispose()


def test_a_long_statement_is_cut_off(url: str) -> None:
    db = Database(url, LIMITS)
    sleep = "SELECT pg_sleep(10)" if db.dialect == "postgresql" else "SELECT SLEEP(10)"
    started = time.monotonic()
    try:
        with pytest.raises(OperationalError) as caught, db.read() as conn:
            result = conn.execute(text(sleep)).scalar()
            # MariaDB's SLEEP returns 1 when interrupted instead of failing.
            if result == 1:
                raise OperationalError(sleep, {}, Exception(1969, "max_statement_time"))
        assert unavailable(caught.value) == "statement timed out"
    finally:
        db.dispose()
    assert time.monotonic() - started < 6


def test_a_held_lock_is_a_prompt_503(url: str, app: falcon.testing.TestClient) -> None:
    created = app.simulate_post("/resource_providers", json={"name": "rp", "uuid": RP})
    assert created.status_code in (200, 201)
    holder = Database(url)
    locked = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with holder.write() as conn:
            conn.execute(text(f"UPDATE resource_providers SET name = 'held' WHERE uuid = '{RP}'"))
            locked.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        answer = app.simulate_put(
            f"/resource_providers/{RP}", json={"name": "renamed"}, headers=_version()
        )
        took = time.monotonic() - started
    finally:
        release.set()
        thread.join()
        holder.dispose()
    assert_unavailable(answer, "waiting for a lock", took, bound=4)


def _version() -> dict[str, str]:
    return {"openstack-api-version": "placement 1.20"}


def test_idle_connection_killed_by_a_restart_is_replaced(
    private_server: PrivateServer, url: str
) -> None:
    pinged = Database(url, Timeouts(ping_after=0.2))
    unpinged = Database(url, Timeouts(ping_after=3600))
    try:
        for db in (pinged, unpinged):
            with db.read() as conn:
                conn.execute(text("SELECT 1"))
        private_server.restart()
        time.sleep(0.3)
        with pinged.read() as conn:  # the dead connection is replaced, not used
            assert conn.execute(text("SELECT 1")).scalar() == 1
        # Without the ping the first use fails (and invalidates the pool) ...
        with pytest.raises(OperationalError) as caught, unpinged.read() as conn:
            conn.execute(text("SELECT 1"))
        assert unavailable(caught.value) == "connection lost"
        # ... and the next one reconnects.
        with unpinged.read() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        pinged.dispose()
        unpinged.dispose()


def _kill_own_connection_at_commit(url: str, db: Database) -> None:
    """Make the next COMMIT of ``db`` find its connection killed by the server."""
    killer = Database(url)
    armed = [True]

    def on_commit(conn: Any) -> None:
        if not armed:
            return
        armed.clear()
        if db.dialect == "postgresql":
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            statement = f"SELECT pg_terminate_backend({pid})"
        else:
            pid = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
            statement = f"KILL {pid}"
        with killer.engine.connect() as other:
            other.exec_driver_sql(statement)
            other.commit()
        killer.dispose()

    event.listen(db.engine, "commit", on_commit)


def test_connection_lost_during_commit_is_commit_unknown(url: str) -> None:
    db = Database(url, LIMITS)
    try:
        _kill_own_connection_at_commit(url, db)
        with pytest.raises(CommitUnknown), db.write() as conn:
            conn.execute(text("UPDATE resource_classes SET name = name WHERE id = 0"))
        with db.read() as conn:  # the pool recovers at once
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        db.dispose()


def test_commit_unknown_is_a_503_that_says_so(
    url: str, services: Services, app: falcon.testing.TestClient
) -> None:
    _kill_own_connection_at_commit(url, services.db)
    answer = app.simulate_post("/resource_providers", json={"name": "maybe", "uuid": RP})
    assert_unavailable(answer, "may or may not have been applied")
    # The client reads it back: here the server killed the connection before COMMIT.
    assert app.simulate_get(f"/resource_providers/{RP}").status_code == 404
