"""What a database server says it did: counters read before and after a run, per kind.

``PostgresCounters``  ``pg_stat_database`` of the target's database, read from the
                      server's maintenance database ``postgres`` so that the
                      readings are not counted themselves (commits,
                      rollbacks, rows returned / fetched / inserted / updated /
                      deleted, blocks, ``active_time``: milliseconds spent running
                      statements), and ``pg_stat_statements`` (statements, their
                      rows and execution time) where that extension is installed
                      and loaded; without it there is no statement count.
``MariaDBCounters``   ``SHOW GLOBAL STATUS``: ``Questions``, ``Com_*`` of the
                      statements that matter, ``Handler_*`` (rows read and
                      written, commits), ``Innodb_rows_*`` where the server has
                      them.  Global: other users of the server count too; what one
                      reading costs (its own statements and status rows) is
                      measured when the counters are made and left out.
``NoCounters``        SQLite (and an unknown database): nothing beyond CPU.

PostgreSQL's backends publish their counters at most once a second, and an
idle backend publishes what it still holds only after ten seconds
(``PGSTAT_IDLE_INTERVAL``): :attr:`Counters.settle` is how long to wait after a
run's last request before the second reading holds all of its work.
:func:`per_request` turns two readings into the figures a result line carries.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from berth.db.engine import Database, normalise_url

PG_COLUMNS = ("xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted",
              "tup_updated", "tup_deleted", "blks_read", "blks_hit", "active_time")  # fmt: skip
PG_SETTLE_S = 11.0  # PGSTAT_IDLE_INTERVAL (10 s) and a second to spare
# The lab's own readings are left out of pg_stat_statements' sums.
_DATABASE = text("SELECT * FROM pg_stat_database WHERE datname = :name")
_STATEMENTS = text(
    "SELECT coalesce(sum(calls), 0), coalesce(sum(rows), 0), coalesce(sum(total_exec_time), 0) "
    "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = :name) "
    "AND query NOT ILIKE '%pg_stat%'"
)
MARIADB_EXACT = ("Questions", "Com_select", "Com_insert", "Com_update", "Com_delete",
                 "Com_commit", "Com_rollback", "Com_begin", "Handler_commit",
                 "Handler_rollback", "Handler_write", "Handler_update",
                 "Handler_delete")  # fmt: skip
MARIADB_PREFIXES = ("Handler_read_", "Innodb_rows_")


class Counters(Protocol):
    """Reads a database server's cumulative counters."""

    name: str
    settle: float  # seconds until the server's counters hold what was just done
    overhead: dict[str, float]  # what one reading adds to the counters itself

    def sample(self) -> dict[str, float]:
        """Every counter now (cumulative values)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class NoCounters:
    """A database without counters worth reading (SQLite): CPU is all there is."""

    name = "none"
    settle = 0.0

    def __init__(self) -> None:
        self.overhead: dict[str, float] = {}

    def sample(self) -> dict[str, float]:
        """Nothing."""
        return {}

    def close(self) -> None:
        """Nothing to release."""


class PostgresCounters:
    """``pg_stat_database`` of one database, and ``pg_stat_statements`` when available."""

    name = "postgresql"
    settle = PG_SETTLE_S

    def __init__(self, database_url: str) -> None:
        url = make_url(normalise_url(database_url))
        self.target = str(url.database)
        self.db = Database(url.set(database="postgres").render_as_string(hide_password=False))
        try:
            with self.db.read() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError:  # no maintenance database for us: read from the target's own
            self.db.dispose()
            self.db = Database(database_url)
        self.overhead: dict[str, float] = {}
        self.statements = self._has_statements()

    def _has_statements(self) -> bool:
        """Whether pg_stat_statements answers (created where we read, and loaded)."""
        try:
            with self.db.read() as conn:
                conn.execute(_STATEMENTS, {"name": self.target}).one()
        except DBAPIError:
            return False
        return True

    def sample(self) -> dict[str, float]:
        """The database's row of pg_stat_database (and the statements' sums)."""
        with self.db.read() as conn:
            row = conn.execute(_DATABASE, {"name": self.target}).mappings().one()
            found = {c: float(row[c] or 0) for c in PG_COLUMNS if c in row}
            if self.statements:
                calls, rows, ms = conn.execute(_STATEMENTS, {"name": self.target}).one()
                found.update(statements=float(calls), statement_rows=float(rows),
                             statement_ms=float(ms))  # fmt: skip
        return found

    def close(self) -> None:
        """Close the pool."""
        self.db.dispose()


class MariaDBCounters:
    """``SHOW GLOBAL STATUS``: statements, handler calls and rows, commits."""

    name = "mysql"
    settle = 0.0  # the server's status counters move as statements end

    def __init__(self, database_url: str) -> None:
        self.db = Database(database_url)
        self.overhead = {}
        readings = [self.sample() for _ in range(4)]
        moved = [delta(a, b, 0.0) for a, b in itertools.pairwise(readings)]
        # The least any pair of readings moved: the readings' own cost (others' work varies).
        self.overhead = {k: min(m.get(k, 0.0) for m in moved) for k in readings[0]}

    def sample(self) -> dict[str, float]:
        """The counters of MARIADB_EXACT and MARIADB_PREFIXES."""
        with self.db.read() as conn:
            rows = conn.execute(text("SHOW GLOBAL STATUS")).all()
        found = {}
        for name, value in rows:
            if name in MARIADB_EXACT or name.startswith(MARIADB_PREFIXES):
                with contextlib.suppress(TypeError, ValueError):
                    found[str(name)] = float(value)
        return found

    def close(self) -> None:
        """Close the pool."""
        self.db.dispose()


def counters_for(database_url: str) -> Counters:
    """The counters of the database behind ``database_url`` (none when unknown)."""
    if not database_url:
        return NoCounters()
    kind = make_url(normalise_url(database_url)).get_backend_name()
    if kind == "postgresql":
        return PostgresCounters(database_url)
    if kind in ("mysql", "mariadb"):
        return MariaDBCounters(database_url)
    return NoCounters()


def delta(
    before: Mapping[str, float],
    after: Mapping[str, float],
    seconds: float,
    idle: Mapping[str, float] | None = None,
    overhead: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """``after - before`` per counter, less ``idle`` (per second) times ``seconds`` and less
    ``overhead`` (what one reading costs)."""
    idle, overhead = idle or {}, overhead or {}
    return {
        k: after[k] - before.get(k, 0.0) - idle.get(k, 0.0) * seconds - overhead.get(k, 0.0)
        for k in after
    }


def rates(
    before: Mapping[str, float],
    after: Mapping[str, float],
    seconds: float,
    overhead: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Per-second change of every counter over ``seconds`` (the baseline of an idle server)."""
    if seconds <= 0:
        return {}
    return {k: v / seconds for k, v in delta(before, after, 0.0, None, overhead).items()}


