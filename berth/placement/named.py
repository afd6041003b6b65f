"""What resource classes and traits have alike: an id, a unique name, timestamps.

Names compare exactly, whatever the database's collation (MySQL's default
one ignores case), so a lookup by name checks the rows it gets back.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, Table, select

from berth.placement import errors


@dataclass(frozen=True)
class Named:
    """One stored row with a unique name."""

    id: int
    name: str
    created_at: datetime.datetime | None
    updated_at: datetime.datetime | None

    @property
    def last_modified(self) -> datetime.datetime | None:
        """When the row last changed, if known."""
        return self.updated_at or self.created_at


N = TypeVar("N", bound=Named)


def columns(table: Table) -> Select[Any]:
    """The columns of :class:`Named` rows from ``table``."""
    return select(table.c.id, table.c.name, table.c.created_at, table.c.updated_at)


def find(conn: Connection, table: Table, name: str, make: Callable[..., N]) -> N | None:
    """The row of ``table`` called ``name`` exactly, made by ``make``; None when there is none."""
    rows = conn.execute(columns(table).where(table.c.name == name)).all()
    return next((make(**row._mapping) for row in rows if row.name == name), None)


def get(conn: Connection, table: Table, name: str, make: Callable[..., N], missing: str) -> N:
    """The row of ``table`` called ``name`` exactly; NotFound(``missing``) when there is none."""
    found = find(conn, table, name, make)
    if found is None:
        raise errors.NotFound(missing)
    return found


def last_change(rows: Sequence[Named]) -> datetime.datetime | None:
    """The latest change; None (meaning now) when there are no rows or any has no time,
    as upstream."""
    stamps = [row.last_modified for row in rows]
    if not stamps or None in stamps:
        return None
    return max(stamp for stamp in stamps if stamp is not None)
