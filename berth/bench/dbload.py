"""How hard the database worked over a window: its own cumulative counters, read twice.

PostgreSQL   ``pg_stat_database`` of berth's database (``xact_commit``,
             ``xact_rollback``, ``tup_inserted`` / ``tup_updated`` /
             ``tup_deleted``; a backend reports its counts at the end of a
             transaction, at most about a second late) and the WAL written
             (``pg_current_wal_lsn()``: the whole server's, every database's)
MariaDB      ``SHOW GLOBAL STATUS``: ``Com_commit``, ``Innodb_rows_inserted`` /
             ``_updated`` / ``_deleted``, ``Innodb_os_log_written`` (redo bytes):
             the whole server's
SQLite       no counters of its own

On every kind, berth's change logs count its writes: the newest id of
``scheduler_state_changes`` (one row per host-state write) and of
``change_log`` (one per provider a Placement write touched, claims
included).  :func:`rates` turns two readings into per-second figures, with
``commits_per_s`` and ``rows_written_per_s`` named alike on both servers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select, text

from berth.db import tables as t
from berth.db.engine import Database

PG_DATABASE = text(
    "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted "
    "FROM pg_stat_database WHERE datname = current_database()"
)
PG_WAL = text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")
MYSQL_STATUS = ("Com_commit", "Com_rollback", "Innodb_rows_inserted", "Innodb_rows_updated",
                "Innodb_rows_deleted", "Innodb_os_log_written")  # fmt: skip
# The common names: (commits, rows written) per server kind.
COMMITS = {"postgresql": "xact_commit", "mysql": "com_commit"}
ROWS = {
    "postgresql": ("tup_inserted", "tup_updated", "tup_deleted"),
    "mysql": ("innodb_rows_inserted", "innodb_rows_updated", "innodb_rows_deleted"),
}


def _server_counters(conn: Connection) -> dict[str, float]:
    """The database server's own cumulative counters ({} on SQLite)."""
    kind = conn.dialect.name
    if kind == "postgresql":
        row = conn.execute(PG_DATABASE).mappings().one()
        found = {name: float(value) for name, value in row.items()}
        found["wal_bytes"] = float(conn.execute(PG_WAL).scalar() or 0)
        return found
    if kind == "mysql":
        names = ", ".join(f"'{n}'" for n in MYSQL_STATUS)
        rows = conn.execute(text(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})"))
        return {str(name).lower(): float(value) for name, value in rows}
    return {}


def read(database_url: str) -> dict[str, float]:
    """One reading: the server's counters and the newest ids of berth's change logs."""
    db = Database(database_url)
    try:
        with db.read() as conn:
            found = _server_counters(conn)
            for name, log in (("state_log_rows", t.scheduler_state_changes),
                              ("change_log_rows", t.change_log)):  # fmt: skip
                found[name] = float(conn.execute(select(func.max(log.c.id))).scalar() or 0)
        return found
    finally:
        db.dispose()


def rates(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, Any]:
    """Per-second growth of every counter over ``seconds``, and the common names."""
    span = max(seconds, 1e-9)
    found: dict[str, Any] = {
        f"{name}_per_s": round((after[name] - before.get(name, 0.0)) / span, 1)
        for name in sorted(after)
    }
    for kind, commits in COMMITS.items():
        if commits in after:
            found["commits_per_s"] = found[f"{commits}_per_s"]
            found["rows_written_per_s"] = round(sum(found[f"{n}_per_s"] for n in ROWS[kind]), 1)
    return found
