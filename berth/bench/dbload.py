"""How hard the database worked over a window: cumulative counters, read at each end.

The server's own counters are :mod:`berth.bench.dbstats`' (PostgreSQL's
``pg_stat_database`` of berth's database; MariaDB's ``SHOW GLOBAL STATUS``,
the whole server's, less what a reading itself costs; nothing on SQLite).
Besides, on PostgreSQL the WAL written (``pg_current_wal_lsn()``: the whole
server's, every database's), and on every kind berth's change logs, which
count its writes: the newest id of ``scheduler_state_changes`` (one row per
host-state write) and of ``change_log`` (one per provider a Placement write
touched, claims included).

PostgreSQL's backends publish their counts at most once a second (an idle one
after ten), so each end of a window is known to about a second of each
backend's work.  :func:`rates` turns two readings into per-second figures,
with ``commits_per_s`` and ``rows_written_per_s`` named alike on both servers
(as :func:`berth.bench.dbstats.per_request` counts them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select, text

from berth.bench import dbstats
from berth.db import tables as t
from berth.db.engine import Database

PG_WAL = text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")
# (commits, rows written) per server kind, by the counter that tells which kind it is.
COMMON = {
    "xact_commit": ("xact_commit", ("tup_inserted", "tup_updated", "tup_deleted")),
    "Questions": ("Com_commit", ("Handler_write", "Handler_update", "Handler_delete")),
}
LOGS = (("state_log_rows", t.scheduler_state_changes), ("change_log_rows", t.change_log))


class LoadReader:
    """Reads the database behind ``database_url`` (its counters, its WAL, berth's logs)."""

    def __init__(self, database_url: str) -> None:
        self.counters = dbstats.counters_for(database_url)
        self.db = Database(database_url)

    def read(self) -> dict[str, float]:
        """One reading: every counter's cumulative value now."""
        found = self.counters.sample()
        with self.db.read() as conn:
            if conn.dialect.name == "postgresql":
                found["wal_bytes"] = float(conn.execute(PG_WAL).scalar() or 0)
            for name, log in LOGS:
                found[name] = float(conn.execute(select(func.max(log.c.id))).scalar() or 0)
        return found

    @property
    def overhead(self) -> dict[str, float]:
        """What one reading adds to the server's counters (MariaDB's are global)."""
        return dict(self.counters.overhead)

    def close(self) -> None:
        """Release the connections."""
        self.counters.close()
        self.db.dispose()


def rates(
    before: Mapping[str, float],
    after: Mapping[str, float],
    seconds: float,
    overhead: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Per-second growth of every counter over ``seconds`` (``overhead``: one reading's
    own, left out), and ``commits_per_s`` / ``rows_written_per_s`` where the server has them."""
    grown = dbstats.rates(before, after, max(seconds, 1e-9), overhead)
    found: dict[str, Any] = {f"{name}_per_s": round(v, 1) for name, v in sorted(grown.items())}
    for marker, (commits, written) in COMMON.items():
        if marker in grown:
            found["commits_per_s"] = round(grown.get(commits, 0.0), 1)
            found["rows_written_per_s"] = round(sum(grown.get(n, 0.0) for n in written), 1)
    return found
