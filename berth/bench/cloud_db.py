"""Write a benchmark cloud straight into a database: provider specs as rows, in bulk.

:func:`write` takes any :class:`~berth.bench.cloud.ProviderSpec` list
(trees, traits, aggregates, usage) and inserts rows with explicit ids, by
executemany through the driver (what the tests' fixtures use) or with
:func:`fast_insert` (``COPY ... FROM STDIN`` on PostgreSQL, whose
executemany sends one statement per row).  The tables are addressed by
name only, so the same rows fill berth's schema and OpenStack Placement's.

:func:`into_database` is the lab's load: it empties the cloud tables and
writes the specs in transactions of about 20,000 providers.  On berth's
schema it also logs "reload everything" in the change feed, so running
servers and schedulers see the new cloud on their next request; the
reference's schema has the same tables and columns, the same ids for the
standard classes, and no change feed.
"""

from __future__ import annotations

import datetime
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, MetaData, Table, delete, func, insert, select, text

from berth.bench.cloud import ProviderSpec
from berth.db import migrate
from berth.db import tables as t
from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.placement import catalog, changes

CHUNK = 10_000
Rows = Sequence[dict[str, Any]]
Advance = Callable[[int], None]


def ids_by(conn: Connection, table: Table, key: str, wanted: Iterable[str]) -> dict[str, int]:
    """Ids of the rows of ``table`` whose ``key`` column is in ``wanted``."""
    names = set(wanted)
    rows = conn.execute(select(table.c[key], table.c.id)).all()
    return {name: rid for name, rid in rows if name in names}


def ensure_ids(conn: Connection, table: Table, key: str, wanted: set[str]) -> dict[str, int]:
    """Like :func:`ids_by`, inserting the rows missing first (traits, aggregates)."""
    have = ids_by(conn, table, key, wanted)
    missing = [{key: v, "created_at": utcnow()} for v in sorted(wanted - set(have))]
    if missing:
        conn.execute(insert(table), missing)
        have = ids_by(conn, table, key, wanted)
    return have


def driver_insert(conn: Connection, table: Table, rows: Rows) -> None:
    """executemany straight through the driver (no per-row SQLAlchemy processing)."""
    if not rows:
        return
    columns = list(rows[0])
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join(mark for _ in columns)})"
    )
    values = [tuple(row[c] for c in columns) for row in rows]
    for start in range(0, len(values), CHUNK):
        conn.exec_driver_sql(sql, values[start : start + CHUNK])


def _copy(conn: Connection, table: Table, rows: Rows) -> None:
    """PostgreSQL: stream ``rows`` with COPY."""
    columns = list(rows[0])
    raw: Any = conn.connection.driver_connection
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as cp,
    ):
        for row in rows:
            cp.write_row([row[c] for c in columns])


def fast_insert(conn: Connection, table: Table, rows: Rows) -> None:
    """Insert ``rows`` (all with the same keys) the fastest way the dialect has.

    PostgreSQL gets COPY; SQLite and MariaDB get executemany (pymysql folds
    it into multi-row INSERTs).
    """
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        _copy(conn, table, rows)
        return
    for start in range(0, len(rows), CHUNK):
        conn.execute(insert(table), list(rows[start : start + CHUNK]))


def provider_rows(specs: Sequence[ProviderSpec], first_id: int) -> list[dict[str, object]]:
    """Provider rows with explicit ids from ``first_id`` (parents and roots resolved)."""
    now = utcnow()
    roots: list[int] = []
    rows: list[dict[str, object]] = []
    for i, spec in enumerate(specs):
        pid = first_id + i
        parent = first_id + spec.parent if spec.parent is not None else None
        root = roots[spec.parent] if spec.parent is not None else pid
        roots.append(root)
        rows.append(
            {
                "id": pid,
                "uuid": spec.uuid,
                "name": spec.name,
                "generation": 1,
                "parent_provider_id": parent,
                "root_provider_id": root,
                "created_at": now,
            }
        )
    return rows


def _inventory_rows(
    pid: int, spec: ProviderSpec, classes: dict[str, int], now: datetime.datetime
) -> list[dict[str, object]]:
    """The inventory rows of provider ``pid``."""
    return [
        {
            "resource_provider_id": pid,
            "resource_class_id": classes[rc],
            "total": total,
            "reserved": reserved,
            "min_unit": lo,
            "max_unit": hi,
            "step_size": step,
            "allocation_ratio": ratio,
            "created_at": now,
        }
        for rc, (total, reserved, lo, hi, step, ratio) in spec.inventories.items()
    ]


def dependent_rows(
    specs: Sequence[ProviderSpec],
    first: int,
    classes: dict[str, int],
    traits: dict[str, int],
    aggs: dict[str, int],
) -> dict[Table, list[dict[str, object]]]:
    """Inventory, usage, trait and aggregate rows of providers numbered from ``first``."""
    now = utcnow()
    rows: dict[Table, list[dict[str, object]]] = {
        t.inventories: [],
        t.allocations: [],
        t.resource_provider_traits: [],
        t.resource_provider_aggregates: [],
    }
    for pid, spec in enumerate(specs, start=first):
        rows[t.inventories] += _inventory_rows(pid, spec, classes, now)
        rows[t.allocations] += [
            {
                "resource_provider_id": pid,
                "consumer_id": str(uuidlib.uuid4()),
                "resource_class_id": classes[rc],
                "used": used,
                "created_at": now,
            }
            for rc, used in spec.used.items()
        ]
        rows[t.resource_provider_traits] += [
            {"resource_provider_id": pid, "trait_id": traits[tr], "created_at": now}
            for tr in spec.traits
        ]
        rows[t.resource_provider_aggregates] += [
            {"resource_provider_id": pid, "aggregate_id": aggs[a], "created_at": now}
            for a in spec.aggregates
        ]
    return rows


