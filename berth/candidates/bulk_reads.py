"""Bulk reads of providers (inventories with usage, traits, aggregates) as plain tuples.

One SELECT per table, for everything or for chunks of provider ids, so that
even 100,000 providers load in a second or two.  The few providers a change
feed poll names are read back in ONE statement instead
(:func:`read_changed`: the five reads as one ``UNION ALL``, with the names of
the providers' traits).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    Integer,
    Select,
    String,
    Table,
    cast,
    func,
    literal_column,
    null,
    select,
    union_all,
)

from berth.candidates.model import Inventory, Provider
from berth.db.lists import one_of
from berth.db.tables import AGG, ALLOC, INV, RP, RP_AGG, RP_TRAIT, TRAIT

CHUNK = 500


def chunks(ids: Iterable[int], size: int = CHUNK) -> Iterator[list[int]]:
    """``ids`` in sorted lists of at most ``size``."""
    ordered = sorted(ids)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def _fetch(conn: Connection, query: Select) -> list[tuple[Any, ...]]:  # type: ignore[type-arg]
    """All rows as plain tuples, straight from the driver (no Row objects)."""
    sql = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(sql))
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _rows(
    conn: Connection,
    query: Select,  # type: ignore[type-arg]
    column: Any,
    ids: Sequence[int] | None,
) -> list[tuple[Any, ...]]:
    if ids is None:
        return _fetch(conn, query)
    out: list[tuple[Any, ...]] = []
    for chunk in chunks(ids):
        out += _fetch(conn, query.where(column.in_(chunk)))
    return out


def read_providers(conn: Connection, ids: Sequence[int] | None = None) -> dict[int, Provider]:
    """Providers by id (all of them when ``ids`` is None); missing ids are absent."""
    providers: dict[int, Provider] = {}
    query = select(RP.c.id, RP.c.uuid, RP.c.parent_provider_id, RP.c.root_provider_id, RP.c.name)
    for pid, uuid, parent, root, name in _rows(conn, query, RP.c.id, ids):
        root = root if root is not None else pid
        providers[pid] = Provider(pid, uuid, parent, root, name=name)
    if not providers:
        return providers
    _read_inventories(conn, providers, ids)
    _read_memberships(conn, providers, ids)
    return providers


def _read_inventories(
    conn: Connection, providers: dict[int, Provider], ids: Sequence[int] | None
) -> None:
    query = select(
        INV.c.resource_provider_id,
        INV.c.resource_class_id,
        INV.c.total,
        INV.c.reserved,
        INV.c.min_unit,
        INV.c.max_unit,
        INV.c.step_size,
        INV.c.allocation_ratio,
    )
    for pid, rc, total, reserved, lo, hi, step, ratio in _rows(
        conn, query, INV.c.resource_provider_id, ids
    ):
        p = providers.get(pid)
        if p is not None:
            p.inventories[rc] = Inventory(total, reserved, lo, hi, step, ratio)
    usage = select(
        ALLOC.c.resource_provider_id, ALLOC.c.resource_class_id, func.sum(ALLOC.c.used)
    ).group_by(ALLOC.c.resource_provider_id, ALLOC.c.resource_class_id)
    for pid, rc, used in _rows(conn, usage, ALLOC.c.resource_provider_id, ids):
        p = providers.get(pid)
        inv = p.inventories.get(rc) if p is not None else None
        if inv is not None:
            inv.used = int(used or 0)


def _read_memberships(
    conn: Connection, providers: dict[int, Provider], ids: Sequence[int] | None
) -> None:
    traits: dict[int, set[int]] = {}
    query = select(RP_TRAIT.c.resource_provider_id, RP_TRAIT.c.trait_id)
    for pid, trait in _rows(conn, query, RP_TRAIT.c.resource_provider_id, ids):
        traits.setdefault(pid, set()).add(trait)
    aggs: dict[int, set[int]] = {}
    query = select(RP_AGG.c.resource_provider_id, RP_AGG.c.aggregate_id)
    for pid, agg in _rows(conn, query, RP_AGG.c.resource_provider_id, ids):
        aggs.setdefault(pid, set()).add(agg)
    for pid, names in traits.items():
        if pid in providers:
            providers[pid].traits = frozenset(names)
    for pid, members in aggs.items():
        if pid in providers:
            providers[pid].aggregates = frozenset(members)


# What each row of the changed-providers read is (its first column).
_PROVIDER, _INVENTORY, _USAGE, _TRAIT, _AGGREGATE = range(5)


@dataclass
class Changed:
    """What :func:`read_changed` read: the providers (missing ids absent), and the names
    of the traits they hold as of the same read (an id may name another trait than it
    did before: SQLite gives a new trait the id of the highest one deleted)."""

    providers: dict[int, Provider] = field(default_factory=dict)
    trait_names: dict[int, str] = field(default_factory=dict)


def read_changed(conn: Connection, ids: Sequence[int]) -> Changed:
    """Providers by id and their traits' names, in one statement per chunk of ids."""
    out = Changed()
    for chunk in chunks(ids):
        rows = conn.execute(_CHANGED, {"ids": chunk}).all()
        for kind, pid, parent, root, *_, uuid, name in rows:
            if kind == _PROVIDER:
                root = root if root is not None else pid
                out.providers[pid] = Provider(pid, uuid, parent, root, name=name)
        _fill(out, rows)
    return out


