"""Inventories: what a resource provider offers, per resource class.

Every change is a provider write: it checks the generation the caller saw
(where the API takes one), changes the rows, and swaps the provider's
generation (:mod:`berth.placement.write.generations`), all in the caller's
transaction.  Inventory that allocations consume cannot be deleted; it may
be shrunk below what is used (the reference allows that and only logs it).
The reshaper writes through :func:`write_inventories` too.

Errors (besides ``errors.NotFound`` for a missing provider)::

    UnknownResourceClass (NotFound)    the class does not exist
    InventoryNotFound (NotFound)       the provider has no inventory of the class
    InvalidCapacity (InvalidInput)     reserved leaves no capacity
    DuplicateInventory (Conflict)      the class is already in the inventory
    InventoryInUse (Conflict)          allocations use the inventory to delete
                                       (:mod:`berth.placement.write.capacity`)
    StaleGeneration (ConcurrentUpdate) the caller's generation is not current
    ConcurrentUpdate (Conflict)        another writer won the compare-and-swap
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import (
    Connection,
    DateTime,
    Integer,
    Select,
    String,
    bindparam,
    cast,
    delete,
    func,
    insert,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import BindParameter

from berth.db.clock import utcnow
from berth.db.tables import INV, RC, RP
from berth.placement import errors
from berth.placement.providers import ProviderRow, get_provider, missing_provider
from berth.placement.write import capacity, generations

LOG = logging.getLogger(__name__)


MAX_INT = 0x7FFFFFFF

# The fields an inventory shows through the API, in the reference's order.
FIELDS = capacity.LIMITS  # an inventory is the numbers the capacity rule reads


class ProviderKey(Protocol):
    """What the row writers need of a provider: its id, and its uuid for messages."""

    @property
    def id(self) -> int:
        """The provider's id."""
        ...

    @property
    def uuid(self) -> str:
        """The provider's uuid."""
        ...


class UnknownResourceClass(errors.NotFound):
    """The named resource class does not exist."""


class InventoryNotFound(errors.NotFound):
    """The provider has no inventory of the class."""


class InvalidCapacity(errors.InvalidInput):
    """The reserved amount leaves no usable capacity."""


class DuplicateInventory(errors.Conflict):
    """The provider already has inventory of the class."""

    default_code = errors.CONCURRENT_UPDATE


@dataclass(frozen=True)
class Inventory:
    """One inventory record (defaults are the API's)."""

    resource_class: str
    total: int
    reserved: int = 0
    min_unit: int = 1
    max_unit: int = MAX_INT
    step_size: int = 1
    allocation_ratio: float = 1.0
    created_at: datetime.datetime | None = None
    updated_at: datetime.datetime | None = None

    @classmethod
    def from_body(cls, resource_class: str, body: Mapping[str, Any]) -> Inventory:
        """An inventory from a validated request body (unknown keys ignored)."""
        return cls(resource_class, **{k: body[k] for k in FIELDS if k in body})

    @property
    def capacity(self) -> int:
        """What can be allocated: (total - reserved) * allocation_ratio."""
        return int((self.total - self.reserved) * self.allocation_ratio)

    @property
    def last_modified(self) -> datetime.datetime | None:
        """When the record last changed, if stored."""
        return self.updated_at or self.created_at

    def as_dict(self) -> dict[str, Any]:
        """The API fields (also the stored columns apart from keys and timestamps)."""
        return {name: getattr(self, name) for name in FIELDS}


def check_capacity(
    provider_uuid: str, inventories: Iterable[Inventory], reserved_may_equal_total: bool
) -> None:
    """InvalidCapacity unless every inventory leaves capacity (> 0, or >= 0 if allowed)."""
    for inv in inventories:
        if reserved_may_equal_total and inv.capacity < 0:
            problem = "The reserved value is greater than total."
        elif not reserved_may_equal_total and inv.capacity <= 0:
            problem = "The reserved value is greater than or equal to total."
        else:
            continue
        raise InvalidCapacity(
            f"Invalid inventory for '{inv.resource_class}' on resource provider "
            f"'{provider_uuid}'. {problem}"
        )


