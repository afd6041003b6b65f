"""Database errors: transient (retry, 409) or unavailable (503); connection attempts."""

from __future__ import annotations

import os
import socket
import sqlite3
import time

import pymysql
import pytest
from conftest import server_database_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from berth.db.engine import (
    CONNECT_HOLD,
    CommitUnknown,
    Database,
    Timeouts,
    is_transient,
    normalise_url,
    unavailable,
)


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("pg")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("orig", "expected"),
    [
        (_PgError("40001"), True),  # serialization failure
        (_PgError("40P01"), True),  # deadlock detected
        (_PgError("23505"), False),  # unique violation is not transient here
        (Exception(1213, "Deadlock found"), True),  # MariaDB / Galera certification
        # A lock wait that timed out would wait as long again: 503, not a retry.
        (Exception(1205, "Lock wait timeout exceeded"), False),
        (Exception(1062, "Duplicate entry"), False),
        (sqlite3.OperationalError("database is locked"), False),
        (Exception("no such table: x"), False),
    ],
)
def test_is_transient(orig: Exception, expected: bool) -> None:
    assert is_transient(DBAPIError("stmt", {}, orig)) is expected


class _PgOperational(Exception):
    sqlstate: str | None = None


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OperationalError("s", {}, pymysql.err.OperationalError(2003, "Can't connect")), "reach"),
        (OperationalError("s", {}, pymysql.err.OperationalError(1205, "Lock wait")), "lock"),
        (OperationalError("s", {}, pymysql.err.OperationalError(1969, "max_statement")), "timed"),
        (OperationalError("s", {}, pymysql.err.OperationalError(1213, "Deadlock")), None),
        (OperationalError("s", {}, _PgOperational("connection refused")), "reach"),
        (OperationalError("s", {}, _PgError("55P03")), "lock"),
        (OperationalError("s", {}, _PgError("57014")), "timed"),
        (OperationalError("s", {}, _PgError("40001")), None),
        (IntegrityError("s", {}, _PgError("23505")), None),
        (OperationalError("s", {}, sqlite3.OperationalError("database is locked")), "lock"),
        (
            OperationalError("s", {}, sqlite3.OperationalError("unable to open database file")),
            "file",
        ),
        (OperationalError("s", {}, sqlite3.OperationalError("no such table: x")), None),
        (PoolTimeout("QueuePool limit reached"), "connection"),
        (CommitUnknown("lost"), "commit"),
        (ValueError("not a database error"), None),
    ],
)
def test_unavailable(error: Exception, reason: str | None) -> None:
    found = unavailable(error)
    assert (found is None) if reason is None else (found is not None and reason in found)


def test_lost_connection_is_unavailable() -> None:
    error = OperationalError("s", {}, Exception("server closed the connection"))
    error.connection_invalidated = True
    assert unavailable(error) == "connection lost"


@pytest.mark.parametrize(("first", "expected"), [(1213, True), (1062, False), (None, False)])
def test_a_savepoint_lost_to_a_deadlock_is_transient(first: int | None, expected: bool) -> None:
    """A deadlock (Galera: a brute-force abort) inside ``begin_nested`` rolls the whole
    transaction back: rolling back to the savepoint then fails with 1305."""
    gone = DBAPIError("ROLLBACK TO SAVEPOINT sa_savepoint_1", {}, Exception(1305, "gone"))
    if first is not None:
        driver_error = Exception(1305, "SAVEPOINT sa_savepoint_1 does not exist")
        driver_error.__context__ = DBAPIError("INSERT", {}, Exception(first, "first"))
        gone.__context__ = driver_error
    assert is_transient(gone) is expected


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("mysql://u@h/db", "mysql+pymysql"),
        ("mariadb://u@h/db", "mysql+pymysql"),
        ("sqlite:///x.sqlite", "sqlite"),
    ],
)
def test_bare_urls_get_berths_drivers(url: str, driver: str) -> None:
    assert normalise_url(url).startswith(driver + ":")


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_connects_held_briefly_after_a_failure(scheme: str) -> None:
    """Nothing listens on the port: one attempt per CONNECT_HOLD, the rest fail at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = Database(f"{scheme}://root@127.0.0.1:{port}/x", Timeouts(connect=2))
    try:
        messages = []
        for _ in range(2):
            with pytest.raises(OperationalError) as caught, db.read():
                pass
            assert unavailable(caught.value) == "cannot reach the database"
            messages.append(str(caught.value.orig))
        time.sleep(CONNECT_HOLD)
        with pytest.raises(OperationalError) as caught, db.read():
            pass
        messages.append(str(caught.value.orig))
    finally:
        db.dispose()
    held = ["moments ago" in m for m in messages]
    assert held == [False, True, False], messages


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_a_server_that_accepts_but_never_answers_is_given_up_on_after_the_connect_timeout(
    scheme: str,
) -> None:
    """The TCP connect succeeds (the kernel's backlog), the greeting never comes: as from a
    server starting, shutting down or starved of CPU.  PyMySQL read the greeting with the
    statements' socket timeout (statement + lock + 5 s, here 20 s), not its connect_timeout."""
    limits = Timeouts(connect=2, lock=5, statement=10)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # never accepted: connections wait in the backlog
        port = listener.getsockname()[1]
        db = Database(f"{scheme}://root@127.0.0.1:{port}/x", limits)
        started = time.monotonic()
        try:
            with pytest.raises(OperationalError) as caught, db.read():
                pass
        finally:
            db.dispose()
        waited = time.monotonic() - started
    assert unavailable(caught.value) is not None  # a 503 (the reason: a lost connection)
    assert waited < limits.connect + 2, waited


def test_statements_wait_up_to_the_io_timeout_once_connected() -> None:
    """The connect timeout bounds the handshake only: a connected MariaDB/MySQL session
    reads and writes with statement + lock + 5 s (a long statement is not cut by it)."""
    url = server_database_url("mysql")
    assert url is not None
    db = Database(url, Timeouts(connect=2, lock=5, statement=10))
    try:
        with db.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert (raw._read_timeout, raw._write_timeout) == (20, 20)  # type: ignore[union-attr]
    finally:
        db.dispose()


def _raw_socket(db: Database) -> socket.socket:
    """The TCP socket under one of ``db``'s connections (a copy of its descriptor)."""
    with db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        if db.dialect == "postgresql":
            return socket.socket(fileno=os.dup(raw.pgconn.socket))  # type: ignore[union-attr]
        return raw._sock.dup()  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["postgresql", "mysql"])
def test_a_cut_network_ends_connections_within_the_network_timeout(name: str) -> None:
    """TCP_USER_TIMEOUT and keepalives from half of it: a connection open when a link
    is cut fails within the timeout instead of waiting for TCP to give up."""
    url = server_database_url(name)
    assert url is not None
    db = Database(url, Timeouts(network=4.0))
    try:
        sock = _raw_socket(db)
    finally:
        db.dispose()
    with sock:
        option = sock.getsockopt
        assert option(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 4000
        assert option(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert option(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 2