def write(
    conn: Connection,
    specs: Sequence[ProviderSpec],
    announce: bool = True,
    insert_rows: Callable[[Connection, Table, Rows], None] | None = None,
) -> list[int]:
    """Insert ``specs`` (with traits, aggregates and usage); returns their ids.

    ``announce`` logs "reload everything" in the change feed for running
    workers; ``insert_rows`` writes one table's rows (default: executemany
    through the driver; :func:`fast_insert` for the lab's bulk loads).
    """
    write_rows = insert_rows or driver_insert
    first = int(conn.execute(select(func.max(t.resource_providers.c.id))).scalar() or 0) + 1
    rcs = {rc for s in specs for rc in (*s.inventories, *s.used)}
    classes = ids_by(conn, t.resource_classes, "name", rcs)
    if rcs - set(classes):
        raise ValueError(f"unknown resource classes: {sorted(rcs - set(classes))}")
    traits = ensure_ids(conn, t.traits, "name", {tr for s in specs for tr in s.traits})
    uuids = {a for s in specs for a in s.aggregates}
    aggs = ensure_ids(conn, t.placement_aggregates, "uuid", uuids)
    write_rows(conn, t.resource_providers, provider_rows(specs, first))
    for table, rows in dependent_rows(specs, first, classes, traits, aggs).items():
        write_rows(conn, table, rows)
    if conn.dialect.name == "postgresql":
        # Ids were given explicitly: move the sequence past them.
        conn.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('resource_providers', 'id'), "
                "(SELECT max(id) FROM resource_providers))"
            )
        )
    if announce:
        changes.record(conn, [changes.EVERYTHING])
    return list(range(first, first + len(specs)))


# Kept when a cloud is replaced: the catalog, the feeds' positions, schema bookkeeping,
# the operator's flavors (whose change rows are never deleted: their count is a revision).
KEEP = {
    "resource_classes",
    "traits",
    "consumer_types",
    "change_log",
    "alembic_version",
    "scheduler_state_changes",
    "scheduler_aggregate_changes",
    "scheduler_workers",
    "scheduler_flavors",
    "scheduler_flavor_changes",
}


def wipe(db: Database) -> int:
    """Delete every provider, allocation, consumer and aggregate; rows deleted (-1: truncated)."""
    meta = MetaData()
    meta.reflect(db.engine)
    doomed = [table for table in reversed(meta.sorted_tables) if table.name not in KEEP]
    deleted = 0
    with db.write() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(table.name for table in doomed)}"))
            return -1
        for table in doomed:
            if table.name == "resource_providers" and "parent_provider_id" in table.c:
                # Children reference their parents: drop the links first.
                conn.execute(table.update().values(parent_provider_id=None, root_provider_id=None))
            deleted += conn.execute(delete(table)).rowcount or 0
    return deleted


def into_database(
    database_url: str,
    specs: Sequence[ProviderSpec],
    schema: str = "berth",
    replace: bool = True,
    advance: Advance | None = None,
) -> float:
    """Bulk-write ``specs`` (after emptying the cloud when ``replace``); seconds taken."""
    db = Database(database_url)
    try:
        if schema == "berth":
            migrate.upgrade(db)
        catalog.sync(db)  # the reference's tables take the same standard rows
        started = time.monotonic()
        if replace:
            wipe(db)
        for start, end in chunks(specs):
            chunk = specs[start:end]
            with db.write() as conn:
                write(conn, _reindexed(chunk, start), announce=False, insert_rows=fast_insert)
            if advance:
                advance(len(chunk))
        if schema == "berth":
            with db.write() as conn:
                changes.record(conn, [changes.EVERYTHING])
        taken = time.monotonic() - started
        analyze(db)
        return taken
    finally:
        db.dispose()


STATISTICS_TABLES = ("resource_providers", "inventories", "allocations", "consumers")


def analyze(db: Database) -> None:
    """Refresh the planner's statistics after a bulk load (not counted in its time).

    An operator's database has statistics; a cloud loaded a second ago has
    none until autovacuum comes round, and the first benchmark run after a
    load would measure query plans made for empty tables.
    """
    with db.write() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE " + ", ".join(STATISTICS_TABLES)))
        elif conn.dialect.name == "mysql":
            conn.execute(text("ANALYZE TABLE " + ", ".join(STATISTICS_TABLES)))
        else:
            conn.execute(text("ANALYZE"))


def _reindexed(chunk: Sequence[ProviderSpec], offset: int) -> list[ProviderSpec]:
    """Specs of one chunk with parents relative to it (trees never straddle a chunk edge)."""
    out = []
    for spec in chunk:
        if spec.parent is None:
            out.append(spec)
            continue
        parent = spec.parent - offset
        if parent < 0:
            raise ValueError(f"provider {spec.name} has its parent in an earlier chunk")
        out.append(ProviderSpec(**{**spec.__dict__, "parent": parent}))
    return out


def chunks(specs: Sequence[ProviderSpec], step: int = 20_000) -> list[tuple[int, int]]:
    """(start, end) of transactions of about ``step`` providers, cut only before a root."""
    edges = []
    start = 0
    while start < len(specs):
        end = min(start + step, len(specs))
        while end < len(specs) and specs[end].parent is not None:
            end += 1
        edges.append((start, end))
        start = end
    return edges
