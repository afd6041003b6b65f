"""Which roots can anchor a candidate at all: a cheap superset, in id order.

Every constraint names something an anchor's tree (or a sharing provider
tied to it) must hold: a resource class, one of some traits, membership of
one of some aggregates, a trait on the root.  For each, the index knows the
sorted roots of trees holding it; sharing providers add the roots they
anchor.  The smallest of these lists drives the search; the engine then
checks every anchor in full, so a superset is always safe.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence

from berth.candidates.model import RootCounts, Universe
from berth.candidates.plan import Plan

Support = tuple[int, Callable[[], Sequence[int]]]


def _support(
    u: Universe, counts: RootCounts, keys: frozenset[int], holds: Callable[[int], bool]
) -> Support:
    """Roots holding any of ``keys``, plus roots anchored by sharing holders."""
    lists = [counts.roots(key) for key in keys]
    sharing = [s for s in u.sharing if holds(s)]
    size = sum(len(roots) for roots in lists)
    size += sum(len(u.by_agg.get(a, ())) for s in sharing for a in u.providers[s].aggregates)
    if len(lists) == 1 and not sharing:
        only = lists[0]
        return size, lambda: only

    def build() -> Sequence[int]:
        anchors: set[int] = set().union(*lists)
        for s in sharing:
            anchors |= u.anchors_of(s)
        return sorted(anchors)

    return size, build


def _constant(roots: Sequence[int]) -> Callable[[], Sequence[int]]:
    return lambda: roots


def _supports(u: Universe, plan: Plan) -> list[Support]:
    providers = u.providers

    def has_class(rc: int) -> Callable[[int], bool]:
        return lambda s: rc in providers[s].inventories

    def has_trait(any_of: frozenset[int]) -> Callable[[int], bool]:
        return lambda s: not providers[s].traits.isdisjoint(any_of)

    def in_agg(any_of: frozenset[int]) -> Callable[[int], bool]:
        return lambda s: not providers[s].aggregates.isdisjoint(any_of)

    out: list[Support] = []
    for group in plan.groups:
        for rc, _ in group.resources:
            out.append(_support(u, u.rc_roots, frozenset((rc,)), has_class(rc)))
        for traits in group.required:
            out.append(_support(u, u.trait_roots, traits, has_trait(traits)))
        for aggs in group.member_of:
            out.append(_support(u, u.agg_roots, aggs, in_agg(aggs)))
    for trait in plan.root_required:
        roots = u.trait_roots.roots(trait)
        out.append((len(roots), _constant(roots)))
    return out


def _tree_bound(u: Universe, plan: Plan) -> Sequence[int] | None:
    """With ``in_tree`` on the unsuffixed group only that tree can anchor."""
    for group in plan.groups:
        if not group.use_same_provider and group.in_tree_root is not None:
            return [group.in_tree_root]
    return None


def candidate_anchors(u: Universe, plan: Plan) -> Sequence[int]:
    """Sorted roots that may anchor a candidate (a superset of those that do)."""
    bound = _tree_bound(u, plan)
    if bound is not None:
        return bound
    supports = _supports(u, plan)
    if not supports:
        return u.roots
    _, build = min(supports, key=lambda item: item[0])
    return build()


def shuffled(anchors: Sequence[int], rng: random.Random | None = None) -> Iterator[int]:
    """All of ``anchors`` in a random order, lazily (an affine permutation of indexes)."""
    n = len(anchors)
    if n == 0:
        return
    rng = rng or random.Random()
    step = rng.randrange(1, n + 1) if n > 1 else 1
    while _gcd(step, n) != 1:
        step = rng.randrange(1, n + 1)
    offset = rng.randrange(n)
    for i in range(n):
        yield anchors[(offset + i * step) % n]


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def iterate(anchors: Sequence[int], randomize: bool) -> Iterable[int]:
    """The anchors in id order, or in a random order when asked to."""
    return shuffled(anchors) if randomize else anchors