def _inventory_query(provider_id: int) -> Select[Any]:
    columns = [INV.c[name] for name in (*FIELDS, "created_at", "updated_at")]
    return (
        select(RC.c.name.label("resource_class"), *columns)
        .select_from(INV.join(RC, INV.c.resource_class_id == RC.c.id))
        .where(INV.c.resource_provider_id == provider_id)
    )


def list_inventories(conn: Connection, provider_id: int) -> list[Inventory]:
    """The provider's inventories, ordered by resource class id."""
    rows = conn.execute(_inventory_query(provider_id).order_by(INV.c.resource_class_id))
    return [Inventory(**row._mapping) for row in rows]


def find_inventory(conn: Connection, provider_id: int, resource_class: str) -> Inventory | None:
    """The provider's inventory of ``resource_class``, or None."""
    row = conn.execute(_inventory_query(provider_id).where(RC.c.name == resource_class)).first()
    return Inventory(**row._mapping) if row else None


def _class_ids(conn: Connection, names: Collection[str]) -> dict[str, int]:
    if not names:
        return {}
    rows = conn.execute(select(RC.c.name, RC.c.id).where(RC.c.name.in_(list(names)))).all()
    found = {row.name: row.id for row in rows}
    for name in names:
        if name not in found:
            raise UnknownResourceClass(f"No such resource class {name}.")
    return found


def _class_id(conn: Connection, name: str) -> int:
    return _class_ids(conn, [name])[name]


def _checked_provider(conn: Connection, uuid: str, expected_generation: int | None) -> ProviderRow:
    provider = get_provider(conn, uuid)
    if expected_generation is not None and provider.generation != expected_generation:
        raise errors.StaleGeneration(generations.GENERATION_CONFLICT)
    return provider


def _insert(conn: Connection, provider: ProviderKey, class_id: int, inv: Inventory) -> None:
    values = {"resource_provider_id": provider.id, "resource_class_id": class_id}
    try:
        conn.execute(_INSERT, {**values, "created_at": utcnow(), **inv.as_dict()})
    except IntegrityError:
        raise DuplicateInventory(
            f"Inventory for '{inv.resource_class}' on resource provider "
            f"'{provider.uuid}' already exists."
        ) from None


def _update(conn: Connection, provider: ProviderKey, class_id: int, inv: Inventory) -> None:
    current = capacity.read(conn, [provider.id], [class_id]).get((provider.id, class_id))
    if current is not None and current.used > inv.capacity:
        LOG.warning(
            "Resource provider %s is now over-capacity for %s", provider.uuid, inv.resource_class
        )
    result = conn.execute(
        update(INV)
        .where(INV.c.resource_provider_id == provider.id, INV.c.resource_class_id == class_id)
        .values(updated_at=utcnow(), **inv.as_dict())
    )
    if result.rowcount != 1:
        raise InventoryNotFound(f"No inventory of class {inv.resource_class} found.")


def _delete(conn: Connection, provider: ProviderKey, class_ids: Collection[int]) -> int:
    capacity.check_not_in_use(conn, provider.id, provider.uuid, class_ids)
    result = conn.execute(
        delete(INV).where(
            INV.c.resource_provider_id == provider.id,
            INV.c.resource_class_id.in_(list(class_ids)),
        )
    )
    return int(result.rowcount)


def add_inventory(
    conn: Connection, provider_uuid: str, inv: Inventory, reserved_may_equal_total: bool
) -> int:
    """Add inventory of a class the provider does not have yet; the new generation."""
    provider = get_provider(conn, provider_uuid)
    check_capacity(provider.uuid, [inv], reserved_may_equal_total)
    class_id = _class_id(conn, inv.resource_class)
    _insert(conn, provider, class_id, inv)
    return generations.bump(conn, provider.id, provider.generation)


def update_inventory(
    conn: Connection,
    provider_uuid: str,
    inv: Inventory,
    expected_generation: int,
    reserved_may_equal_total: bool,
) -> int:
    """Change the provider's existing inventory of one class; the new generation."""
    provider = _checked_provider(conn, provider_uuid, expected_generation)
    check_capacity(provider.uuid, [inv], reserved_may_equal_total)
    class_id = _class_id(conn, inv.resource_class)
    _update(conn, provider, class_id, inv)
    return generations.bump(conn, provider.id, provider.generation)


