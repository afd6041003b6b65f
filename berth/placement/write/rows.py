"""The rows a write inserts: allocations, and the consumers a batch creates.

On PostgreSQL each table takes one statement of fixed text, the rows sent
as one array per column (:mod:`berth.db.arrays`); elsewhere one
executemany.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, DateTime, Insert, bindparam, insert, literal

from berth.db.arrays import as_arrays, insert_from_arrays
from berth.db.tables import ALLOC, CONSUMER

# (provider id, consumer uuid, class id, amount)
Allocation = tuple[int, str, int, int]
# (uuid, project id, user id)
NewConsumerRow = tuple[str, int, int]

_ALLOCATION = ("resource_provider_id", "consumer_id", "resource_class_id", "used")
_CONSUMER = ("uuid", "project_id", "user_id")


def insert_allocations(
    conn: Connection, rows: Sequence[Allocation], now: datetime.datetime
) -> None:
    """Insert allocation rows, created ``now``."""
    _insert(conn, rows, _ALLOCATION, _ALLOCATIONS_FROM_ARRAYS, now)


def insert_new_consumers(
    conn: Connection, rows: Sequence[NewConsumerRow], now: datetime.datetime
) -> None:
    """Insert consumers at generation 1 (as after the API's first write), created ``now``."""
    _insert(conn, rows, _CONSUMER, _CONSUMERS_FROM_ARRAYS, now, generation=1, updated_at=now)


def _insert(
    conn: Connection,
    rows: Sequence[tuple[Any, ...]],
    names: tuple[str, ...],
    from_arrays: Insert,
    now: datetime.datetime,
    **fixed: Any,
) -> None:
    """Insert ``rows`` (values of ``names``) with ``fixed`` values, created ``now``."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(from_arrays, as_arrays(names, rows, now=now))
        return
    values = {**fixed, "created_at": now}
    named = [{**dict(zip(names, row, strict=True)), **values} for row in rows]
    conn.execute(insert(from_arrays.table), named)


# Built once: a statement object reused is not analysed again on every call.
_NOW = bindparam("now", type_=DateTime())
_ALLOCATIONS_FROM_ARRAYS = insert_from_arrays(ALLOC, _ALLOCATION, {"created_at": _NOW})
_CONSUMERS_FROM_ARRAYS = insert_from_arrays(
    CONSUMER, _CONSUMER, {"generation": literal(1), "created_at": _NOW, "updated_at": _NOW}
)
