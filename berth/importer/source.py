"""The Placement database being imported: reflected, read in batches, never written."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import MetaData, Table, create_engine, func, select
from sqlalchemy.engine import Engine

from berth.db.engine import normalise_url

BATCH_SIZE = 2000

# Copied in this order (each after the tables it refers to).
COPY_ORDER = [
    "resource_classes",
    "traits",
    "consumer_types",
    "projects",
    "users",
    "resource_providers",
    "placement_aggregates",
    "resource_provider_aggregates",
    "resource_provider_traits",
    "inventories",
    "consumers",
    "allocations",
]
REQUIRED = {"resource_providers", "inventories", "allocations", "resource_classes"}


class ImportRefused(Exception):
    """The import cannot start (not a Placement database, or berth not empty)."""


class ImportIncomplete(Exception):
    """Some rows could not be copied; nothing was written (``skipped`` says which)."""

    def __init__(self, skipped: list[str]) -> None:
        super().__init__(f"{len(skipped)} rows could not be copied; nothing was imported")
        self.skipped = skipped


class Progress(Protocol):
    """Where the importer reports how far it got (a rich bar, or nothing)."""

    def start(self, table: str, total: int) -> None:
        """A table with ``total`` rows is about to be copied."""

    def advance(self, table: str, rows: int) -> None:
        """``rows`` more rows of ``table`` are copied (committed with the rest at the end)."""


class NoProgress:
    """Reports nothing."""

    def start(self, table: str, total: int) -> None:
        """Ignore."""

    def advance(self, table: str, rows: int) -> None:
        """Ignore."""


@dataclass
class Source:
    """The Placement database, reflected (read only)."""

    engine: Engine
    tables: dict[str, Table]

    @classmethod
    def open(cls, url: str) -> Source:
        """Connect and reflect; refuse if it is not a Placement database."""
        engine = create_engine(normalise_url(url))
        meta = MetaData()
        meta.reflect(engine, only=lambda name, _meta: name in COPY_ORDER)
        missing = REQUIRED - set(meta.tables)
        if missing:
            engine.dispose()
            raise ImportRefused(
                f"{engine.url!r} is not a Placement database (no {', '.join(sorted(missing))})"
            )
        return cls(engine, dict(meta.tables))

    def count(self, name: str) -> int:
        """Rows in table ``name`` (0 if the source lacks it)."""
        if name not in self.tables:
            return 0
        with self.engine.connect() as conn:
            query = select(func.count()).select_from(self.tables[name])
            return int(conn.execute(query).scalar_one())

    def rows(self, name: str, order: Iterable[Any] = ()) -> Iterator[list[dict[str, Any]]]:
        """The rows of ``name`` as dicts, in batches of ``BATCH_SIZE``."""
        table = self.tables[name]
        order_by = list(order) or list(table.primary_key.columns)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(
                select(table).order_by(*order_by)
            )
            for chunk in result.mappings().partitions(BATCH_SIZE):
                yield [dict(row) for row in chunk]
