"""Resource classes: the standard ones of os-resource-classes and custom ones.

Standard classes are written by ``catalog.sync`` with their index in
os-resource-classes as id; they can be neither renamed nor deleted.  Custom
classes (``CUSTOM_`` names) get ids from ``CUSTOM_ID_START`` up, one more than
the highest id in use.  Two writers may pick the same id at once: the loser's
insert fails on the primary key inside a savepoint and it tries the next id.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, exists, func, select, update
from sqlalchemy.exc import IntegrityError

from berth.db.clock import utcnow
from berth.db.tables import ALLOC, INV, RC
from berth.placement import changes, errors, named
from berth.placement.catalog import CUSTOM_ID_START

CUSTOM_PREFIX = "CUSTOM_"
# How often create_class tries another id after losing a race for one.
CREATE_ATTEMPTS = 100


@dataclass(frozen=True)
class ResourceClass(named.Named):
    """One resource class as stored."""

    @property
    def standard(self) -> bool:
        """True for the classes of os-resource-classes."""
        return self.id < CUSTOM_ID_START


def list_classes(conn: Connection) -> list[ResourceClass]:
    """Every resource class, standard ones first (by id)."""
    rows = conn.execute(named.columns(RC).order_by(RC.c.id)).all()
    return [ResourceClass(**row._mapping) for row in rows]


def find_class(conn: Connection, name: str) -> ResourceClass | None:
    """The class called ``name``, or None."""
    return named.find(conn, RC, name, ResourceClass)


def get_class(conn: Connection, name: str) -> ResourceClass:
    """The class called ``name``; NotFound when there is none."""
    return named.get(conn, RC, name, ResourceClass, f"No such resource class {name}.")


def _next_custom_id(conn: Connection) -> int:
    highest = conn.execute(select(func.max(RC.c.id))).scalar()
    if highest is None or highest < CUSTOM_ID_START:
        return CUSTOM_ID_START
    return int(highest) + 1


def _insert(conn: Connection, name: str) -> ResourceClass | None:
    """Insert ``name`` with the next free id; None when the name was taken meanwhile."""
    for _ in range(CREATE_ATTEMPTS):
        new = ResourceClass(_next_custom_id(conn), name, utcnow(), None)
        try:
            with conn.begin_nested():
                conn.execute(RC.insert().values(id=new.id, name=name, created_at=new.created_at))
            return new
        except IntegrityError:
            # Either another writer took this id (try the next one) or the name.
            if find_class(conn, name) is not None:
                return None
    raise errors.Conflict(
        "Max retries of DB transaction exceeded attempting to create resource class: "
        f"{name}, please try again."
    )


def _require_custom(name: str) -> None:
    if not name.startswith(CUSTOM_PREFIX) or name == CUSTOM_PREFIX:
        raise errors.InvalidInput(f"Resource class name must start with {CUSTOM_PREFIX}: {name}")


def create_class(conn: Connection, name: str) -> ResourceClass:
    """Create custom class ``name``; Conflict when it exists."""
    _require_custom(name)
    conflict = errors.Conflict(f"Conflicting resource class already exists: {name}")
    if find_class(conn, name) is not None:
        raise conflict
    created = _insert(conn, name)
    if created is None:
        raise conflict
    return created


def ensure_class(conn: Connection, name: str) -> tuple[ResourceClass, bool]:
    """The custom class ``name``, created if missing; True when it was created."""
    _require_custom(name)
    existing = find_class(conn, name)
    if existing is not None:
        return existing, False
    created = _insert(conn, name)
    if created is None:
        # Someone else created it between our look and our insert.
        return get_class(conn, name), False
    return created, True


def rename_class(conn: Connection, name: str, new_name: str) -> ResourceClass:
    """Rename custom class ``name`` (the pre-1.7 PUT); its id does not change."""
    current = get_class(conn, name)
    if current.standard:
        raise errors.InvalidInput(f"Cannot update standard resource class {name}")
    _require_custom(new_name)
    conflict = errors.Conflict(f"Resource class already exists: {new_name}")
    other = find_class(conn, new_name)
    if other is not None and other.id != current.id:
        raise conflict
    now = utcnow()
    try:
        with conn.begin_nested():
            conn.execute(
                update(RC).where(RC.c.id == current.id).values(name=new_name, updated_at=now)
            )
    except IntegrityError:
        raise conflict from None
    # Providers' inventories and usages are reported by class name: readers
    # holding provider state in memory must reload it all.
    changes.record(conn, [changes.EVERYTHING])
    return ResourceClass(current.id, new_name, current.created_at, now)


def _used_clause(class_id: int) -> ColumnElement[bool]:
    inventory = exists().where(INV.c.resource_class_id == class_id)
    allocation = exists().where(ALLOC.c.resource_class_id == class_id)
    return inventory | allocation


def in_use(conn: Connection, class_id: int) -> bool:
    """True when any inventory or allocation refers to the class."""
    return bool(conn.execute(select(_used_clause(class_id))).scalar())


def delete_class(conn: Connection, name: str) -> None:
    """Delete custom class ``name`` unless it is standard or in use."""
    current = get_class(conn, name)
    if current.standard:
        raise errors.InvalidInput(
            f"Error in delete resource class: Cannot delete standard resource class {name}."
        )
    # The in-use test is part of the DELETE so a concurrent inventory write
    # cannot slip in between a separate check and the delete.
    deleted = conn.execute(
        RC.delete().where(RC.c.id == current.id, ~_used_clause(current.id))
    ).rowcount
    if deleted == 1:
        changes.record(conn, [changes.EVERYTHING])
        return
    if in_use(conn, current.id):
        raise errors.Conflict(
            f"Error in delete resource class: Cannot delete resource class {name}. "
            "Class is in use in inventory."
        )
    raise errors.NotFound(f"No such resource class {name}.")
