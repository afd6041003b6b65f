"""What ``berth bench fuzz`` watches: has the database changed?  And a gate for writes.

A watch answers :meth:`Watch.version`, equal before and after exactly when
nothing changed: SQLite's ``PRAGMA data_version`` (cheap: it moves when any
other connection commits), a hash of every row of berth's tables (any
database the lab can see), or a hash of the API's listings (a Placement
whose database it cannot see: providers with their generations, which every
inventory, trait, aggregate and allocation change moves, classes, traits).
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.engine import make_url

from berth.db import tables
from berth.db.engine import Database

LISTINGS = ("/resource_providers", "/resource_classes", "/traits")


class Watch(Protocol):
    """A version of the target's state."""

    name: str

    def version(self) -> object:
        """Equal before and after exactly when nothing changed."""
        ...


class SqliteVersion:
    """``PRAGMA data_version`` of the SQLite file: moves with every commit of another connection."""

    name = "sqlite data_version"

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def version(self) -> object:
        """The file's data version as this connection sees it."""
        return self.conn.execute("PRAGMA data_version").fetchone()[0]


class TableHash:
    """A hash of every row of every berth table."""

    name = "hash of every table"

    def __init__(self, database_url: str) -> None:
        self.db = Database(database_url)

    def version(self) -> object:
        """One digest over the sorted rows of each table."""
        digest = hashlib.sha256()
        with self.db.read() as conn:
            for table in tables.metadata.sorted_tables:
                rows = sorted(repr(tuple(r)) for r in conn.execute(select(table)))
                digest.update(f"{table.name}:{len(rows)}:{''.join(rows)}".encode())
        return digest.hexdigest()


class ListingHash:
    """A hash of the API's listings (``get`` answers status and body of a GET)."""

    name = "hash of the API listings"

    def __init__(self, get: Callable[[str], tuple[str, bytes]]) -> None:
        self.get = get

    def version(self) -> object:
        """One digest over the listings' bodies."""
        digest = hashlib.sha256()
        for path in LISTINGS:
            status, body = self.get(path)
            digest.update(status.encode() + body)
        return digest.hexdigest()


def watch_for(database_url: str, get: Callable[[str], tuple[str, bytes]]) -> Watch:
    """The cheapest exact watch of the database behind ``database_url`` (else of the API)."""
    if not database_url:
        return ListingHash(get)
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database:
        return SqliteVersion(url.database)
    return TableHash(database_url)


class Gate:
    """Reads share it; a write has it alone (so a change is the write's), and goes first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._waiting = 0  # writes waiting: new reads let them go first

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """Held with other reads, never with a write."""
        with self._cond:
            self._cond.wait_for(lambda: not self._writing and not self._waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """Held alone."""
        with self._cond:
            self._waiting += 1
            self._cond.wait_for(lambda: not self._writing and self._readers == 0)
            self._waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()
