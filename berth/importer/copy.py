"""The copy itself: table by table in ONE transaction, ids mapped by name."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from berth.db import tables as t
from berth.db.clock import utcnow
from berth.db.engine import Database, normalise_url
from berth.importer.source import (
    BATCH_SIZE,
    ImportIncomplete,
    ImportRefused,
    NoProgress,
    Progress,
    Source,
)
from berth.importer.target import advance_sequences, berth_has_data, wipe
from berth.placement import changes
from berth.placement.catalog import CUSTOM_ID_START


@dataclass
class ImportReport:
    """Rows copied per table, and what was mapped or created on the way."""

    copied: dict[str, int] = field(default_factory=dict)
    created_classes: list[str] = field(default_factory=list)
    created_traits: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


Transform = Callable[[dict[str, Any]], dict[str, Any] | None]


def _copy(
    source: Source,
    conn: Connection,
    name: str,
    progress: Progress,
    transform: Transform | None = None,
    batches: Iterable[list[dict[str, Any]]] | None = None,
) -> int:
    """Copy one table, a statement per batch; return the rows written."""
    if name not in source.tables:
        return 0
    target = t.metadata.tables[name]
    wanted = [c.name for c in target.columns]
    progress.start(name, source.count(name))
    copied = 0
    for batch in batches if batches is not None else source.rows(name):
        rows = []
        for row in batch:
            out = transform(row) if transform else row
            if out is not None:
                rows.append({col: out.get(col) for col in wanted})
        if rows:
            conn.execute(target.insert(), rows)
        copied += len(rows)
        progress.advance(name, len(batch))
    return copied


def _import_classes(
    source: Source, conn: Connection, report: ImportReport, progress: Progress
) -> dict[int, int]:
    """Map Placement class ids to berth's by name, creating the missing ones."""
    rc = t.resource_classes
    existing = {row.name: row.id for row in conn.execute(select(rc.c.id, rc.c.name))}
    taken = set(existing.values())
    mapping: dict[int, int] = {}
    new_rows = []
    progress.start("resource_classes", source.count("resource_classes"))
    for batch in source.rows("resource_classes"):
        for row in batch:
            if row["name"] in existing:
                mapping[row["id"]] = existing[row["name"]]
                continue
            new_id = row["id"]
            if new_id in taken:
                new_id = max(taken | {CUSTOM_ID_START - 1}) + 1
            taken.add(new_id)
            mapping[row["id"]] = new_id
            report.created_classes.append(row["name"])
            new_rows.append({**_timestamps(row), "id": new_id, "name": row["name"]})
        progress.advance("resource_classes", len(batch))
    if new_rows:
        conn.execute(rc.insert(), new_rows)
    report.copied["resource_classes"] = len(new_rows)
    return mapping


def _import_traits(
    source: Source, conn: Connection, report: ImportReport, progress: Progress
) -> dict[int, int]:
    """Map Placement trait ids to berth's by name, creating the missing ones."""
    tr = t.traits
    source_ids: dict[str, int] = {}
    progress.start("traits", source.count("traits"))
    for batch in source.rows("traits"):
        names = [row["name"] for row in batch]
        have = set(conn.execute(select(tr.c.name).where(tr.c.name.in_(names))).scalars())
        missing = [
            _timestamps(row) | {"name": row["name"]} for row in batch if row["name"] not in have
        ]
        if missing:
            conn.execute(tr.insert(), missing)
            report.created_traits += [row["name"] for row in missing]
        source_ids.update({row["name"]: row["id"] for row in batch})
        progress.advance("traits", len(batch))
    report.copied["traits"] = len(report.created_traits)
    berth_ids = {row.name: row.id for row in conn.execute(select(tr.c.id, tr.c.name))}
    return {source_id: berth_ids[name] for name, source_id in source_ids.items()}


def _timestamps(row: dict[str, Any]) -> dict[str, Any]:
    return {"created_at": row.get("created_at") or utcnow(), "updated_at": row.get("updated_at")}


