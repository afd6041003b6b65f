"""The standard resource classes and traits, kept in step with the libraries.

Standard resource classes keep the ids os-resource-classes gives them (their
index in ``STANDARDS``); custom classes start at ``CUSTOM_ID_START``.
Standard traits come from os-traits.  ``sync`` is idempotent and safe to run
from several processes at once.
"""

from __future__ import annotations

import datetime

import os_resource_classes
import os_traits
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from berth.db import tables
from berth.db.engine import Database

CUSTOM_ID_START = 10000
STANDARD_RESOURCE_CLASSES: list[str] = list(os_resource_classes.STANDARDS)
STANDARD_TRAITS: frozenset[str] = frozenset(os_traits.get_traits())


def utcnow() -> datetime.datetime:
    """The current time in UTC without tzinfo, as stored in the database."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)


def sync(db: Database) -> None:
    """Insert any missing standard resource classes and traits."""
    for attempt in range(3):
        try:
            _sync_once(db)
            return
        except IntegrityError:
            if attempt == 2:
                raise


def _sync_once(db: Database) -> None:
    now = utcnow()
    with db.write() as conn:
        have_rc = set(conn.execute(select(tables.resource_classes.c.name)).scalars())
        missing_rc = [
            {"id": idx, "name": name, "created_at": now}
            for idx, name in enumerate(STANDARD_RESOURCE_CLASSES)
            if name not in have_rc
        ]
        if missing_rc:
            conn.execute(tables.resource_classes.insert(), missing_rc)
        have_traits = set(conn.execute(select(tables.traits.c.name)).scalars())
        missing_traits = [
            {"name": name, "created_at": now} for name in sorted(STANDARD_TRAITS - have_traits)
        ]
        if missing_traits:
            conn.execute(tables.traits.insert(), missing_traits)
