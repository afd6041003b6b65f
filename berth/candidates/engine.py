"""From per-group matching providers to allocation candidates, lazily.

Every candidate is anchored at the root of one provider tree.  At an anchor
each request group gets its options: the unsuffixed group may take each
resource class from a different provider of the tree or from a sharing
provider tied to the tree by an aggregate; a suffixed group takes all of its
resources from one such provider.  The groups' choices are combined depth
first (one *slot* per class of the unsuffixed group, one per suffixed group),
pruning as soon as a partial choice over-commits a provider or breaks
``group_policy=isolate``.  Candidates come out one at a time, so a ``limit``
stops the search instead of trimming a finished list.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from berth.candidates.model import Provider, Universe
from berth.candidates.plan import GroupPlan, Plan


class GroupMatcher(Protocol):
    """Whether single providers qualify for one group (memory or SQL backed)."""

    def fits(self, p: Provider, rc: int, amount: int) -> bool:
        """``p`` can take ``amount`` of ``rc`` (unsuffixed group, per class)."""

    def matches(self, p: Provider) -> bool:
        """``p`` alone satisfies the whole suffixed group."""


class Candidate:
    """One allocation request: amounts per (provider, class) and group mappings."""

    __slots__ = ("amounts", "mappings")

    def __init__(
        self, amounts: dict[tuple[int, int], int], mappings: dict[str, frozenset[int]]
    ) -> None:
        self.amounts = amounts
        self.mappings = mappings

    def key(self) -> tuple[frozenset[tuple[tuple[int, int], int]], frozenset[object]]:
        """Identity for de-duplication (the same allocation via two anchors)."""
        return frozenset(self.amounts.items()), frozenset(self.mappings.items())


class _Slot:
    """One decision: a provider for one class ('' group) or for one suffixed group."""

    __slots__ = ("closes_group", "group", "options", "resources")

    def __init__(
        self, group: int, resources: Sequence[tuple[int, int]], options: list[Provider]
    ) -> None:
        self.group = group
        self.resources = resources
        self.options = options
        self.closes_group = True


class Search:
    """The candidate search for one request over one universe."""

    def __init__(
        self,
        universe: Universe,
        plan: Plan,
        matchers: Sequence[GroupMatcher],
        cap: int = -1,
    ) -> None:
        self.u = universe
        self.plan = plan
        self.matchers = matchers
        self.cap = cap
        self.exclude_nested = not plan.nested_aware and universe.has_trees
        self._by_class = [sorted(group.resources) for group in plan.groups]
        self.built = 0
        self._seen: set[object] = set()
        # Without sharing providers every candidate lies in its anchor's tree, and one
        # anchor never yields the same candidate twice: no de-duplication needed.
        self._dedupe = bool(universe.sharing)
        classes = [rc for group in plan.groups for rc, _ in group.resources]
        self._overlap = len(set(classes)) < len(classes)
        granular = sum(1 for group in plan.groups if group.use_same_provider)
        self._alone_possible = not (plan.isolate and granular > 1)
        self._plain = [_plain(group) for group in plan.groups]

    def run(self, anchors: Iterable[int]) -> Iterator[Candidate]:
        """Candidates anchored at each of ``anchors`` in turn (unique, capped)."""
        providers = self.u.providers
        for anchor in anchors:
            if not self._anchor_ok(anchor):
                continue
            members = self.u.members.get(anchor, ())
            shared = self.u.sharing_at(anchor) if self.u.sharing else []
            found: Iterable[Candidate]
            if len(members) == 1 and not shared:
                # The common case, a lone compute node: no combinations to try.
                alone = self._alone(providers[anchor])
                found = (alone,) if alone is not None else ()
            else:
                slots = self._slots(
                    anchor, [providers[pid] for pid in members], [providers[s] for s in shared]
                )
                if slots is None:
                    continue
                found = self._combine(slots)
            for candidate in found:
                if self._dedupe:
                    key = candidate.key()
                    if key in self._seen:
                        continue
                    self._seen.add(key)
                self.built += 1
                if not (self.exclude_nested and self._spans_tree(candidate)):
                    yield candidate
                if 0 <= self.cap <= self.built:
                    return

    def _anchor_ok(self, anchor: int) -> bool:
        p = self.u.providers.get(anchor)
        if p is None or p.parent_id is not None:
            return False
        plan = self.plan
        return plan.root_required <= p.traits and p.traits.isdisjoint(plan.root_forbidden)

    # -- options per group at one anchor -------------------------------------------------

    def _alone(self, p: Provider) -> Candidate | None:
        """Every group from the one provider of a single-provider tree."""
        if not self._alone_possible:
            return None
        totals: dict[tuple[int, int], int] = {}
        pid = p.id
        for index, group in enumerate(self.plan.groups):
            matcher = self.matchers[index]
            if group.use_same_provider:
                if not matcher.matches(p):
                    return None
            elif not self._alone_unsuffixed(index, group, matcher, p):
                return None
            for rc, amount in group.resources:
                key = (pid, rc)
                totals[key] = totals.get(key, 0) + amount
        if self._overlap:
            for (_, rc), total in totals.items():
                inv = p.inventories[rc]
                if inv.used + total > inv.capacity or total > inv.max_unit:
                    return None
        only = frozenset((pid,))
        return Candidate(totals, {group.suffix: only for group in self.plan.groups})

    def _alone_unsuffixed(
        self, index: int, group: GroupPlan, matcher: GroupMatcher, p: Provider
    ) -> bool:
        if not all(matcher.fits(p, rc, amount) for rc, amount in group.resources):
            return False
        if self._plain[index]:
            return True
        if group.in_tree_root is not None and group.in_tree_root != p.id:
            return False
        return self._usable(group, p, False) and self._group_traits_ok(group, [p.id])

    def _slots(
        self, anchor: int, members: list[Provider], shared: list[Provider]
    ) -> list[_Slot] | None:
        slots: list[_Slot] = []
        for index, group in enumerate(self.plan.groups):
            matcher = self.matchers[index]
            if group.use_same_provider:
                options = [p for p in members if matcher.matches(p)]
                options += [s for s in shared if matcher.matches(s)]
                if not options:
                    return None
                slots.append(_Slot(index, group.resources, options))
            else:
                tree_slots = self._tree_slots(index, group, matcher, anchor, members, shared)
                if tree_slots is None:
                    return None
                slots += tree_slots
        return slots

    def _tree_slots(
        self,
        index: int,
        group: GroupPlan,
        matcher: GroupMatcher,
        anchor: int,
        members: list[Provider],
        shared: list[Provider],
    ) -> list[_Slot] | None:
        if group.in_tree_root is not None:
            if anchor != group.in_tree_root:
                return None
            shared = []
        root = self.u.providers[anchor]
        if not root.aggregates.isdisjoint(group.forbidden_aggs):
            return None
        root_in_aggs = _in_all(root, group.member_of)
        usable = [p for p in members if self._usable(group, p, root_in_aggs)]
        usable += [s for s in shared if self._usable(group, s, False)]
        slots = []
        for rc, amount in self._by_class[index]:
            options = [p for p in usable if matcher.fits(p, rc, amount)]
            if not options:
                return None
            slot = _Slot(index, ((rc, amount),), options)
            slot.closes_group = False
            slots.append(slot)
        slots[-1].closes_group = True
        return slots

    @staticmethod
    def _usable(group: GroupPlan, p: Provider, root_in_aggs: bool) -> bool:
        """May ``p`` serve the unsuffixed group (aggregates and forbidden traits)?"""
        if not p.aggregates.isdisjoint(group.forbidden_aggs):
            return False
        if not p.traits.isdisjoint(group.forbidden):
            return False
        return root_in_aggs or _in_all(p, group.member_of)

    # -- combining the slots ---------------------------------------------------------------

    def _combine(self, slots: list[_Slot]) -> Iterator[Candidate]:
        acc: dict[tuple[int, int], int] = {}
        chosen: list[list[int]] = [[] for _ in self.plan.groups]
        yield from self._fill(slots, 0, acc, chosen, set())

    def _fill(
        self,
        slots: list[_Slot],
        depth: int,
        acc: dict[tuple[int, int], int],
        chosen: list[list[int]],
        granular: set[int],
    ) -> Iterator[Candidate]:
        if depth == len(slots):
            candidate = self._finish(acc, chosen)
            if candidate is not None:
                yield candidate
            return
        slot = slots[depth]
        group = self.plan.groups[slot.group]
        isolate = self.plan.isolate and group.use_same_provider
        picks = chosen[slot.group]
        for p in slot.options:
            if isolate and p.id in granular:
                continue
            if not _take(acc, p, slot.resources):
                continue
            picks.append(p.id)
            if not slot.closes_group or self._group_traits_ok(group, picks):
                if isolate:
                    granular.add(p.id)
                yield from self._fill(slots, depth + 1, acc, chosen, granular)
                if isolate:
                    granular.discard(p.id)
            picks.pop()
            _give_back(acc, p, slot.resources)

    def _group_traits_ok(self, group: GroupPlan, picks: list[int]) -> bool:
        """The unsuffixed group's providers together hold every required trait."""
        if group.use_same_provider or not group.required:
            return True
        providers = self.u.providers
        traits = frozenset().union(*(providers[pid].traits for pid in picks))
        return all(not traits.isdisjoint(any_of) for any_of in group.required)

    def _finish(self, acc: dict[tuple[int, int], int], chosen: list[list[int]]) -> Candidate | None:
        mappings = {
            group.suffix: frozenset(picks)
            for group, picks in zip(self.plan.groups, chosen, strict=True)
        }
        for suffixes in self.plan.same_subtrees:
            together: set[int] = set().union(*(mappings[s] for s in suffixes if s in mappings))
            if not self._same_subtree(together):
                return None
        return Candidate(dict(acc), mappings)

    def _same_subtree(self, pids: set[int]) -> bool:
        """Some provider of ``pids`` is an ancestor of (or is) every other one."""
        if len(pids) <= 1:
            return True
        common = set.intersection(*(self.u.ancestors(pid) for pid in pids))
        return not common.isdisjoint(pids)

    def _spans_tree(self, candidate: Candidate) -> bool:
        """Two providers of one tree: invisible before microversion 1.29."""
        pids = {pid for pid, _ in candidate.amounts}
        roots = {self.u.providers[pid].root_id for pid in pids}
        return len(roots) != len(pids)


