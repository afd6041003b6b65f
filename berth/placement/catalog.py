"""The standard resource classes and traits, kept in step with the libraries.

Standard resource classes keep the ids os-resource-classes gives them (their
index in ``STANDARDS``); custom classes start at ``CUSTOM_ID_START``.
Standard traits come from os-traits.  ``sync`` is idempotent and safe to run
from several processes at once: one that loses an insert race runs again.
"""

from __future__ import annotations

import os_resource_classes
import os_traits
from sqlalchemy import Connection, select

from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.db.tables import RC, TRAIT
from berth.placement.write.retry import atomically

CUSTOM_ID_START = 10000
STANDARD_RESOURCE_CLASSES: list[str] = list(os_resource_classes.STANDARDS)
STANDARD_TRAITS: frozenset[str] = frozenset(os_traits.get_traits())
SYNC_ATTEMPTS = 3


def sync(db: Database) -> None:
    """Insert any missing standard resource classes and traits."""
    atomically(db, _sync_once, SYNC_ATTEMPTS, operation="catalog")


def _sync_once(conn: Connection) -> None:
    now = utcnow()
    have_rc = set(conn.execute(select(RC.c.name)).scalars())
    missing_rc = [
        {"id": idx, "name": name, "created_at": now}
        for idx, name in enumerate(STANDARD_RESOURCE_CLASSES)
        if name not in have_rc
    ]
    if missing_rc:
        conn.execute(RC.insert(), missing_rc)
    have_traits = set(conn.execute(select(TRAIT.c.name)).scalars())
    missing_traits = [
        {"name": name, "created_at": now} for name in sorted(STANDARD_TRAITS - have_traits)
    ]
    if missing_traits:
        conn.execute(TRAIT.insert(), missing_traits)
