"""Load a synthetic cloud straight into the database with bulk Core inserts.

The benchmark cloud: N compute nodes, each with VCPU 64 (ratio 16),
MEMORY_MB 262144 (ratio 1.5, 512 reserved) and DISK_GB 2000; 10% carry the
trait CUSTOM_GPU; every node is in one of 10 aggregates.  Rows are written
in chunks of executemany; 100,000 providers take a few seconds on SQLite.

Usage::

    python -m berth.candidates.synthetic --database-url sqlite:////tmp/b.sqlite -n 10000

The generic :func:`write` takes any :class:`ProviderSpec` list (trees, traits,
aggregates, usage) and is also what the property tests use.  After writing it
logs "reload everything" in the change feed so running workers pick it up.
"""

from __future__ import annotations

import argparse
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, Table, func, insert, select, text

from berth.db import migrate
from berth.db import tables as t
from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.placement import catalog, changes

CHUNK = 10_000

# (total, reserved, min_unit, max_unit, step_size, allocation_ratio)
InventorySpec = tuple[int, int, int, int, int, float]


@dataclass
class ProviderSpec:
    """One provider to write; ``parent`` is the index of an earlier spec."""

    uuid: str
    name: str
    parent: int | None = None
    inventories: dict[str, InventorySpec] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=dict)
    traits: set[str] = field(default_factory=set)
    aggregates: set[str] = field(default_factory=set)


def compute_node(index: int, gpu: bool, aggregate: str) -> ProviderSpec:
    """One compute node of the benchmark cloud."""
    return ProviderSpec(
        uuid=str(uuidlib.UUID(int=index + 1)),
        name=f"cn{index:06d}",
        inventories={
            "VCPU": (64, 0, 1, 64, 1, 16.0),
            "MEMORY_MB": (262144, 512, 1, 262144, 1, 1.5),
            "DISK_GB": (2000, 0, 1, 2000, 1, 1.0),
        },
        traits={"CUSTOM_GPU"} if gpu else set(),
        aggregates={aggregate},
    )


def cloud(n: int, aggregates: int = 10) -> list[ProviderSpec]:
    """The benchmark cloud: ``n`` nodes, every 10th with CUSTOM_GPU."""
    aggs = [str(uuidlib.UUID(int=(1 << 64) + i)) for i in range(aggregates)]
    return [compute_node(i, i % 10 == 0, aggs[i % aggregates]) for i in range(n)]


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


def _bulk(conn: Connection, table: Table, rows: Sequence[dict[str, object]]) -> None:
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
        for rc, (total, reserved, lo, hi, step, ratio) in spec.inventories.items():
            rows[t.inventories].append(
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
            )
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


Rows = Sequence[dict[str, object]]


def write(
    conn: Connection,
    specs: Sequence[ProviderSpec],
    announce: bool = True,
    insert_rows: Callable[[Connection, Table, Rows], None] | None = None,
) -> list[int]:
    """Insert ``specs`` (with traits, aggregates and usage); returns their ids.

    ``announce`` logs "reload everything" in the change feed for running
    workers; ``insert_rows`` writes one table's rows (default: executemany
    through the driver).  The tables are addressed by name only, so the same
    rows fill berth's schema and OpenStack Placement's.
    """
    write_rows = insert_rows or _bulk
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


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: load the benchmark cloud into a database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("-n", "--providers", type=int, default=10_000)
    parser.add_argument("--aggregates", type=int, default=10)
    args = parser.parse_args(argv)
    db = Database(args.database_url)
    migrate.upgrade(db)
    catalog.sync(db)
    started = time.monotonic()
    specs = cloud(args.providers, args.aggregates)
    with db.write() as conn:
        write(conn, specs)
    print(f"wrote {len(specs)} providers in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