def per_request(moved: Mapping[str, float], requests: int) -> dict[str, Any]:
    """Database work per request from a run's counter deltas: statements, transactions, rows,
    time, as far as the server's counters tell (absent figures are left out)."""
    n = max(1, requests)

    def each(value: float) -> float:
        return round(max(0.0, value) / n, 3)

    out: dict[str, Any] = {}
    if "xact_commit" in moved:  # PostgreSQL
        out["commits_per_request"] = each(moved["xact_commit"])
        out["rollbacks_per_request"] = each(moved["xact_rollback"])
        out["rows_read_per_request"] = each(moved["tup_returned"] + moved["tup_fetched"])
        out["rows_returned_per_request"] = each(moved["tup_returned"])
        out["rows_fetched_per_request"] = each(moved["tup_fetched"])
        written = moved["tup_inserted"] + moved["tup_updated"] + moved["tup_deleted"]
        out["rows_written_per_request"] = each(written)
        if "active_time" in moved:
            out["database_active_ms_per_request"] = each(moved["active_time"])
        if "statements" in moved:
            out["statements_per_request"] = each(moved["statements"])
            out["statement_ms_per_request"] = each(moved["statement_ms"])
    elif "Questions" in moved:  # MariaDB / MySQL
        out["statements_per_request"] = each(moved["Questions"])
        out["commits_per_request"] = each(moved.get("Com_commit", 0.0))
        out["rollbacks_per_request"] = each(moved.get("Com_rollback", 0.0))
        read = sum(v for k, v in moved.items() if k.startswith("Handler_read_"))
        out["rows_read_per_request"] = each(read)
        written = sum(moved.get(k, 0.0) for k in ("Handler_write", "Handler_update",
                                                  "Handler_delete"))  # fmt: skip
        out["rows_written_per_request"] = each(written)
    return out
