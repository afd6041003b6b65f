"""Bulk inserts of provider specs, as fast as each database allows.

The rows are those of :func:`berth.candidates.synthetic.write` (providers
with explicit ids, inventories, usage, traits, aggregates); what differs is
the wire: PostgreSQL gets ``COPY ... FROM STDIN`` (psycopg's executemany
sends one statement per row), SQLite and MariaDB get executemany (pymysql
folds it into multi-row INSERTs).  The tables are looked up by name, so the
same code fills berth's schema and OpenStack Placement's.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, func, insert, select, text

from berth.candidates.synthetic import ProviderSpec
from berth.db import tables as t
from berth.placement.lookups import utcnow

CHUNK = 10_000
Rows = list[dict[str, Any]]


def _ids(conn: Connection, table: Table, key: str, wanted: set[str]) -> dict[str, int]:
    rows = conn.execute(select(table.c[key], table.c.id)).all()
    return {name: rid for name, rid in rows if name in wanted}


def _ensure(conn: Connection, table: Table, key: str, wanted: set[str]) -> dict[str, int]:
    have = _ids(conn, table, key, wanted)
    missing = [{key: v, "created_at": utcnow()} for v in sorted(wanted - set(have))]
    if missing:
        conn.execute(insert(table), missing)
        have = _ids(conn, table, key, wanted)
    return have


def _provider_rows(specs: Sequence[ProviderSpec], first: int) -> Rows:
    now = utcnow()
    roots: list[int] = []
    rows: Rows = []
    for i, spec in enumerate(specs):
        pid = first + i
        root = roots[spec.parent] if spec.parent is not None else pid
        roots.append(root)
        parent = first + spec.parent if spec.parent is not None else None
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


def _child_rows(
    specs: Sequence[ProviderSpec], first: int, classes: dict[str, int], traits: dict[str, int],
    aggs: dict[str, int],
) -> dict[Table, Rows]:  # fmt: skip
    now = utcnow()
    out: dict[Table, Rows] = {
        t.inventories: [],
        t.allocations: [],
        t.resource_provider_traits: [],
        t.resource_provider_aggregates: [],
    }
    names = ("total", "reserved", "min_unit", "max_unit", "step_size", "allocation_ratio")
    for i, spec in enumerate(specs):
        pid = first + i
        for rc, inv in spec.inventories.items():
            row: dict[str, Any] = dict(zip(names, inv, strict=True))
            row.update(resource_provider_id=pid, resource_class_id=classes[rc], created_at=now)
            out[t.inventories].append(row)
        for rc, used in spec.used.items():
            out[t.allocations].append(
                {
                    "resource_provider_id": pid,
                    "consumer_id": str(uuidlib.uuid4()),
                    "resource_class_id": classes[rc],
                    "used": used,
                    "created_at": now,
                }
            )
        out[t.resource_provider_traits] += [
            {"resource_provider_id": pid, "trait_id": traits[x], "created_at": now}
            for x in sorted(spec.traits)
        ]
        out[t.resource_provider_aggregates] += [
            {"resource_provider_id": pid, "aggregate_id": aggs[a], "created_at": now}
            for a in sorted(spec.aggregates)
        ]
    return out


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


def insert_rows(conn: Connection, table: Table, rows: Rows) -> None:
    """Insert ``rows`` (all with the same keys) the fastest way the dialect has."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        _copy(conn, table, rows)
        return
    for start in range(0, len(rows), CHUNK):
        conn.execute(insert(table), rows[start : start + CHUNK])


def write(conn: Connection, specs: Sequence[ProviderSpec]) -> list[int]:
    """Insert ``specs`` with their inventories, usage, traits and aggregates; their ids."""
    first = int(conn.execute(select(func.max(t.resource_providers.c.id))).scalar() or 0) + 1
    rcs = {rc for s in specs for rc in (*s.inventories, *s.used)}
    classes = _ids(conn, t.resource_classes, "name", rcs)
    missing = rcs - set(classes)
    if missing:
        raise ValueError(f"unknown resource classes: {sorted(missing)}")
    traits = _ensure(conn, t.traits, "name", {x for s in specs for x in s.traits})
    aggs = _ensure(conn, t.placement_aggregates, "uuid", {a for s in specs for a in s.aggregates})
    insert_rows(conn, t.resource_providers, _provider_rows(specs, first))
    for table, rows in _child_rows(specs, first, classes, traits, aggs).items():
        insert_rows(conn, table, rows)
    if conn.dialect.name == "postgresql":
        # Ids were given explicitly: move the sequence past them.
        conn.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('resource_providers', 'id'), "
                "(SELECT max(id) FROM resource_providers))"
            )
        )
    return list(range(first, first + len(specs)))
