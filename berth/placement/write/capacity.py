"""What fits: the capacity rule, the capacity read, and the refusals of every write.

A (provider, class) pair can take an amount when the amount respects the
inventory's ``min_unit``/``max_unit``/``step_size`` and the usage after the
write stays within ``(total - reserved) * allocation_ratio``
(:meth:`Capacity.refusal`).  A :class:`Ledger` adds up what a write puts on
each pair and judges every amount as it is added, against the inventory
and usage read in the writing transaction (:func:`read`,
:func:`read_by_uuid`).  Inventory that allocations use cannot be removed
(:func:`check_not_in_use`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, func, select

from berth.db.lists import one_of
from berth.db.tables import ALLOC, INV, RC, RP
from berth.placement import errors

Pair = tuple[int, int]  # (provider id, resource class id)


class InvalidAllocation(errors.Conflict):
    """The allocations do not fit the inventory (capacity, constraints, none)."""


class InventoryInUse(errors.Conflict):
    """Allocations consume inventory that a request would remove."""

    default_code = errors.INVENTORY_INUSE


def missing_provider(provider_uuid: str) -> str:
    """The refusal of an allocation on a provider that does not exist."""
    return f"Allocation for resource provider '{provider_uuid}' that does not exist."


def inventory_invalid(resource_class: str, provider_uuid: str) -> InvalidAllocation:
    """The refusal of an allocation where the provider has no such inventory."""
    return InvalidAllocation(
        f"Inventory for '{resource_class}' on resource provider '{provider_uuid}' invalid."
    )


def unable(resource_class: str, provider_uuid: str, why: str) -> InvalidAllocation:
    """The refusal of an amount (``why``: from :meth:`Capacity.refusal`)."""
    return InvalidAllocation(
        f"Unable to create allocation for '{resource_class}' on resource provider "
        f"'{provider_uuid}'. The requested amount would {why}."
    )


@dataclass(frozen=True)
class Capacity:
    """One inventory and the usage on it, as read in the writing transaction."""

    total: int
    reserved: int
    min_unit: int
    max_unit: int
    step_size: int
    allocation_ratio: float
    used: int

    @classmethod
    def of(cls, row: Any) -> Capacity:
        """The capacity of one row of the capacity read."""
        return cls(
            row.total,
            row.reserved,
            row.min_unit,
            row.max_unit,
            row.step_size,
            row.allocation_ratio,
            int(row.used or 0),
        )

    def refusal(self, amount: int, added: int, held: int = 0) -> str | None:
        """Why ``amount`` does not fit (None: it does), the rule of every write.

        ``added`` is what the write puts on this inventory in all (``amount``
        included), ``held`` what the writing consumers held on it before;
        over capacity is tolerated only if the write does not add to it.
        """
        if not (self.min_unit <= amount <= self.max_unit) or amount % self.step_size:
            return "violate inventory constraints"
        capacity = (self.total - self.reserved) * self.allocation_ratio
        if self.used + added > capacity and added > held:
            return "exceed the capacity"
        return None


@dataclass
class Ledger:
    """What a write puts on each (provider, class), every amount judged as it is added.

    Amounts of one request are *pending* until :meth:`settle` counts them
    (accepted) or forgets them (refused); later requests are judged on top
    of the accepted ones.  ``held``: what the writing consumers held before.
    """

    capacities: Mapping[Pair, Capacity]
    held: Mapping[Pair, int] = field(default_factory=dict)
    accepted: defaultdict[Pair, int] = field(default_factory=lambda: defaultdict(int))
    pending: defaultdict[Pair, int] = field(default_factory=lambda: defaultdict(int))

    def add(
        self, provider: tuple[int, str], class_id: int | None, resource_class: str, amount: int
    ) -> InvalidAllocation | None:
        """Add ``amount`` of a class on ``provider`` (id, uuid); the refusal if it does not fit."""
        provider_id, provider_uuid = provider
        if amount == 0:
            return None
        cap = None if class_id is None else self.capacities.get((provider_id, class_id))
        if cap is None or class_id is None:
            return inventory_invalid(resource_class, provider_uuid)
        pair = (provider_id, class_id)
        self.pending[pair] += amount
        why = cap.refusal(amount, self.accepted[pair] + self.pending[pair], self.held.get(pair, 0))
        return None if why is None else unable(resource_class, provider_uuid, why)

    def settle(self, accept: bool) -> None:
        """End the request being judged: count its amounts (``accept``) or forget them."""
        if accept:
            for pair, amount in self.pending.items():
                self.accepted[pair] += amount
        self.pending.clear()


# An inventory's numbers: the columns the capacity rule reads.
LIMITS = ("total", "reserved", "min_unit", "max_unit", "step_size", "allocation_ratio")


def _used() -> Any:
    """What the allocations hold of the outer row's inventory: a correlated subquery.

    Per (provider, class) row and not one grouped subquery joined in: with
    equality on both leading columns of the (provider, class, used) index,
    every planner takes that index whatever its statistics say.  A grouped
    subquery over the providers let PostgreSQL, with statistics older than
    the allocations (autovacuum off or behind), read every allocation of a
    class, or the whole table, per claim: the capacity read grew with the
    cloud (0.7 ms, then 3.4 to 5.4 ms once 20,000 allocations were written
    after the last ANALYZE).
    """
    return (
        select(func.sum(ALLOC.c.used))
        .where(
            ALLOC.c.resource_provider_id == INV.c.resource_provider_id,
            ALLOC.c.resource_class_id == INV.c.resource_class_id,
        )
        .scalar_subquery()
        .label("used")
    )


def _query(providers: ColumnElement[Any]) -> Select[Any]:
    """Inventory, usage, provider uuid and generation per (provider, class): one query.

    ``providers``: the condition on ``resource_providers`` that picks them;
    the classes are the list bound as ``classes``.
    """
    return (
        select(
            INV.c.resource_provider_id,
            INV.c.resource_class_id,
            RP.c.uuid,
            RP.c.generation,
            *(INV.c[name] for name in LIMITS),
            _used(),
        )
        .select_from(INV.join(RP, RP.c.id == INV.c.resource_provider_id))
        .where(providers, one_of(INV.c.resource_class_id, "classes"))
    )


def read(
    conn: Connection, provider_ids: Collection[int], class_ids: Collection[int]
) -> dict[Pair, Capacity]:
    """Inventory and current usage per (provider, class), by provider id."""
    if not provider_ids or not class_ids:
        return {}
    params = {"providers": sorted(provider_ids), "classes": sorted(class_ids)}
    rows = conn.execute(_BY_ID, params)
    return {(r.resource_provider_id, r.resource_class_id): Capacity.of(r) for r in rows}


def read_current(
    conn: Connection, provider_ids: Collection[int], class_ids: Collection[int]
) -> tuple[dict[Pair, Capacity], dict[int, int]]:
    """:func:`read`, and the providers' generations (id -> generation) read with it."""
    caps: dict[Pair, Capacity] = {}
    generations: dict[int, int] = {}
    if provider_ids and class_ids:
        params = {"providers": sorted(provider_ids), "classes": sorted(class_ids)}
        for r in conn.execute(_BY_ID, params):
            caps[(r.resource_provider_id, r.resource_class_id)] = Capacity.of(r)
            generations[r.resource_provider_id] = r.generation
    return caps, generations


