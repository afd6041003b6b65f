"""The reshaper: move inventory and allocations between providers atomically.

In one transaction (retried like any allocation write)::

    check     every provider in ``inventories`` exists, at the generation sent
    prepare   consumers and providers of the allocations (as any write)
    interim   each provider's inventory becomes old + new classes, so that
              allocations can move before classes disappear
    apply     replace the allocations, checked against the interim inventory
    final     each provider's inventory becomes exactly what was sent
              (a class still allocated cannot go: InventoryInUse)
    claim     bump generations as the reference does: per inventory provider
              one each for interim (when not emptied), allocations, final

"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update

from berth.db import tables as t
from berth.db.engine import Database
from berth.placement import allocations, errors
from berth.placement.allocations import ConsumerAllocations
from berth.placement.consumers import GenerationMismatch
from berth.placement.lookups import ProviderRow, ResourceClassCache, find_provider, utcnow

INV = t.inventories
MAX_INT = 0x7FFFFFFF
INVENTORY_DEFAULTS: dict[str, int | float] = {
    "reserved": 0,
    "min_unit": 1,
    "max_unit": MAX_INT,
    "step_size": 1,
    "allocation_ratio": 1.0,
}
FIELDS = ("total", "reserved", "min_unit", "max_unit", "step_size", "allocation_ratio")


class InventoryInUse(errors.Conflict):
    """Inventory that still has allocations cannot be removed."""

    default_code = errors.INVENTORY_INUSE


@dataclass(frozen=True)
class ProviderInventories:
    """The inventory wanted for one provider, at the generation the client saw."""

    uuid: str
    generation: int
    inventories: dict[str, dict[str, int | float]]  # class -> fields (defaults filled)


def with_defaults(record: dict[str, int | float]) -> dict[str, int | float]:
    """An inventory record with the reference's defaults for omitted fields."""
    return {**INVENTORY_DEFAULTS, **record}


def reshape(
    db: Database,
    inventories: list[ProviderInventories],
    requests: list[ConsumerAllocations],
    *,
    attempts: int,
) -> None:
    """Replace inventories and allocations together, or change nothing."""
    allocations.run_atomically(db, lambda conn: _once(conn, inventories, requests), attempts)


def _providers(conn: Connection, inventories: list[ProviderInventories]) -> list[ProviderRow]:
    rows = []
    for wanted in inventories:
        row = find_provider(conn, wanted.uuid)
        if row is None:
            raise errors.InvalidInput(
                f"Resource provider {wanted.uuid} in inventories not found: "
                f"No resource provider with uuid {wanted.uuid} found",
                code=errors.RESOURCE_PROVIDER_NOT_FOUND,
            )
        if row.generation != wanted.generation:
            raise GenerationMismatch(
                f"resource provider generation conflict for provider {wanted.uuid}: "
                f"actual: {row.generation}, given: {wanted.generation}"
            )
        rows.append(row)
    return rows


def _once(
    conn: Connection, inventories: list[ProviderInventories], requests: list[ConsumerAllocations]
) -> None:
    rows = _providers(conn, inventories)
    plan = allocations.prepare(conn, requests, check_generation=True)
    classes = ResourceClassCache(conn)
    for row, wanted in zip(rows, inventories, strict=True):
        if wanted.inventories:
            _set_inventory(conn, classes, row, wanted.inventories, interim=True)
    touched = dict(allocations.apply(conn, plan, classes))
    times: dict[int, int] = dict.fromkeys(touched, 1)
    for row, wanted in zip(rows, inventories, strict=True):
        _set_inventory(conn, classes, row, wanted.inventories, interim=False)
        touched[row.id] = wanted.generation
        times[row.id] = times.get(row.id, 0) + 1 + (1 if wanted.inventories else 0)
    allocations.claim(conn, touched, times)
    allocations.finish(conn, plan)


def _set_inventory(
    conn: Connection,
    classes: ResourceClassCache,
    provider: ProviderRow,
    wanted: dict[str, dict[str, int | float]],
    *,
    interim: bool,
) -> None:
    """Make the provider's inventory ``wanted`` (``interim``: keep other classes)."""
    wanted_ids = {classes.id_of(name): record for name, record in wanted.items()}
    current = set(
        conn.execute(
            select(INV.c.resource_class_id).where(INV.c.resource_provider_id == provider.id)
        ).scalars()
    )
    if not interim:
        _delete_unwanted(conn, classes, provider, current - set(wanted_ids))
    now = utcnow()
    for rc_id, record in wanted_ids.items():
        values = {name: record[name] for name in FIELDS}
        if rc_id in current:
            conn.execute(
                update(INV)
                .where(INV.c.resource_provider_id == provider.id, INV.c.resource_class_id == rc_id)
                .values({**values, "updated_at": now})
            )
        else:
            conn.execute(
                insert(INV).values(
                    {
                        **values,
                        "resource_provider_id": provider.id,
                        "resource_class_id": rc_id,
                        "created_at": now,
                    }
                )
            )


def _delete_unwanted(
    conn: Connection, classes: ResourceClassCache, provider: ProviderRow, doomed: set[int]
) -> None:
    """Delete inventory of classes ``doomed``; InventoryInUse if any is allocated."""
    if not doomed:
        return
    A = t.allocations
    in_use = conn.execute(
        select(A.c.resource_class_id)
        .where(A.c.resource_provider_id == provider.id, A.c.resource_class_id.in_(doomed))
        .group_by(A.c.resource_class_id)
        .order_by(A.c.resource_class_id)
    ).scalars()
    names = [classes.name_of(rc_id) for rc_id in in_use]
    if names:
        raise InventoryInUse(
            f"Inventory for '{', '.join(names)}' on resource provider '{provider.uuid}' in use."
        )
    conn.execute(
        delete(INV).where(
            INV.c.resource_provider_id == provider.id, INV.c.resource_class_id.in_(doomed)
        )
    )