def _plain(group: GroupPlan) -> bool:
    """An unsuffixed group asking for resources only (no traits, aggregates or tree)."""
    return not (
        group.required
        or group.forbidden
        or group.member_of
        or group.forbidden_aggs
        or group.in_tree_root is not None
    )


def _in_all(p: Provider, member_of: list[frozenset[int]]) -> bool:
    aggs = p.aggregates
    return all(not aggs.isdisjoint(any_of) for any_of in member_of)


def _take(
    acc: dict[tuple[int, int], int], p: Provider, resources: Sequence[tuple[int, int]]
) -> bool:
    """Add ``p``'s share to the running totals unless that over-commits it."""
    done: list[tuple[int, int]] = []
    for rc, amount in resources:
        key = (p.id, rc)
        total = acc.get(key, 0) + amount
        if total != amount:
            inv = p.inventories[rc]
            if inv.used + total > inv.capacity or total > inv.max_unit:
                _give_back(acc, p, done)
                return False
        acc[key] = total
        done.append((rc, amount))
    return True


def _give_back(
    acc: dict[tuple[int, int], int], p: Provider, resources: Sequence[tuple[int, int]]
) -> None:
    for rc, amount in resources:
        key = (p.id, rc)
        left = acc[key] - amount
        if left:
            acc[key] = left
        else:
            del acc[key]
