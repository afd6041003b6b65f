"""Write a benchmark cloud: bulk into a database, or through any Placement API.

``into_database`` empties the cloud tables and bulk-inserts the providers
with :mod:`berth.bench.bulk` (COPY on PostgreSQL, executemany elsewhere).
On berth's schema it also logs "reload everything" in the change feed in
the same transaction, so running servers and schedulers see the new cloud
on their next request.  The same path fills an OpenStack Placement database
(the reference's): its tables have the same names and columns, standard
classes keep the same ids, and it keeps no change feed.

``through_api`` creates each provider with the API calls a deployment
would make (provider, inventories, traits, aggregates), many at a time;
parents are created before their children.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import MetaData, delete, text

from berth.bench import bulk
from berth.bench.transport import Transport, json_of
from berth.candidates.synthetic import ProviderSpec
from berth.db import migrate
from berth.db.engine import Database
from berth.placement import catalog, changes

# Kept when a cloud is replaced: the catalog, the feed's position, schema bookkeeping.
KEEP = {
    "resource_classes",
    "traits",
    "consumer_types",
    "change_log",
    "alembic_version",
    "scheduler_revisions",
    "scheduler_workers",
}
Advance = Callable[[int], None]


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
                bulk.write(conn, _reindexed(chunk, start))
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


def _create(transport: Transport, spec: ProviderSpec, parent_uuid: str | None) -> None:
    body: dict[str, object] = {"name": spec.name, "uuid": spec.uuid}
    if parent_uuid:
        body["parent_provider_uuid"] = parent_uuid
    json_of(*transport.request("POST", "/resource_providers", body), f"create {spec.name}")
    generation = 0
    path = f"/resource_providers/{spec.uuid}"
    if spec.inventories:
        inventories = {
            rc: dict(
                zip(
                    ("total", "reserved", "min_unit", "max_unit", "step_size", "allocation_ratio"),
                    inv,
                    strict=True,
                )
            )
            for rc, inv in spec.inventories.items()
        }
        body = {"resource_provider_generation": generation, "inventories": inventories}
        got = json_of(*transport.request("PUT", path + "/inventories", body), "inventories")
        generation = got["resource_provider_generation"]
    if spec.traits:
        body = {"resource_provider_generation": generation, "traits": sorted(spec.traits)}
        got = json_of(*transport.request("PUT", path + "/traits", body), "traits")
        generation = got["resource_provider_generation"]
    if spec.aggregates:
        body = {"resource_provider_generation": generation, "aggregates": sorted(spec.aggregates)}
        json_of(*transport.request("PUT", path + "/aggregates", body), "aggregates")


def through_api(
    transport: Transport,
    specs: Sequence[ProviderSpec],
    concurrency: int = 8,
    advance: Advance | None = None,
) -> float:
    """Replace the cloud with ``specs`` through the API, ``concurrency`` at a time.

    Returns the seconds the writes took (emptying the old cloud first is not counted).
    """
    clear_through_api(transport, concurrency)
    started = time.monotonic()
    for name in sorted({t for s in specs for t in s.traits if t.startswith("CUSTOM_")}):
        status, body = transport.request("PUT", f"/traits/{name}")
        if status not in (201, 204):
            raise RuntimeError(f"create trait {name}: HTTP {status}: {body[:200]!r}")
    depth = _depths(specs)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for level in sorted(set(depth)):
            wave = [i for i, d in enumerate(depth) if d == level]

            def one(i: int) -> None:
                parent = specs[i].parent
                _create(transport, specs[i], specs[parent].uuid if parent is not None else None)
                if advance:
                    advance(1)

            list(pool.map(one, wave))
    return time.monotonic() - started


def _pool_map(concurrency: int, work: Callable[[str], object], items: Sequence[str]) -> None:
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        list(pool.map(work, items))


def clear_through_api(transport: Transport, concurrency: int = 8) -> int:
    """Delete every allocation and provider through the API (leaves first); providers deleted."""
    listing = json_of(*transport.request("GET", "/resource_providers"), "list providers")
    providers = listing["resource_providers"]
    consumers: set[str] = set()

    def allocations_of(uuid: str) -> None:
        found = json_of(*transport.request("GET", f"/resource_providers/{uuid}/allocations"), uuid)
        consumers.update(found["allocations"])

    def delete(path: str) -> None:
        status, body = transport.request("DELETE", path)
        if status not in (204, 404):
            raise RuntimeError(f"DELETE {path}: HTTP {status}: {body[:200]!r}")

    _pool_map(concurrency, allocations_of, [p["uuid"] for p in providers])
    _pool_map(concurrency, lambda c: delete(f"/allocations/{c}"), sorted(consumers))
    parent = {p["uuid"]: p.get("parent_provider_uuid") for p in providers}
    depth: dict[str, int] = {}
    for uuid in parent:
        d, up = 0, parent[uuid]
        while up:
            d, up = d + 1, parent.get(up)
        depth[uuid] = d
    for level in sorted(set(depth.values()), reverse=True):
        wave = [u for u, d in depth.items() if d == level]
        _pool_map(concurrency, lambda u: delete(f"/resource_providers/{u}"), wave)
    return len(providers)


def _depths(specs: Sequence[ProviderSpec]) -> list[int]:
    depth: list[int] = []
    for spec in specs:
        depth.append(0 if spec.parent is None else depth[spec.parent] + 1)
    return depth
