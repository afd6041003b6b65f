"""Does one provider qualify for a group?  Checked in memory, from the universe.

This is the in-memory :class:`~berth.candidates.engine.GroupMatcher`; the SQL
path has its own, backed by the sets its queries return.
"""

from __future__ import annotations

from berth.candidates.model import Provider
from berth.candidates.plan import GroupPlan


class MemoryMatcher:
    """Capacity, traits, aggregates and tree of single providers for one group."""

    __slots__ = ("group",)

    def __init__(self, group: GroupPlan) -> None:
        self.group = group

    def fits(self, p: Provider, rc: int, amount: int) -> bool:
        """``p`` has room for ``amount`` of ``rc`` in one allocation."""
        inv = p.inventories.get(rc)
        return inv is not None and inv.fits(amount)

    def matches(self, p: Provider) -> bool:
        """``p`` alone satisfies every part of the group."""
        group = self.group
        inventories = p.inventories
        for rc, amount in group.resources:
            inv = inventories.get(rc)
            if inv is None or not inv.fits(amount):
                return False
        if group.in_tree_root is not None and p.root_id != group.in_tree_root:
            return False
        traits = p.traits
        if not traits.isdisjoint(group.forbidden):
            return False
        for any_of in group.required:
            if traits.isdisjoint(any_of):
                return False
        aggs = p.aggregates
        if not aggs.isdisjoint(group.forbidden_aggs):
            return False
        return all(not aggs.isdisjoint(any_of) for any_of in group.member_of)