def _fill(out: Changed, rows: Sequence[Any]) -> None:
    """Inventories, usage, traits and aggregates from the rows of :data:`_CHANGED`."""
    providers = out.providers
    traits: dict[int, set[int]] = {}
    aggs: dict[int, set[int]] = {}
    for kind, pid, key, total, reserved, lo, hi, step, ratio, _, name in rows:
        p = providers.get(pid)
        if p is None:
            continue
        if kind == _INVENTORY:
            p.inventories[key] = Inventory(total, reserved, lo, hi, step, ratio)
        elif kind == _USAGE and key in p.inventories:
            p.inventories[key].used = int(total or 0)
        elif kind == _TRAIT:
            traits.setdefault(pid, set()).add(key)
            out.trait_names[key] = name
        elif kind == _AGGREGATE:
            aggs.setdefault(pid, set()).add(key)
    for pid, names in traits.items():
        providers[pid].traits = frozenset(names)
    for pid, members in aggs.items():
        providers[pid].aggregates = frozenset(members)


def _columns(
    kind: int, pid: Any, ints: list[Any], ratio: Any = None, uuid: Any = None, name: Any = None
) -> Any:
    """One part's columns: kind, provider id, six integers, the ratio, the uuid and the
    name (NULL-padded)."""
    padded = ints + [cast(null(), Integer)] * (6 - len(ints))
    return select(
        literal_column(str(kind), Integer),
        pid,
        *padded,
        cast(null(), Float) if ratio is None else ratio,
        cast(null(), String) if uuid is None else uuid,
        cast(null(), String) if name is None else name,
    )


def _changed() -> Any:
    """The five reads of :func:`read_providers` for some ids, as one UNION ALL.

    The six integers: parent and root; class, total, reserved, min_unit,
    max_unit and step_size; class and usage; trait; aggregate.  The name is the
    provider's, or the trait's.
    """
    tree = [RP.c.parent_provider_id, RP.c.root_provider_id]
    rp = _columns(_PROVIDER, RP.c.id, tree, uuid=RP.c.uuid, name=RP.c.name)
    fields = ("resource_class_id", "total", "reserved", "min_unit", "max_unit", "step_size")
    inventories = _columns(
        _INVENTORY, INV.c.resource_provider_id, [INV.c[f] for f in fields], INV.c.allocation_ratio
    )
    used = cast(func.sum(ALLOC.c.used), Integer)
    usage = _columns(_USAGE, ALLOC.c.resource_provider_id, [ALLOC.c.resource_class_id, used])
    traits = _columns(
        _TRAIT, RP_TRAIT.c.resource_provider_id, [RP_TRAIT.c.trait_id], name=TRAIT.c.name
    ).where(TRAIT.c.id == RP_TRAIT.c.trait_id)
    aggs = _columns(_AGGREGATE, RP_AGG.c.resource_provider_id, [RP_AGG.c.aggregate_id])
    return union_all(
        rp.where(one_of(RP.c.id, "ids")),
        inventories.where(one_of(INV.c.resource_provider_id, "ids")),
        usage.where(one_of(ALLOC.c.resource_provider_id, "ids")).group_by(
            ALLOC.c.resource_provider_id, ALLOC.c.resource_class_id
        ),
        traits.where(one_of(RP_TRAIT.c.resource_provider_id, "ids")),
        aggs.where(one_of(RP_AGG.c.resource_provider_id, "ids")),
    )


def tree_members(conn: Connection, roots: Iterable[int]) -> set[int]:
    """Ids of every provider in the trees rooted at ``roots``."""
    found: set[int] = set()
    for chunk in chunks(roots):
        found.update(
            conn.execute(select(RP.c.id).where(RP.c.root_provider_id.in_(chunk))).scalars()
        )
    return found


def aggregate_uuids(conn: Connection, ids: Iterable[int] | None = None) -> dict[str, int]:
    """uuid -> id of aggregates (all, or those with the given ids)."""
    query = select(AGG.c.uuid, AGG.c.id)
    if ids is None:
        return dict(conn.execute(query).all())
    out: dict[str, int] = {}
    for chunk in chunks(ids):
        out.update(conn.execute(query.where(AGG.c.id.in_(chunk))).all())
    return out


def names(conn: Connection, table: Table) -> dict[int, str]:
    """id -> name of every resource class or trait."""
    return dict(conn.execute(select(table.c.id, table.c.name)).all())


# Built once: a statement object reused is not analysed again on every call.
_CHANGED = _changed()
