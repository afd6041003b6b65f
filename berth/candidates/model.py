"""Plain data for the provider universe the candidates engine searches.

A :class:`Universe` holds providers (inventories with usage, traits,
aggregates, parent and root) plus the lookup structures the engine needs:
tree members per root, providers per resource class / trait / aggregate, and
which providers share their inventory (trait ``MISC_SHARES_VIA_AGGREGATE``)
with which aggregates.  The in-memory index keeps one per worker up to date;
the SQL path builds a small one per request.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

SHARING_TRAIT = "MISC_SHARES_VIA_AGGREGATE"


class Inventory:
    """One inventory record of a provider, with its current usage."""

    __slots__ = (
        "allocation_ratio",
        "capacity",
        "max_unit",
        "min_unit",
        "reserved",
        "step_size",
        "total",
        "used",
    )

    def __init__(
        self,
        total: int,
        reserved: int,
        min_unit: int,
        max_unit: int,
        step_size: int,
        allocation_ratio: float,
        used: int = 0,
    ) -> None:
        self.total = total
        self.reserved = reserved
        self.min_unit = min_unit
        self.max_unit = max_unit
        self.step_size = step_size
        self.allocation_ratio = allocation_ratio
        self.used = used
        self.capacity = int((total - reserved) * allocation_ratio)

    def fits(self, amount: int) -> bool:
        """True when ``amount`` more can be allocated in one allocation."""
        return (
            self.used + amount <= self.capacity
            and self.min_unit <= amount <= self.max_unit
            and amount % self.step_size == 0
        )


class Provider:
    """A resource provider as the engine sees it."""

    __slots__ = (
        "aggregates",
        "id",
        "inventories",
        "name",
        "parent_id",
        "rendered",
        "root_id",
        "traits",
        "uuid",
    )

    def __init__(
        self,
        id: int,
        uuid: str,
        parent_id: int | None,
        root_id: int,
        inventories: dict[int, Inventory] | None = None,
        traits: frozenset[int] = frozenset(),
        aggregates: frozenset[int] = frozenset(),
        name: str | None = None,
    ) -> None:
        self.id = id
        self.uuid = uuid
        self.name = name  # for answers meant for people (the scheduler's selections)
        self.parent_id = parent_id
        self.root_id = root_id
        self.inventories: dict[int, Inventory] = inventories if inventories is not None else {}
        self.traits = traits
        self.aggregates = aggregates
        # Summaries already rendered, per output shape (a provider never changes:
        # a changed provider is a new object).
        self.rendered: dict[object, dict[str, object]] = {}


def _add(index: dict[int, set[int]], keys: Iterable[int], pid: int) -> None:
    for key in keys:
        index.setdefault(key, set()).add(pid)


def _discard(index: dict[int, set[int]], keys: Iterable[int], pid: int) -> None:
    for key in keys:
        members = index.get(key)
        if members is not None:
            members.discard(pid)
            if not members:
                del index[key]


class RootCounts:
    """Per key (class, trait or aggregate): the roots of trees holding it, sorted."""

    def __init__(self) -> None:
        self.counts: dict[int, dict[int, int]] = {}
        self.sorted: dict[int, list[int]] = {}

    def add(self, keys: Iterable[int], root: int) -> None:
        """Count one more provider of tree ``root`` for each key."""
        for key in keys:
            counts = self.counts.setdefault(key, {})
            if root in counts:
                counts[root] += 1
            else:
                counts[root] = 1
                bisect.insort(self.sorted.setdefault(key, []), root)

    def remove(self, keys: Iterable[int], root: int) -> None:
        """Count one provider of tree ``root`` less for each key."""
        for key in keys:
            counts = self.counts[key]
            counts[root] -= 1
            if counts[root] == 0:
                del counts[root]
                roots = self.sorted[key]
                del roots[bisect.bisect_left(roots, root)]
                if not roots:
                    del self.counts[key], self.sorted[key]

    @classmethod
    def build(cls, pairs: Iterable[tuple[Iterable[int], int]]) -> RootCounts:
        """Counts for many (keys, root) pairs at once."""
        out = cls()
        counts = out.counts
        for keys, root in pairs:
            for key in keys:
                per_key = counts.get(key)
                if per_key is None:
                    counts[key] = {root: 1}
                else:
                    per_key[root] = per_key.get(root, 0) + 1
        out.sorted = {key: sorted(per_key) for key, per_key in counts.items()}
        return out

    def roots(self, key: int) -> list[int]:
        """Sorted roots of the trees where some provider holds ``key``."""
        return self.sorted.get(key, [])


class Universe:
    """Providers plus the indexes the engine walks; mutated only via add/remove."""

    def __init__(self, sharing_trait: int | None) -> None:
        self.sharing_trait = sharing_trait
        self.providers: dict[int, Provider] = {}
        self.by_uuid: dict[str, int] = {}
        self.members: dict[int, list[int]] = {}
        self.by_rc: dict[int, set[int]] = {}
        self.by_trait: dict[int, set[int]] = {}
        self.by_agg: dict[int, set[int]] = {}
        self.sharing: set[int] = set()
        self.sharing_by_agg: dict[int, set[int]] = {}
        self.rc_roots = RootCounts()
        self.trait_roots = RootCounts()
        self.agg_roots = RootCounts()
        self.nested = 0
        self.roots: list[int] = []

    @classmethod
    def build(cls, sharing_trait: int | None, providers: Iterable[Provider]) -> Universe:
        """A universe over ``providers``, its indexes built in bulk."""
        u = cls(sharing_trait)
        listed = sorted(providers, key=lambda p: p.id)
        for p in listed:
            u.providers[p.id] = p
            u.by_uuid[p.uuid] = p.id
            u.members.setdefault(p.root_id, []).append(p.id)
            if p.parent_id is not None:
                u.nested += 1
            for key in p.inventories:
                u.by_rc.setdefault(key, set()).add(p.id)
            for key in p.traits:
                u.by_trait.setdefault(key, set()).add(p.id)
            for key in p.aggregates:
                u.by_agg.setdefault(key, set()).add(p.id)
            if sharing_trait in p.traits:
                u.sharing.add(p.id)
                _add(u.sharing_by_agg, p.aggregates, p.id)
        u.roots = [p.id for p in listed if p.id == p.root_id]
        u.rc_roots = RootCounts.build((p.inventories, p.root_id) for p in listed)
        u.trait_roots = RootCounts.build((p.traits, p.root_id) for p in listed)
        u.agg_roots = RootCounts.build((p.aggregates, p.root_id) for p in listed)
        return u

    @property
    def has_trees(self) -> bool:
        """True when some provider has a parent (anywhere)."""
        return self.nested > 0

    def add(self, p: Provider) -> None:
        """Insert a provider (its id must not be present)."""
        self.providers[p.id] = p
        self.by_uuid[p.uuid] = p.id
        bisect.insort(self.members.setdefault(p.root_id, []), p.id)
        if p.id == p.root_id:
            bisect.insort(self.roots, p.id)
        if p.parent_id is not None:
            self.nested += 1
        _add(self.by_rc, p.inventories, p.id)
        _add(self.by_trait, p.traits, p.id)
        _add(self.by_agg, p.aggregates, p.id)
        self.rc_roots.add(p.inventories, p.root_id)
        self.trait_roots.add(p.traits, p.root_id)
        self.agg_roots.add(p.aggregates, p.root_id)
        if self.sharing_trait in p.traits:
            self.sharing.add(p.id)
            _add(self.sharing_by_agg, p.aggregates, p.id)

    def remove(self, pid: int) -> Provider | None:
        """Take a provider out; returns it (None when it was not there)."""
        p = self.providers.pop(pid, None)
        if p is None:
            return None
        del self.by_uuid[p.uuid]
        tree = self.members[p.root_id]
        del tree[bisect.bisect_left(tree, pid)]
        if not tree:
            del self.members[p.root_id]
        if p.id == p.root_id:
            del self.roots[bisect.bisect_left(self.roots, pid)]
        if p.parent_id is not None:
            self.nested -= 1
        _discard(self.by_rc, p.inventories, pid)
        _discard(self.by_trait, p.traits, pid)
        _discard(self.by_agg, p.aggregates, pid)
        self.rc_roots.remove(p.inventories, p.root_id)
        self.trait_roots.remove(p.traits, p.root_id)
        self.agg_roots.remove(p.aggregates, p.root_id)
        if pid in self.sharing:
            self.sharing.discard(pid)
            _discard(self.sharing_by_agg, p.aggregates, pid)
        return p

    def anchors_of(self, pid: int) -> set[int]:
        """Roots of every tree with a provider in an aggregate of ``pid``."""
        providers = self.providers
        return {
            providers[member].root_id
            for agg in providers[pid].aggregates
            for member in self.by_agg.get(agg, ())
        }

    def sharing_at(self, anchor: int) -> list[int]:
        """Sharing providers outside tree ``anchor`` that share an aggregate with it."""
        if not self.sharing_by_agg:
            return []
        found: set[int] = set()
        providers = self.providers
        for member in self.members.get(anchor, ()):
            for agg in providers[member].aggregates:
                found.update(self.sharing_by_agg.get(agg, ()))
        return sorted(s for s in found if providers[s].root_id != anchor)

    def ancestors(self, pid: int) -> set[int]:
        """``pid`` and every provider above it."""
        out = {pid}
        parent = self.providers[pid].parent_id
        while parent is not None and parent not in out:
            out.add(parent)
            parent = self.providers[parent].parent_id
        return out
