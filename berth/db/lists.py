"""``column IN (a list bound at execution)`` whose SQL text does not change with the list.

An expanding ``IN`` renders one placeholder per value, so every list
length is a new statement: the driver converts its text again, the server
plans it again (PostgreSQL: a plan of these reads takes longer than running
it), and no prepared statement is ever reused.  :func:`one_of` renders
``column = ANY(%(name)s::INTEGER[])`` on PostgreSQL, one array parameter and
one text for every length, so psycopg prepares it once per connection and the
server keeps its plan.  Elsewhere it is the expanding ``IN`` (MariaDB and
SQLite have no array parameter; neither keeps plans across statements).

Bind a list (or any sequence) under ``name`` when executing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import any_
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import NullType, TypeEngine


class OneOf(ColumnElement[Any]):
    """``column`` is one of the values bound under ``name``: see the module."""

    inherit_cache = True
    # Not Boolean: a Boolean element in a WHERE is rendered "... = 1" where the
    # database has no boolean type (SQLite, MariaDB).
    type: TypeEngine[Any] = NullType()
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("name", InternalTraversal.dp_string),
    ]

    def __init__(self, column: ColumnElement[Any], name: str) -> None:
        self.column = column
        self.name = name


def one_of(column: ColumnElement[Any], name: str) -> OneOf:
    """``column IN (:name...)``, with one SQL text for every length on PostgreSQL."""
    return OneOf(column, name)


@compiles(OneOf)
def _expanding(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    clause = element.column.in_(bindparam(element.name, expanding=True))
    return compiler.process(clause, **kw)


@compiles(OneOf, "postgresql")
def _array(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    array = bindparam(element.name, type_=postgresql.ARRAY(element.column.type))
    clause = element.column.operate(operators.eq, any_(array))
    return compiler.process(clause, **kw)
