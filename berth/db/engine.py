"""Engines and transactions for SQLite, PostgreSQL and MariaDB/MySQL.

``Database.read()`` opens a read transaction, ``Database.write()`` a write
transaction.  On SQLite a write begins with ``BEGIN IMMEDIATE`` so the write
lock is taken up front: concurrent writers wait on ``busy_timeout`` instead
of failing half way with "database is locked".  On PostgreSQL and MariaDB the
server's row locks and the generation compare-and-swap do the work; no
``SELECT ... FOR UPDATE`` is used anywhere.

How long the database may keep a caller waiting is bounded by
:class:`Timeouts` (connecting, waiting for a lock, one statement, a free
connection in the pool); the servers' workers get theirs from the settings.
A database that goes away is noticed by the error it causes: the driver's
"disconnect" makes SQLAlchemy invalidate the whole pool, whose connections
are then opened afresh at their next checkout, so a restarted database is
used again as soon as it answers.  A pooled connection that sat idle for
longer than ``Timeouts.ping_after`` is pinged before use (and replaced if
dead): a process that had no traffic during an outage, or whose connections
a proxy closed while idle, does not fail its first requests.  Busy
connections are not pinged: that round trip would cost every request.
:func:`unavailable` tells such errors (and timeouts) from the others; the
API answers them 503 with Retry-After.
A write whose connection died during COMMIT raises :class:`CommitUnknown`:
nobody can say whether it was applied.
"""

from __future__ import annotations

import contextlib
import math
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import NullPool, QueuePool

SQLITE_BUSY_TIMEOUT_MS = 60_000

# MariaDB/MySQL error codes: lock wait timeout, deadlock (and Galera certification failure).
MYSQL_LOCK_WAIT_TIMEOUT = 1205
MYSQL_DEADLOCK = 1213  # also how Galera reports a certification failure
MYSQL_SAVEPOINT_GONE = 1305  # a deadlock already rolled back the savepoint's transaction
# SQLite's messages for a file it cannot use (besides "database is locked").
SQLITE_UNAVAILABLE = ("unable to open database file", "disk i/o error", "readonly database")


@dataclass(frozen=True)
class Timeouts:
    """How long (seconds) the database may keep one caller waiting; 0: no limit.

    ``connect``: opening a connection, handshake and session setup included (libpq's
    ``connect_timeout``; PyMySQL's bounds the TCP connect only, its socket timeouts
    the rest until the connection is ready).
    ``lock``: waiting for a row or table lock (PostgreSQL ``lock_timeout``,
    InnoDB ``innodb_lock_wait_timeout``, SQLite's busy timeout).
    ``statement``: one statement (PostgreSQL ``statement_timeout`` and
    ``idle_in_transaction_session_timeout``, MariaDB ``max_statement_time``,
    MySQL ``max_execution_time``; PyMySQL's socket ``read_timeout`` and
    ``write_timeout`` are this plus a margin, so even a server that stopped
    answering is given up on).
    ``pool``: waiting for a free connection of the pool.
    ``network``: how long data sent to the database may go unacknowledged, or a
    connection waiting for an answer may hear nothing at all from the
    database's machine, before the connection counts as dead (TCP's
    ``TCP_USER_TIMEOUT``, with keepalive probes from half of it on; libpq
    ``tcp_user_timeout`` and ``keepalives_*``, the socket's options under
    PyMySQL).  A cut network link otherwise holds a request until TCP gives
    up, a quarter of an hour later: the statement timeout is the server's,
    which cannot tell the client.  The database's kernel acknowledges and
    answers the probes whatever the server process does, so a long statement
    is not cut short.  0: the operating system's defaults (and on PostgreSQL
    keepalives after 30 s idle).
    ``ping_after``: a pooled connection idle for longer is pinged before use
    (0: before every use, SQLAlchemy's ``pool_pre_ping``).
    ``pool_size`` and ``max_overflow`` (PostgreSQL and MariaDB): connections
    each process keeps open, and opens beyond them for a burst (closed again
    when returned: opening one costs the server a process or a thread).
    """

    connect: float = 5.0
    lock: float = 10.0
    statement: float = 30.0
    pool: float = 10.0
    ping_after: float = 1.0
    pool_size: int = 20
    max_overflow: int = 10
    network: float = 5.0


