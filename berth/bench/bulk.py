"""Bulk inserts of provider specs, as fast as each database allows.

The rows are those of :func:`berth.candidates.synthetic.write` (providers
with explicit ids, inventories, usage, traits, aggregates); what differs is
the wire: PostgreSQL gets ``COPY ... FROM STDIN`` (psycopg's executemany
sends one statement per row), SQLite and MariaDB get executemany (pymysql
folds it into multi-row INSERTs).  The tables are looked up by name, so the
same code fills berth's schema and OpenStack Placement's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert

from berth.candidates import synthetic
from berth.candidates.synthetic import ProviderSpec

CHUNK = 10_000


def _copy(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """PostgreSQL: stream ``rows`` with COPY."""
    columns = list(rows[0])
    raw: Any = conn.connection.driver_connection
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as cp,
    ):
        for row in rows:
            cp.write_row([row[c] for c in columns])


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys) the fastest way the dialect has."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        _copy(conn, table, rows)
        return
    for start in range(0, len(rows), CHUNK):
        conn.execute(insert(table), list(rows[start : start + CHUNK]))


def write(conn: Connection, specs: Sequence[ProviderSpec]) -> list[int]:
    """Insert ``specs`` with their inventories, usage, traits and aggregates; their ids.

    The caller tells the change feed (Placement's schema has none).
    """
    return synthetic.write(conn, specs, announce=False, insert_rows=insert_rows)