def read_by_uuid(
    conn: Connection, provider_uuids: Collection[str], class_ids: Collection[int]
) -> tuple[dict[str, tuple[int, int]], dict[Pair, Capacity]]:
    """Providers (uuid -> id, generation) with inventory of the classes, and its capacities.

    A provider without inventory of any of the classes is absent.
    """
    providers: dict[str, tuple[int, int]] = {}
    caps: dict[Pair, Capacity] = {}
    if not provider_uuids or not class_ids:
        return providers, caps
    params = {"uuids": sorted(provider_uuids), "classes": sorted(class_ids)}
    for row in conn.execute(_BY_UUID, params):
        providers[row.uuid] = (row.resource_provider_id, row.generation)
        caps[(row.resource_provider_id, row.resource_class_id)] = Capacity.of(row)
    return providers, caps


@dataclass
class RequestRead:
    """What one read tells a write about the providers and classes its request names."""

    providers: dict[str, tuple[int, int]]  # uuid -> (id, generation), every one that exists
    capacities: dict[Pair, Capacity]  # their inventories of the named classes, with usage
    class_ids: dict[str, int]  # name -> id of the named classes some of them have


def read_request(
    conn: Connection, provider_uuids: Collection[str], class_names: Collection[str]
) -> RequestRead:
    """Providers by uuid, with their inventory and usage of the named classes: one query.

    A provider without inventory of any of the classes is still returned
    (with no capacities), so that a missing provider can be told apart.
    """
    out = RequestRead({}, {}, {})
    if not provider_uuids:
        return out
    params = {"uuids": sorted(provider_uuids), "names": sorted(class_names) or [""]}
    for row in conn.execute(_BY_REQUEST, params):
        out.providers[row.uuid] = (row.id, row.generation)
        if row.resource_class_id is not None:
            out.capacities[(row.id, row.resource_class_id)] = Capacity.of(row)
            out.class_ids[row.name] = row.resource_class_id
    return out


def check_not_in_use(
    conn: Connection, provider_id: int, provider_uuid: str, class_ids: Collection[int]
) -> None:
    """InventoryInUse unless no allocation on the provider uses any of ``class_ids``."""
    if not class_ids:
        return
    used = conn.execute(
        select(RC.c.name)
        .select_from(ALLOC.join(RC, ALLOC.c.resource_class_id == RC.c.id))
        .where(
            ALLOC.c.resource_provider_id == provider_id,
            ALLOC.c.resource_class_id.in_(list(class_ids)),
        )
        .group_by(ALLOC.c.resource_class_id, RC.c.name)
        .order_by(ALLOC.c.resource_class_id)
    ).all()
    if used:
        names = ", ".join(row.name for row in used)
        raise InventoryInUse(
            f"Inventory for '{names}' on resource provider '{provider_uuid}' in use."
        )


# Built once: a statement object reused is not analysed again on every call.
_BY_ID = _query(one_of(RP.c.id, "providers"))
_BY_UUID = _query(one_of(RP.c.uuid, "uuids"))


def _by_request() -> Select[Any]:
    """Providers named by uuid LEFT JOIN their inventory and usage of the named classes."""
    classes = select(RC.c.id).where(one_of(RC.c.name, "names"))
    on_inventory = (INV.c.resource_provider_id == RP.c.id) & INV.c.resource_class_id.in_(classes)
    return (
        select(
            RP.c.uuid,
            RP.c.id,
            RP.c.generation,
            INV.c.resource_class_id,
            RC.c.name,
            *(INV.c[name] for name in LIMITS),
            _used(),
        )
        .select_from(
            RP.outerjoin(INV, on_inventory).outerjoin(RC, RC.c.id == INV.c.resource_class_id)
        )
        .where(one_of(RP.c.uuid, "uuids"))
    )


_BY_REQUEST = _by_request()
