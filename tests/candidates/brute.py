"""An obviously-correct (and exponential) allocation candidates oracle for the tests.

It works on the test's own description of the world (``ProviderSpec`` list,
names and uuids, no ids) and enumerates everything: every root as anchor,
every provider for every class of the unsuffixed group, every provider for
every suffixed group, every combination of those; then keeps the
combinations that satisfy the rules, written out one by one below.  Only
for tiny worlds.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from berth.bench.cloud import ProviderSpec
from berth.candidates.request import CandidateRequest, RequestGroup

SHARING = "MISC_SHARES_VIA_AGGREGATE"

# A candidate by names: ({(provider uuid, class, amount)}, {(suffix, {provider uuids})})
Key = tuple[frozenset[tuple[str, str, int]], frozenset[tuple[str, frozenset[str]]]]
Choice = tuple[list[tuple[int, str, int]], frozenset[int]]


class World:
    """The specs plus derived facts (roots, ancestors, anchors)."""

    def __init__(self, specs: Sequence[ProviderSpec]) -> None:
        self.specs = specs
        self.n = len(specs)
        self.root = [self._root(i) for i in range(self.n)]
        self.index = {spec.uuid: i for i, spec in enumerate(specs)}

    def _root(self, i: int) -> int:
        while self.specs[i].parent is not None:
            i = self.specs[i].parent  # type: ignore[assignment]
        return i

    def ancestors(self, i: int) -> set[int]:
        out = {i}
        while self.specs[i].parent is not None:
            i = self.specs[i].parent  # type: ignore[assignment]
            out.add(i)
        return out

    def capacity(self, i: int, rc: str) -> int:
        total, reserved, _, _, _, ratio = self.specs[i].inventories[rc]
        return int((total - reserved) * ratio)

    def used(self, i: int, rc: str) -> int:
        return self.specs[i].used.get(rc, 0)

    def fits(self, i: int, rc: str, amount: int) -> bool:
        if rc not in self.specs[i].inventories:
            return False
        _, _, lo, hi, step, _ = self.specs[i].inventories[rc]
        return (
            self.used(i, rc) + amount <= self.capacity(i, rc)
            and lo <= amount <= hi
            and amount % step == 0
        )

    def in_aggs(self, i: int, member_of: list[set[str]]) -> bool:
        return all(self.specs[i].aggregates & any_of for any_of in member_of)

    def sharing(self, i: int) -> bool:
        return SHARING in self.specs[i].traits

    def anchors(self, i: int) -> set[int]:
        mine = self.specs[i].aggregates
        return {self.root[j] for j in range(self.n) if self.specs[j].aggregates & mine}

    def reaches(self, i: int, anchor: int) -> bool:
        """Provider ``i`` can serve a candidate anchored at ``anchor``."""
        return self.root[i] == anchor or (self.sharing(i) and anchor in self.anchors(i))


def _traits_ok(traits: set[str], required: list[set[str]], forbidden: set[str]) -> bool:
    return not (traits & forbidden) and all(traits & any_of for any_of in required)


def _unsuffixed(w: World, g: RequestGroup, anchor: int) -> list[Choice]:
    spec = w.specs
    tree = w.root[w.index[g.in_tree]] if g.in_tree else None
    if tree is not None and tree != anchor:
        return []
    if spec[anchor].aggregates & g.forbidden_aggs:
        return []
    classes = sorted(g.resources)
    out: list[Choice] = []
    for assign in itertools.product(range(w.n), repeat=len(classes)):
        ok = True
        for i, rc in zip(assign, classes, strict=True):
            if tree is not None:
                ok &= w.root[i] == tree
            else:
                own_tree = w.root[i] == anchor
                shared = w.sharing(i) and anchor in w.anchors(i) and w.in_aggs(i, g.member_of)
                ok &= own_tree or shared
            ok &= w.fits(i, rc, g.resources[rc])
            ok &= w.in_aggs(i, g.member_of) or w.in_aggs(anchor, g.member_of)
            ok &= not (spec[i].aggregates & g.forbidden_aggs)
            ok &= not (spec[i].traits & g.forbidden)
        union = set().union(*(spec[i].traits for i in assign))
        if ok and _traits_ok(union, g.required, set()):
            parts = [(i, rc, g.resources[rc]) for i, rc in zip(assign, classes, strict=True)]
            out.append((parts, frozenset(assign)))
    return out


def _suffixed(w: World, g: RequestGroup, anchor: int) -> list[Choice]:
    out: list[Choice] = []
    tree = w.root[w.index[g.in_tree]] if g.in_tree and g.resources else None
    for i in range(w.n):
        spec = w.specs[i]
        if not w.reaches(i, anchor):
            continue
        if not all(w.fits(i, rc, amount) for rc, amount in g.resources.items()):
            continue
        if tree is not None and w.root[i] != tree:
            continue
        if not _traits_ok(spec.traits, g.required, g.forbidden):
            continue
        if not w.in_aggs(i, g.member_of) or spec.aggregates & g.forbidden_aggs:
            continue
        out.append(([(i, rc, amount) for rc, amount in g.resources.items()], frozenset({i})))
    return out


def _same_subtree(w: World, pids: set[int]) -> bool:
    if len(pids) <= 1:
        return True
    return any(all(p in w.ancestors(q) for q in pids) for p in pids)


def _combination_ok(w: World, req: CandidateRequest, combo: Sequence[Choice]) -> bool:
    suffixes = list(req.groups)
    granular = [choice[1] for suffix, choice in zip(suffixes, combo, strict=True) if suffix]
    if req.group_policy == "isolate" and len(set().union(*granular)) != len(granular):
        return False
    mappings = {suffix: choice[1] for suffix, choice in zip(suffixes, combo, strict=True)}
    for together in req.same_subtrees:
        if not _same_subtree(w, set().union(*(mappings[s] for s in together))):
            return False
    totals: dict[tuple[int, str], int] = {}
    for parts, _ in combo:
        for i, rc, amount in parts:
            totals[(i, rc)] = totals.get((i, rc), 0) + amount
    for (i, rc), total in totals.items():
        _, _, _, hi, _, _ = w.specs[i].inventories[rc]
        if w.used(i, rc) + total > w.capacity(i, rc) or total > hi:
            return False
    has_trees = any(spec.parent is not None for spec in w.specs)
    if not req.nested_aware and has_trees:
        used = {i for i, _ in totals}
        if len({w.root[i] for i in used}) != len(used):
            return False
    return True


def _key(w: World, req: CandidateRequest, combo: Sequence[Choice]) -> Key:
    totals: dict[tuple[int, str], int] = {}
    for parts, _ in combo:
        for i, rc, amount in parts:
            totals[(i, rc)] = totals.get((i, rc), 0) + amount
    amounts = frozenset((w.specs[i].uuid, rc, total) for (i, rc), total in totals.items())
    mappings = frozenset(
        (suffix, frozenset(w.specs[i].uuid for i in choice[1]))
        for suffix, choice in zip(req.groups, combo, strict=True)
    )
    return amounts, mappings


def candidates(specs: Sequence[ProviderSpec], req: CandidateRequest) -> set[Key]:
    """Every allocation candidate, by brute force."""
    w = World(specs)
    found: set[Key] = set()
    for anchor in range(w.n):
        traits = specs[anchor].traits
        if specs[anchor].parent is not None:
            continue
        if not _traits_ok(traits, [{t} for t in req.root_required], req.root_forbidden):
            continue
        options = [
            _suffixed(w, g, anchor) if suffix else _unsuffixed(w, g, anchor)
            for suffix, g in req.groups.items()
        ]
        for combo in itertools.product(*options):
            if _combination_ok(w, req, combo):
                found.add(_key(w, req, combo))
    return found
