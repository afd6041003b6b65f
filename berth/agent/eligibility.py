"""Can a host take one instance of a queue right now?  Each check returns a reason or None.

The checks run in order, cheapest first; the first refusal wins, so a
caller can count why hosts were left out ("612 lack VCPU").  Capacity is
Placement's rule: ``used + amount <= (total - reserved) * allocation_ratio``,
with the amount inside ``min_unit..max_unit`` and a multiple of ``step_size``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set

from berth.agent.model import Host

# Constant reasons, for counters and logs.
MISSING_TRAIT = "missing required trait"
FORBIDDEN_TRAIT = "has forbidden trait"
NO_INVENTORY = "no inventory of a class"
BAD_UNIT = "amount outside min_unit/max_unit/step_size"
NO_ROOM = "not enough free capacity"

Check = Callable[[Host, Mapping[str, int], Set[str], Set[str]], str | None]


def traits_check(
    host: Host, resources: Mapping[str, int], required: Set[str], forbidden: Set[str]
) -> str | None:
    """Every required trait present, no forbidden one."""
    if not required <= host.traits:
        return MISSING_TRAIT
    if not forbidden.isdisjoint(host.traits):
        return FORBIDDEN_TRAIT
    return None


def inventory_check(
    host: Host, resources: Mapping[str, int], required: Set[str], forbidden: Set[str]
) -> str | None:
    """Every class asked for is in the inventory, in an amount the inventory allows."""
    for rc, amount in resources.items():
        inv = host.inventories.get(rc)
        if inv is None:
            return NO_INVENTORY
        if amount < inv.min_unit or amount > inv.max_unit or amount % inv.step_size:
            return BAD_UNIT
    return None


def capacity_check(
    host: Host, resources: Mapping[str, int], required: Set[str], forbidden: Set[str]
) -> str | None:
    """Free capacity covers one instance in every class."""
    for rc, amount in resources.items():
        inv = host.inventories[rc]
        if host.used.get(rc, 0) + amount > inv.capacity:
            return NO_ROOM
    return None


CHECKS: tuple[Check, ...] = (traits_check, inventory_check, capacity_check)


def refusal(
    host: Host,
    resources: Mapping[str, int],
    required: Set[str] = frozenset(),
    forbidden: Set[str] = frozenset(),
) -> str | None:
    """Why ``host`` cannot take one instance of ``resources`` now (None: it can)."""
    for check in CHECKS:
        reason = check(host, resources, required, forbidden)
        if reason is not None:
            return reason
    return None


def instances_that_fit(host: Host, resources: Mapping[str, int], limit: int) -> int:
    """How many instances of ``resources`` the host's free capacity holds (at most ``limit``;
    an eligible host holds at least one)."""
    counts = [
        int((host.inventories[rc].capacity - host.used.get(rc, 0)) // amount)
        for rc, amount in resources.items()
        if amount > 0
    ]
    return max(0, min([limit, *counts]))