# What the tools (migrations, import, loaders) use: no statement or lock limit.
TOOL_TIMEOUTS = Timeouts(lock=SQLITE_BUSY_TIMEOUT_MS / 1000, statement=0, pool=30.0, network=0)
# Seconds PyMySQL's socket reads and writes get beyond the statement timeout.
SOCKET_MARGIN = 5.0


class CommitUnknown(Exception):
    """The connection was lost during COMMIT: the write may or may not have been applied."""


def normalise_url(url: str) -> str:
    """Pick berth's drivers for bare ``postgresql://`` and ``mysql://`` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername in ("mysql", "mariadb"):
        parsed = parsed.set(drivername="mysql+pymysql")
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed.render_as_string(hide_password=False)


def _sqlite_engine(url: str, timeouts: Timeouts) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    memory = parsed.database in (None, "", ":memory:")
    busy_ms = int(timeouts.lock * 1000) if timeouts.lock else SQLITE_BUSY_TIMEOUT_MS
    engine = create_engine(
        url,
        # A file database keeps a few open connections per process (opening
        # one costs more than most queries); ":memory:" needs exactly one.
        poolclass=NullPool if memory else QueuePool,
        connect_args={"timeout": busy_ms / 1000, "check_same_thread": False},
        **({} if memory else {"pool_size": 4, "max_overflow": 8, **_pool(timeouts)}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit BEGIN is DEFERRED).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        # FULL: in WAL mode every commit is fsynced before it is acknowledged (NORMAL
        # would leave the last commits to a checkpoint, lost if the machine loses power).
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=OFF")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("berth_write") else "BEGIN")

    return engine


IDLE_SINCE = "berth_idle_since"
# After a connection attempt failed, new attempts fail at once for this long (seconds).
CONNECT_HOLD = 0.25


def _hold_connects_after_failure(engine: Engine, hold: float = CONNECT_HOLD) -> None:
    """After a failed connection attempt, fail new ones at once for ``hold`` seconds.

    While the database is away every request would otherwise try (and pay
    for: PyMySQL builds a TLS context per attempt, ~16 ms of CPU) a
    connection of its own; the returning database would meet them all at
    once.  One attempt per ``hold`` finds out when it is back.
    """
    failed_at = [float("-inf")]

    @event.listens_for(engine, "do_connect")
    def _on_do_connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        if time.monotonic() - failed_at[0] < hold:
            raise dialect.loaded_dbapi.OperationalError(
                "the database could not be reached moments ago; not trying again yet"
            )
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception:
            failed_at[0] = time.monotonic()
            raise


def _ping_idle(engine: Engine, after: float) -> None:
    """Ping a pooled connection that sat idle longer than ``after`` s before handing it out.

    A dead one raises DisconnectionError, on which the pool replaces it
    with a new connection (up to three tries) instead of failing the caller.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info[IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(IDLE_SINCE, None)
        if since is None or time.monotonic() - since < after:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # whatever the driver says, this connection is not usable
            raise DisconnectionError(f"idle connection is dead: {exc}") from exc


def _pool(timeouts: Timeouts) -> dict[str, Any]:
    return {"pool_timeout": timeouts.pool} if timeouts.pool else {}


def _sizes(timeouts: Timeouts) -> dict[str, Any]:
    return {"pool_size": timeouts.pool_size, "max_overflow": timeouts.max_overflow}


def _seconds(value: float) -> int:
    """Whole seconds, at least 1 (what the drivers and MariaDB take)."""
    return max(1, math.ceil(value))


def _keepalive(network: float) -> tuple[int, int, int]:
    """TCP keepalive (idle, interval, count) seconds for a network timeout (0: none set)."""
    if not network:
        return 30, 5, 3
    half = _seconds(network / 2)
    return half, max(1, half // 3), 3


def _postgresql_engine(url: str, timeouts: Timeouts) -> Engine:
    idle, interval, count = _keepalive(timeouts.network)
    connect_args: dict[str, Any] = {
        # A server host that vanished (or a cut link) is noticed by TCP, not only
        # by the next statement's timeout (see Timeouts.network).
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": interval,
        "keepalives_count": count,
    }
    if timeouts.network:
        connect_args["tcp_user_timeout"] = int(timeouts.network * 1000)
    if timeouts.connect:
        # libpq takes whole seconds and treats 1 as 2.
        connect_args["connect_timeout"] = max(2, _seconds(timeouts.connect))
    engine = create_engine(url, connect_args=connect_args, **_pool(timeouts), **_sizes(timeouts))
    _ping_idle(engine, timeouts.ping_after)
    _hold_connects_after_failure(engine)
    limits = []
    if timeouts.statement:
        ms = int(timeouts.statement * 1000)
        limits += [f"statement_timeout = {ms}", f"idle_in_transaction_session_timeout = {ms}"]
    if timeouts.lock:
        limits.append(f"lock_timeout = {int(timeouts.lock * 1000)}")
    if limits:
        # Session settings, not libpq's "options": PgBouncer refuses that parameter.
        statement = "; ".join(f"SET {limit}" for limit in limits)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            autocommit = dbapi_conn.autocommit
            dbapi_conn.autocommit = True
            with dbapi_conn.cursor() as cur:
                cur.execute(statement)
            dbapi_conn.autocommit = autocommit

    return engine


def _mysql_engine(url: str, timeouts: Timeouts) -> Engine:
    connect_args: dict[str, Any] = {}
    io_wait: int | None = None
    if timeouts.statement:
        # A server that stopped answering (or a lost packet) ends in an error, not a hang.
        io_wait = _seconds(timeouts.statement + max(timeouts.lock, 0) + SOCKET_MARGIN)
    if timeouts.connect:
        connect_args["connect_timeout"] = _seconds(timeouts.connect)
    # PyMySQL's connect_timeout bounds only the TCP connect: the server's greeting, the
    # authentication and the session setup (_on_connect) read and write with the socket
    # timeouts.  Those get the connect timeout, so that a server that accepts connections
    # without answering them (starting, shutting down, starved of CPU) is given up on
    # after it; the statements' I/O wait is set once the connection is ready.
    handshake = _seconds(timeouts.connect) if timeouts.connect else io_wait
    if handshake is not None:
        connect_args["read_timeout"] = handshake
        connect_args["write_timeout"] = handshake
    engine = create_engine(
        url,
        pool_recycle=3600,
        isolation_level="READ COMMITTED",
        connect_args=connect_args,
        **_pool(timeouts),
        **_sizes(timeouts),
    )
    _ping_idle(engine, timeouts.ping_after)
    _hold_connects_after_failure(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        if timeouts.network:
            _socket_timeouts(dbapi_conn._sock, timeouts.network)
        with dbapi_conn.cursor() as cur:
            if timeouts.lock:
                cur.execute(f"SET SESSION innodb_lock_wait_timeout = {_seconds(timeouts.lock)}")
            if timeouts.statement:
                if "mariadb" in dbapi_conn.get_server_info().lower():
                    cur.execute(f"SET SESSION max_statement_time = {timeouts.statement:g}")
                else:  # MySQL bounds only SELECTs; the socket timeouts bound the rest
                    ms = int(timeouts.statement * 1000)
                    cur.execute(f"SET SESSION max_execution_time = {ms}")
        # Connected: from now on statements wait up to io_wait (PyMySQL reads these two
        # attributes before each read and write; they are not part of its public API).
        dbapi_conn._read_timeout = io_wait
        dbapi_conn._write_timeout = io_wait

    return engine


def _socket_timeouts(sock: socket.socket, network: float) -> None:
    """PyMySQL's socket: what libpq's ``tcp_user_timeout`` and ``keepalives_*`` set."""
    idle, interval, count = _keepalive(network)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", idle),
        ("TCP_KEEPINTVL", interval),
        ("TCP_KEEPCNT", count),
        ("TCP_USER_TIMEOUT", int(network * 1000)),
    ):
        if hasattr(socket, option):  # Linux has them all
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def make_engine(url: str, timeouts: Timeouts = TOOL_TIMEOUTS) -> Engine:
    """Create an engine for ``url`` with berth's per-backend settings."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, timeouts)
    if url.startswith("mysql"):
        return _mysql_engine(url, timeouts)
    return _postgresql_engine(url, timeouts)


class Database:
    """An engine plus berth's read and write transaction helpers."""

    def __init__(self, url: str, timeouts: Timeouts = TOOL_TIMEOUTS) -> None:
        self.url = normalise_url(url)
        self.timeouts = timeouts
        self.engine = make_engine(self.url, timeouts)
        self.dialect = self.engine.dialect.name

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction."""
        with self.engine.connect() as conn:
            conn.info["berth_write"] = False
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on error.

        Raises :class:`CommitUnknown` when the database became unavailable
        during the COMMIT itself.
        """
        with self.engine.connect() as conn:
            conn.info["berth_write"] = True
            committing = False
            try:
                with conn.begin():
                    yield conn
                    committing = True
            except (DBAPIError, PoolTimeout) as exc:
                if committing and unavailable(exc):
                    raise CommitUnknown(str(exc)) from exc
                raise
            finally:
                conn.info["berth_write"] = False

    def dispose(self) -> None:
        """Close pooled connections (call after fork)."""
        self.engine.dispose()


def _code(exc: DBAPIError) -> Any:
    args = getattr(exc.orig, "args", ())
    return args[0] if args else None


def is_transient(exc: DBAPIError) -> bool:
    """A deadlock, serialization failure or Galera certification failure:
    the transaction did nothing and is worth running again at once.

    A lock wait that ran out its timeout is not: running again would wait as
    long again (:func:`unavailable` takes it).
    """
    if getattr(exc.orig, "sqlstate", None) in ("40001", "40P01"):
        return True
    code = _code(exc)
    if code == MYSQL_SAVEPOINT_GONE:
        # Rolling back to a savepoint (``begin_nested``) after a deadlock (on
        # Galera, a certification failure): InnoDB rolled the whole
        # transaction back, the savepoint with it.
        interrupted = _interrupted(exc)
        return interrupted is not None and is_transient(interrupted)
    return bool(code == MYSQL_DEADLOCK)


def unavailable(exc: BaseException) -> str | None:
    """Why the database cannot serve now (a short reason), or None for other errors.

    Unavailable: the connection was lost or could not be opened, the server
    is shutting down or starting, a lock wait or a statement ran out its
    timeout, the pool had no free connection in time, SQLite cannot open or
    lock its file.  Each is answered 503 with Retry-After, never retried in
    place (the caller's time is bounded by :class:`Timeouts`).
    """
    if isinstance(exc, CommitUnknown):
        return "connection lost during commit"
    if isinstance(exc, PoolTimeout):
        return "no free database connection in time"
    if not isinstance(exc, DBAPIError) or is_transient(exc):
        return None
    if exc.connection_invalidated:
        return "connection lost"
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        message = str(orig).lower()
        if "database is locked" in message:
            return "timed out waiting for a lock"
        if any(m in message for m in SQLITE_UNAVAILABLE):
            return "database file unavailable"
        return None
    if not isinstance(exc, OperationalError | InterfaceError):
        return None
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == "55P03" or _code(exc) == MYSQL_LOCK_WAIT_TIMEOUT:
        return "timed out waiting for a lock"
    if sqlstate == "57014" or _code(exc) in (1969, 3024):
        return "statement timed out"
    return "cannot reach the database"


def _interrupted(exc: BaseException) -> DBAPIError | None:
    """The database error that ``exc`` was raised while handling, if any."""
    context = exc.__context__
    while context is not None and not isinstance(context, DBAPIError):
        context = context.__context__
    return context
