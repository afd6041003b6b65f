"""Engines and transactions for SQLite, PostgreSQL and MariaDB/MySQL.

``Database.read()`` opens a read transaction, ``Database.write()`` a write
transaction.  On SQLite a write begins with ``BEGIN IMMEDIATE`` so the write
lock is taken up front: concurrent writers wait on ``busy_timeout`` instead
of failing half way with "database is locked".  On PostgreSQL and MariaDB the
server's row locks and the generation compare-and-swap do the work; no
``SELECT ... FOR UPDATE`` is used anywhere.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool, QueuePool

SQLITE_BUSY_TIMEOUT_MS = 60_000


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


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    memory = parsed.database in (None, "", ":memory:")
    engine = create_engine(
        url,
        # A file database keeps a few open connections per process (opening
        # one costs more than most queries); ":memory:" needs exactly one.
        poolclass=NullPool if memory else QueuePool,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        **({} if memory else {"pool_size": 4, "max_overflow": 8}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit BEGIN is DEFERRED).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=OFF")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("berth_write") else "BEGIN")

    return engine


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with berth's per-backend settings."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    if url.startswith("mysql"):
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_recycle=3600,
            isolation_level="READ COMMITTED",
        )
    return create_engine(url, pool_pre_ping=True)


class Database:
    """An engine plus berth's read and write transaction helpers."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
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
        """A write transaction: committed on success, rolled back on error."""
        with self.engine.connect() as conn:
            conn.info["berth_write"] = True
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.info["berth_write"] = False

    def dispose(self) -> None:
        """Close pooled connections (call after fork)."""
        self.engine.dispose()


# MariaDB: a lock wait timeout, a deadlock (also how Galera reports a
# certification failure or a brute-force abort by a replicated write), and a
# savepoint that such an error already rolled back with its whole transaction.
LOCK_WAIT_TIMEOUT, DEADLOCK, SAVEPOINT_GONE = 1205, 1213, 1305


def is_transient(exc: DBAPIError) -> bool:
    """A deadlock, serialization failure, Galera certification failure or lock
    timeout: the transaction did nothing and is worth running again."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in ("40001", "40P01"):
        return True
    args = getattr(orig, "args", ())
    if args and args[0] in (LOCK_WAIT_TIMEOUT, DEADLOCK):
        return True
    if args and args[0] == SAVEPOINT_GONE:
        # Rolling back to a savepoint (``begin_nested``) after a deadlock:
        # InnoDB rolled the whole transaction back, the savepoint with it.
        interrupted = _interrupted(exc)
        return interrupted is not None and is_transient(interrupted)
    return "database is locked" in str(orig)


def _interrupted(exc: BaseException) -> DBAPIError | None:
    """The database error that ``exc`` was raised while handling, if any."""
    context = exc.__context__
    while context is not None and not isinstance(context, DBAPIError):
        context = context.__context__
    return context