def delete_inventory(conn: Connection, provider_uuid: str, resource_class: str) -> int:
    """Delete the provider's inventory of one unused class; the new generation."""
    provider = get_provider(conn, provider_uuid)
    class_id = _class_id(conn, resource_class)
    if not _delete(conn, provider, [class_id]):
        raise InventoryNotFound(f"No inventory of class {resource_class} found for delete")
    return generations.bump(conn, provider.id, provider.generation)


def replace_inventories(
    conn: Connection,
    provider_uuid: str,
    inventories: Collection[Inventory],
    expected_generation: int | None,
    reserved_may_equal_total: bool = False,
) -> int:
    """Make ``inventories`` the provider's whole inventory; the new generation.

    ``expected_generation`` None skips the caller's generation check (DELETE
    of all inventory); the compare-and-swap still applies.  The provider,
    the classes' ids and the provider's current classes are one read.
    """
    names = [inv.resource_class for inv in inventories]
    provider, found, existing = _read_for_replace(conn, provider_uuid, names)
    if expected_generation is not None and provider.generation != expected_generation:
        raise errors.StaleGeneration(generations.GENERATION_CONFLICT)
    check_capacity(provider.uuid, inventories, reserved_may_equal_total)
    _write(conn, provider, inventories, _known(names, found), existing, keep_others=False)
    return generations.bump(conn, provider.id, provider.generation)


@dataclass(frozen=True)
class _Provider:
    """What a write of a provider's inventory needs of it."""

    id: int
    uuid: str
    generation: int


def _read_for_replace(
    conn: Connection, uuid: str, names: Collection[str]
) -> tuple[_Provider, dict[str, int], set[int]]:
    """The provider (NotFound if missing), the ids of the named classes that exist,
    and the classes of its inventory: one statement."""
    provider: _Provider | None = None
    found: dict[str, int] = {}
    existing: set[int] = set()
    params = {"uuid": uuid, "names": list(names) or [""]}
    for provider_id, generation, class_id, name in conn.execute(_FOR_REPLACE, params):
        if provider_id is not None:
            provider = _Provider(provider_id, uuid, generation)
        elif name is None:
            existing.add(class_id)
        elif name in names:  # exactly: MySQL's default collation ignores case
            found[name] = class_id
    if provider is None:
        raise errors.NotFound(missing_provider(uuid))
    return provider, found, existing


def _known(names: Collection[str], found: dict[str, int]) -> dict[str, int]:
    """``found``, after UnknownResourceClass for the first of ``names`` it lacks."""
    for name in names:
        if name not in found:
            raise UnknownResourceClass(f"No such resource class {name}.")
    return found


def write_inventories(
    conn: Connection,
    provider: ProviderKey,
    inventories: Collection[Inventory],
    *,
    keep_others: bool = False,
) -> None:
    """Write ``inventories`` and delete the provider's others (unless ``keep_others``).

    Neither checks the capacities nor swaps the generation: the caller does.
    Deleting inventory still allocated is InventoryInUse.  The class ids and
    the provider's current classes are one read; the new classes one insert
    on PostgreSQL.
    """
    names = [inv.resource_class for inv in inventories]
    wanted, existing = _classes_and_existing(conn, provider.id, names)
    _write(conn, provider, inventories, wanted, existing, keep_others=keep_others)


def _write(
    conn: Connection,
    provider: ProviderKey,
    inventories: Collection[Inventory],
    wanted: Mapping[str, int],
    existing: set[int],
    *,
    keep_others: bool,
) -> None:
    """:func:`write_inventories` once the class ids and current classes are known."""
    to_delete: set[int] = set() if keep_others else existing - set(wanted.values())
    if to_delete:
        _delete(conn, provider, to_delete)
    new: list[Inventory] = []
    for inv in inventories:
        class_id = wanted[inv.resource_class]
        if class_id in existing:
            _update(conn, provider, class_id, inv)
        else:
            new.append(inv)
    if conn.dialect.name != "postgresql":
        for inv in new:
            _insert(conn, provider, wanted[inv.resource_class], inv)
    elif new:
        _insert_many(conn, provider, wanted, new)


