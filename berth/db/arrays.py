"""Many rows in one statement of fixed text: ``INSERT ... SELECT * FROM unnest(arrays)``.

An executemany sends one statement per row, and a multi-row ``VALUES``
changes its text with the row count (so neither the driver nor the server
can reuse a prepared plan).  On PostgreSQL the rows can travel as one array
per column instead: the statement text never changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Insert, Table, bindparam, func, insert, select
from sqlalchemy.dialects import postgresql


def insert_from_arrays(
    table: Table, names: tuple[str, ...], extra: dict[str, ColumnElement[Any]]
) -> Insert:
    """``INSERT INTO table (names..., extra...) SELECT unnest(:names...), extra...``.

    Bind one list per name (:func:`as_arrays`) and the parameters of ``extra``.
    """
    arrays = [bindparam(n, type_=postgresql.ARRAY(table.c[n].type)) for n in names]
    rows = func.unnest(*arrays).table_valued(*names).render_derived()
    query = select(*(rows.c[n] for n in names), *extra.values())
    return insert(table).from_select([*names, *extra], query)


def as_arrays(
    names: tuple[str, ...], rows: Sequence[Sequence[Any]], **extra: Any
) -> dict[str, Any]:
    """Rows as one list per column, by column name, plus ``extra`` parameters."""
    columns = zip(*rows, strict=True)
    return {**{n: list(c) for n, c in zip(names, columns, strict=True)}, **extra}


class BulkInsert:
    """An insert of many rows of ``names``: one statement of fixed text on PostgreSQL
    (arrays, built once here), one executemany elsewhere."""

    def __init__(self, table: Table, names: tuple[str, ...]) -> None:
        self.table = table
        self.names = names
        self.from_arrays = insert_from_arrays(table, names, {})

    def run(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` (values in the order of ``names``)."""
        if not rows:
            return
        if conn.dialect.name == "postgresql":
            conn.execute(self.from_arrays, as_arrays(self.names, rows))
            return
        conn.execute(insert(self.table), [dict(zip(self.names, r, strict=True)) for r in rows])
