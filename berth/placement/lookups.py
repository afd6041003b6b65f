"""Shared reads and the generation compare-and-swap used by every writer."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, bindparam, select, tuple_, update

from berth.db import tables as t
from berth.placement import errors

RP = t.resource_providers


@dataclass(frozen=True)
class ProviderRow:
    """One resource provider as stored, with its parent's and root's uuid."""

    id: int
    uuid: str
    name: str | None
    generation: int
    parent_provider_id: int | None
    root_provider_id: int | None
    parent_uuid: str | None
    root_uuid: str | None
    created_at: datetime.datetime | None
    updated_at: datetime.datetime | None


def _provider_query() -> Select[Any]:
    parent = RP.alias("parent")
    root = RP.alias("root")
    return select(
        RP.c.id,
        RP.c.uuid,
        RP.c.name,
        RP.c.generation,
        RP.c.parent_provider_id,
        RP.c.root_provider_id,
        parent.c.uuid.label("parent_uuid"),
        root.c.uuid.label("root_uuid"),
        RP.c.created_at,
        RP.c.updated_at,
    ).select_from(
        RP.outerjoin(parent, RP.c.parent_provider_id == parent.c.id).outerjoin(
            root, RP.c.root_provider_id == root.c.id
        )
    )


def provider_query() -> Select[Any]:
    """A SELECT of provider rows (add WHERE / ORDER BY as needed)."""
    return _provider_query()


def find_provider(conn: Connection, uuid: str) -> ProviderRow | None:
    """The provider with ``uuid``, or None."""
    row = conn.execute(_provider_query().where(RP.c.uuid == uuid)).one_or_none()
    return ProviderRow(**row._mapping) if row else None


def get_provider(conn: Connection, uuid: str) -> ProviderRow:
    """The provider with ``uuid``; NotFound when there is none."""
    provider = find_provider(conn, uuid)
    if provider is None:
        raise errors.NotFound(f"No resource provider with uuid {uuid} found")
    return provider


def try_bump(conn: Connection, provider_id: int, expected: int) -> bool:
    """Compare-and-swap the provider generation from ``expected`` to +1; False if lost.

    The caller records the change (:func:`berth.placement.changes.record`).
    """
    result = conn.execute(
        update(RP)
        .where(RP.c.id == provider_id, RP.c.generation == expected)
        .values(generation=expected + 1, updated_at=utcnow())
    )
    return bool(result.rowcount == 1)


def swap_generations(conn: Connection, expected: dict[int, int]) -> set[int]:
    """Compare-and-swap several provider generations (id -> expected); the ids swapped.

    One ``UPDATE ... WHERE (id, generation) IN (...) RETURNING id`` where the
    database returns updated rows (PostgreSQL, SQLite), else one
    :func:`try_bump` per provider, in id order (MariaDB, MySQL).
    """
    if not expected:
        return set()
    if not conn.dialect.update_returning:
        return {pid for pid in sorted(expected) if try_bump(conn, pid, expected[pid])}
    result = conn.execute(_SWAP, {"pairs": sorted(expected.items()), "now": utcnow()})
    return set(result.scalars())


# Built once: a statement object reused is not analysed again on every call.
_SWAP = (
    update(RP)
    .where(tuple_(RP.c.id, RP.c.generation).in_(bindparam("pairs", expanding=True)))
    .values(generation=RP.c.generation + 1, updated_at=bindparam("now"))
    .returning(RP.c.id)
)


def bump_generation(conn: Connection, provider_id: int, expected: int) -> int:
    """Compare-and-swap the provider generation from ``expected`` to +1.

    Raises ConcurrentUpdate when another writer changed it first.  This is
    the only way a write claims a provider: no row locks are taken earlier.
    """
    if not try_bump(conn, provider_id, expected):
        raise errors.ConcurrentUpdate(
            "resource provider generation conflict",
        )
    # Imported here: changes imports utcnow from this module.
    from berth.placement import changes

    changes.record(conn, [provider_id])
    return expected + 1


def utcnow() -> datetime.datetime:
    """Now in UTC, naive, second precision (as stored)."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)


class ResourceClassCache:
    """Name <-> id of resource classes, read once per transaction."""

    def __init__(self, conn: Connection) -> None:
        rows = conn.execute(select(t.resource_classes.c.id, t.resource_classes.c.name)).all()
        self.by_name: dict[str, int] = {r.name: r.id for r in rows}
        self.by_id: dict[int, str] = {r.id: r.name for r in rows}

    def id_of(self, name: str) -> int:
        """The id of class ``name``; NotFound when it does not exist."""
        try:
            return self.by_name[name]
        except KeyError:
            raise errors.NotFound(f"No such resource class {name}.") from None

    def ids_of(self, names: Iterable[str]) -> dict[str, int]:
        """Ids for several names; NotFound naming the first unknown one."""
        return {name: self.id_of(name) for name in names}

    def name_of(self, rc_id: int) -> str:
        """The name of class ``rc_id``."""
        return self.by_id[rc_id]