def _classes_and_existing(
    conn: Connection, provider_id: int, names: Collection[str]
) -> tuple[dict[str, int], set[int]]:
    """Ids of the named classes (UnknownResourceClass for the first unknown one),
    and the classes of the provider's inventory, in one read."""
    found: dict[str, int] = {}
    existing: set[int] = set()
    params = {"provider": provider_id, "names": list(names) or [""]}
    for class_id, name, held in conn.execute(_CLASSES_AND_EXISTING, params):
        if name in names:  # exactly: MySQL's default collation ignores case
            found[name] = class_id
        if held:
            existing.add(class_id)
    return _known(names, found), existing


def _insert_many(
    conn: Connection, provider: ProviderKey, class_ids: Mapping[str, int], new: list[Inventory]
) -> None:
    """PostgreSQL: insert the new classes in one statement; DuplicateInventory for the
    first one another writer inserted meanwhile."""
    rows = [(provider.id, class_ids[inv.resource_class], *inv.as_dict().values()) for inv in new]
    columns = list(zip(*rows, strict=True))
    params = {name: list(values) for name, values in zip(_INSERT_COLUMNS, columns, strict=True)}
    inserted = set(conn.execute(_INSERT_MANY, {**params, "now": utcnow()}).scalars())
    for inv in new:
        if class_ids[inv.resource_class] not in inserted:
            raise DuplicateInventory(
                f"Inventory for '{inv.resource_class}' on resource provider "
                f"'{provider.uuid}' already exists."
            )


def _insert_many_statement() -> Any:
    arrays = [bindparam(n, type_=postgresql.ARRAY(INV.c[n].type)) for n in _INSERT_COLUMNS]
    rows = func.unnest(*arrays).table_valued(*_INSERT_COLUMNS).render_derived()
    query = select(*(rows.c[n] for n in _INSERT_COLUMNS), bindparam("now", type_=DateTime()))
    return (
        postgresql.insert(INV)
        .from_select([*_INSERT_COLUMNS, "created_at"], query)
        .on_conflict_do_nothing()
        .returning(INV.c.resource_class_id)
    )


def _classes_and_existing_statement() -> Any:
    held = (INV.c.resource_class_id == RC.c.id) & (
        INV.c.resource_provider_id == bindparam("provider")
    )
    return (
        select(RC.c.id, RC.c.name, INV.c.resource_class_id.is_not(None))
        .select_from(RC.outerjoin(INV, held))
        .where(
            RC.c.name.in_(bindparam("names", expanding=True))
            | INV.c.resource_provider_id.is_not(None)
        )
    )


def _for_replace_statement() -> Any:
    """Three index lookups as one UNION ALL of (provider id, generation, class id, name):
    the provider by uuid; the classes by name; the classes of its inventory (no name).

    Separate lookups, not joins: a join's plan depends on statistics, and a
    stale estimate turned one into a scan of every inventory.
    """
    uuid: BindParameter[str] = bindparam("uuid")
    no_int, no_text = cast(null(), Integer), cast(null(), String)
    provider = select(RP.c.id, RP.c.generation, no_int, no_text).where(RP.c.uuid == uuid)
    named = select(no_int, no_int, RC.c.id, RC.c.name).where(
        RC.c.name.in_(bindparam("names", expanding=True))
    )
    held = (
        select(no_int, no_int, INV.c.resource_class_id, no_text)
        .select_from(INV.join(RP, RP.c.id == INV.c.resource_provider_id))
        .where(RP.c.uuid == uuid)
    )
    return union_all(provider, named, held)


# Built once: a statement object reused is not analysed again on every call.
_FOR_REPLACE = _for_replace_statement()
_INSERT_COLUMNS = ("resource_provider_id", "resource_class_id", *FIELDS)
_INSERT_MANY = _insert_many_statement()
_INSERT = insert(INV)
_CLASSES_AND_EXISTING = _classes_and_existing_statement()
