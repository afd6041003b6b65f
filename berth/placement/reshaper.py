"""The reshaper: move inventory and allocations between providers atomically.

In one transaction (retried like any allocation write)::

    check     every provider in ``inventories`` exists, at the generation sent
    prepare   consumers and providers of the allocations (as any write)
    interim   each provider's inventory becomes old + new classes, so that
              allocations can move before classes disappear
    apply     replace the allocations, checked against the interim inventory
    final     each provider's inventory becomes exactly what was sent
              (a class still allocated cannot go: InventoryInUse)
    swap      bump generations as the reference does: per inventory provider
              one each for interim (when not emptied), allocations, final

Inventories are written by :func:`berth.placement.inventories.write_inventories`,
allocations by the stages of :mod:`berth.placement.write.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from berth.db.engine import Database
from berth.placement import errors
from berth.placement import inventories as inv
from berth.placement.inventories import Inventory
from berth.placement.providers import ProviderRow, find_provider
from berth.placement.write import generations, replace
from berth.placement.write.replace import ConsumerAllocations
from berth.placement.write.retry import atomically


@dataclass(frozen=True)
class ProviderInventories:
    """The inventory wanted for one provider, at the generation the client saw."""

    uuid: str
    generation: int
    inventories: list[Inventory]


def reshape(
    db: Database,
    inventories: list[ProviderInventories],
    requests: list[ConsumerAllocations],
    *,
    attempts: int,
) -> None:
    """Replace inventories and allocations together, or change nothing."""
    atomically(db, lambda conn: _once(conn, inventories, requests), attempts, operation="reshaper")


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
            raise errors.StaleGeneration(
                f"resource provider generation conflict for provider {wanted.uuid}: "
                f"actual: {row.generation}, given: {wanted.generation}"
            )
        rows.append(row)
    return rows


def _once(
    conn: Connection, inventories: list[ProviderInventories], requests: list[ConsumerAllocations]
) -> None:
    rows = _providers(conn, inventories)
    plan = replace.prepare(conn, requests, check_generation=True)
    for row, wanted in zip(rows, inventories, strict=True):
        if wanted.inventories:
            _write_inventories(conn, row, wanted.inventories, interim=True)
    plan.capacities = None  # the interim inventories changed what prepare read
    touched = dict(replace.apply(conn, plan))
    times: dict[int, int] = dict.fromkeys(touched, 1)
    for row, wanted in zip(rows, inventories, strict=True):
        _write_inventories(conn, row, wanted.inventories, interim=False)
        touched[row.id] = wanted.generation
        times[row.id] = times.get(row.id, 0) + 1 + (1 if wanted.inventories else 0)
    generations.bump_all(conn, touched, times)
    replace.finish(conn, plan)


def _write_inventories(
    conn: Connection, provider: ProviderRow, wanted: list[Inventory], *, interim: bool
) -> None:
    """Make the provider's inventory ``wanted`` (``interim``: keep its other classes).

    A class another writer added or removed meanwhile: run the reshape again.
    """
    try:
        inv.write_inventories(conn, provider, wanted, keep_others=interim)
    except (inv.DuplicateInventory, inv.InventoryNotFound) as exc:
        raise errors.ConcurrentUpdate(exc.message) from None
