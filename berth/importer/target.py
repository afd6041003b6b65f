"""berth's side of an import: is it empty, wipe it, fix its id sequences."""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, select, text, update

from berth.db import tables as t
from berth.importer.source import COPY_ORDER
from berth.placement.catalog import CUSTOM_ID_START

# Deleted before the copy, children first (providers and custom classes and
# traits are deleted separately).
WIPE_ORDER = [
    "allocations",
    "consumers",
    "inventories",
    "resource_provider_traits",
    "resource_provider_aggregates",
    "placement_aggregates",
    "users",
    "projects",
    "consumer_types",
]


def berth_has_data(conn: Connection) -> list[str]:
    """What makes berth's database non-empty (empty list if it is empty)."""
    found = []
    checks = {
        "resource providers": select(func.count()).select_from(t.resource_providers),
        "consumers": select(func.count()).select_from(t.consumers),
        "allocations": select(func.count()).select_from(t.allocations),
        "custom resource classes": select(func.count())
        .select_from(t.resource_classes)
        .where(t.resource_classes.c.id >= CUSTOM_ID_START),
        "custom traits": select(func.count())
        .select_from(t.traits)
        .where(t.traits.c.name.like("CUSTOM\\_%", escape="\\")),
    }
    for what, query in checks.items():
        count = int(conn.execute(query).scalar_one())
        if count:
            found.append(f"{count} {what}")
    return found


def wipe(conn: Connection) -> None:
    """Delete berth's placement data, keeping the standard classes and traits."""
    for name in WIPE_ORDER:
        conn.execute(delete(t.metadata.tables[name]))
    # Cut the tree's links first: MariaDB checks the self-referencing
    # foreign keys row by row, even for a row that points at itself.
    rp = t.resource_providers
    conn.execute(update(rp).values(root_provider_id=None, parent_provider_id=None))
    conn.execute(delete(rp))
    conn.execute(delete(t.resource_classes).where(t.resource_classes.c.id >= CUSTOM_ID_START))
    conn.execute(delete(t.traits).where(t.traits.c.name.like("CUSTOM\\_%", escape="\\")))


def advance_sequences(conn: Connection) -> None:
    """On PostgreSQL, move each id sequence past the ids copied explicitly."""
    if conn.dialect.name != "postgresql":
        return
    for name in COPY_ORDER:
        table = t.metadata.tables[name]
        if "id" not in table.c or not table.c.id.autoincrement:
            continue
        seq = conn.execute(text(f"SELECT pg_get_serial_sequence('{name}', 'id')")).scalar()
        if seq:
            bump = f"SELECT setval('{seq}', COALESCE(MAX(id), 1), MAX(id) IS NOT NULL)"
            conn.execute(text(f"{bump} FROM {name}"))