def _providers_parents_first(source: Source) -> Iterator[list[dict[str, Any]]]:
    """All providers, roots first, then each level of the trees."""
    rows = [row for batch in source.rows("resource_providers") for row in batch]
    depth = _depths({row["id"]: row["parent_provider_id"] for row in rows})
    rows.sort(key=lambda row: (depth[row["id"]], row["id"]))
    for start in range(0, len(rows), BATCH_SIZE):
        yield rows[start : start + BATCH_SIZE]


def _depths(parent_of: dict[int, int | None]) -> dict[int, int]:
    """Each provider's distance from its root (a missing parent counts as a root)."""
    depth: dict[int, int] = {}
    for pid in parent_of:
        path: list[int] = []
        node = pid
        while node not in depth:
            parent = parent_of.get(node)
            if parent is None or parent not in parent_of or len(path) > len(parent_of):
                depth[node] = 0
                break
            path.append(node)
            node = parent
        for child in reversed(path):
            depth[child] = depth[parent_of[child]] + 1  # type: ignore[index]
    return depth


def _provider(row: dict[str, Any]) -> dict[str, Any]:
    # Rows from before nested providers may lack a root; a provider is its own.
    return {
        **row,
        "generation": row.get("generation") or 0,
        "root_provider_id": row.get("root_provider_id") or row["id"],
    }


def _mapped(column: str, mapping: dict[int, int], report: ImportReport, table: str) -> Transform:
    def transform(row: dict[str, Any]) -> dict[str, Any] | None:
        if row[column] not in mapping:
            report.skipped.append(f"{table} row {row.get('id', row)}: unknown {column}")
            return None
        return {**row, column: mapping[row[column]]}

    return transform


def _aggregate(report: ImportReport) -> Transform:
    def transform(row: dict[str, Any]) -> dict[str, Any] | None:
        if not row.get("uuid"):
            report.skipped.append(f"placement_aggregates row {row['id']}: no uuid")
            return None
        return row

    return transform


def _consumer(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "generation": row.get("generation") or 0}


def run(
    source_url: str,
    db: Database,
    force: bool = False,
    progress: Progress | None = None,
    allow_partial: bool = False,
) -> ImportReport:
    """Copy the Placement database at ``source_url`` into ``db``, all or nothing.

    Rows that cannot be copied (a class, trait or aggregate that cannot be
    mapped) make it :class:`ImportIncomplete` and nothing is written, unless
    ``allow_partial``: then the rest is copied and the report lists them.
    """
    progress = progress or NoProgress()
    if normalise_url(source_url) == db.url:
        raise ImportRefused("the source is berth's own database")
    source = Source.open(source_url)
    try:
        with db.write() as conn:
            found = berth_has_data(conn)
            if found and not force:
                raise ImportRefused(
                    f"berth's database is not empty ({', '.join(found)}); "
                    "use --force to replace its contents with the import"
                )
            wipe(conn)
            report = _copy_all(source, conn, progress)
            if report.skipped and not allow_partial:
                raise ImportIncomplete(report.skipped)  # rolls the whole import back
            return report
    finally:
        source.engine.dispose()


def _copy_all(source: Source, conn: Connection, progress: Progress) -> ImportReport:
    report = ImportReport()
    classes = _import_classes(source, conn, report, progress)
    traits = _import_traits(source, conn, report, progress)
    # The remaining tables, parents before children, each with what its rows need on the way.
    tables: dict[str, Transform | None] = {
        "consumer_types": None,
        "projects": None,
        "users": None,
        "resource_providers": _provider,
        "placement_aggregates": _aggregate(report),
        "resource_provider_aggregates": None,
        "resource_provider_traits": _mapped("trait_id", traits, report, "resource_provider_traits"),
        "inventories": _mapped("resource_class_id", classes, report, "inventories"),
        "consumers": _consumer,
        "allocations": _mapped("resource_class_id", classes, report, "allocations"),
    }
    for name, transform in tables.items():
        # Providers are written roots first, so that every parent is there before its children.
        batches = _providers_parents_first(source) if name == "resource_providers" else None
        report.copied[name] = _copy(source, conn, name, progress, transform, batches)
    advance_sequences(conn)
    # Workers holding providers in memory reload everything.
    changes.record(conn, [changes.EVERYTHING])
    return report
