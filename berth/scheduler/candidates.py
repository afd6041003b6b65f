"""The candidates stage: ask the allocation-candidates engine, in process, host by host.

The spec becomes a :class:`~berth.candidates.request.CandidateRequest` with
one unsuffixed group, resolved against this worker's in-memory index.  The
pipeline then asks :meth:`CandidateSource.at` for one root provider at a
time, in the order it chooses (partition first, bounded scans), instead of
having the engine enumerate every host of the cloud.

When a host yields no candidate and the answer must be explained,
:meth:`CandidateSource.why_not` says why: a constant code for the metrics
(``lacked_capacity``) and words for people ("lacked VCPU").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from berth.candidates.anchors import candidate_anchors
from berth.candidates.engine import Candidate, Search
from berth.candidates.index import MemoryIndex
from berth.candidates.matching import MemoryMatcher
from berth.candidates.model import Provider, Universe
from berth.candidates.plan import GroupPlan, Plan, resolve
from berth.candidates.request import CandidateRequest, RequestGroup
from berth.candidates.results import group_is_empty
from berth.scheduler.explain import Reason
from berth.scheduler.spec import RequestSpec

NOT_IN_AGGREGATES = Reason("not_in_aggregates", "not in the requested aggregates")
NO_CANDIDATE = Reason("no_candidate", "no allocation candidate")


def candidate_request(spec: RequestSpec) -> CandidateRequest:
    """The spec's resources, traits and aggregates as one unsuffixed request group."""
    group = RequestGroup(
        "",
        resources=dict(spec.resources),
        required=[{name} for name in sorted(spec.required_traits)],
        forbidden=set(spec.forbidden_traits),
        member_of=[set(any_of) for any_of in spec.member_of],
    )
    return CandidateRequest(groups={"": group})


@dataclass(frozen=True)
class Needs:
    """The request in ids, to explain a miss (unknown aggregates resolve to nothing)."""

    resources: tuple[tuple[int | None, str, int], ...]
    required: tuple[tuple[int | None, str], ...]
    forbidden: tuple[tuple[int, str], ...]
    member_of: tuple[frozenset[int], ...]

    @classmethod
    def of(cls, index: MemoryIndex, spec: RequestSpec) -> Needs:
        """Resolve the names of ``spec`` through ``index``."""
        forbidden = ((index.trait_id(n), n) for n in sorted(spec.forbidden_traits))
        aggs = [{index.agg_id(u) for u in any_of} - {None} for any_of in spec.member_of]
        return cls(
            resources=tuple((index.rc_id(n), n, a) for n, a in spec.resources.items()),
            required=tuple((index.trait_id(n), n) for n in sorted(spec.required_traits)),
            forbidden=tuple((tid, n) for tid, n in forbidden if tid is not None),
            member_of=tuple(frozenset(a for a in any_of if a is not None) for any_of in aggs),
        )


class CandidateSource:
    """Candidates of one request, one root provider (host) at a time."""

    def __init__(self, index: MemoryIndex, spec: RequestSpec) -> None:
        self.index = index
        self.universe: Universe = index.universe
        u = self.universe

        def alone_empty(plan: Plan, group: GroupPlan) -> bool:
            return group_is_empty(u, plan, group, MemoryMatcher(group))

        # InvalidInput (unknown class or trait) goes to the caller: a 400.
        self.plan: Plan | None = resolve(candidate_request(spec), index, alone_empty)
        self.search: Search | None = None
        self.anchors: Sequence[int] = ()
        if self.plan is not None:
            self.search = Search(u, self.plan, [MemoryMatcher(g) for g in self.plan.groups])
            self.anchors = candidate_anchors(u, self.plan)
        self.spec = spec
        self._needs: Needs | None = None
        # What decides whether a host yields a candidate (see scan.MissMemo).
        self.shape = (
            tuple(sorted(spec.resources.items())),
            tuple(sorted(spec.required_traits)),
            tuple(sorted(spec.forbidden_traits)),
            tuple(tuple(sorted(any_of)) for any_of in spec.member_of),
        )

    def agg_uuid(self, agg: int) -> str | None:
        """The uuid of aggregate id ``agg`` (the index keeps the inverse of its map)."""
        return self.index.agg_uuid(agg)

    @property
    def requested(self) -> list[tuple[int, int]]:
        """(class id, amount) per instance; empty when nothing can match."""
        return list(self.plan.groups[0].resources) if self.plan else []

    def at(self, root: int) -> Candidate | None:
        """The first candidate anchored at ``root`` (None: this host cannot serve)."""
        if self.search is None:
            return None
        for candidate in self.search.run((root,)):
            return candidate
        return None

    def tree(self, root: int) -> list[Provider]:
        """The providers of the tree rooted at ``root``."""
        providers = self.universe.providers
        return [providers[pid] for pid in self.universe.members.get(root, (root,))]

    @property
    def needs(self) -> Needs:
        """The request in ids, resolved on first use (only explanations need it)."""
        if self._needs is None:
            self._needs = Needs.of(self.index, self.spec)
        return self._needs

    def why_not(self, root: int) -> Reason:
        """Why ``root`` yields no candidate: a code, and a few words.

        What a host *is* (inventory kinds, traits, aggregates) is reported
        before what it *has left* (capacity): the former never changes by
        waiting.
        """
        u = self.universe
        members = self.tree(root)
        if u.sharing:
            members += [u.providers[s] for s in u.sharing_at(root)]
        holders = {}
        for rc, name, _ in self.needs.resources:
            holders[name] = [p.inventories[rc] for p in members if rc in p.inventories]
            if not holders[name]:
                return Reason("no_inventory", f"had no {name} inventory")
        traits = frozenset().union(*(p.traits for p in members))
        for trait, name in self.needs.required:
            if trait is None or trait not in traits:
                return Reason("lacked_trait", f"lacked {name}")
        for trait, name in self.needs.forbidden:
            if trait in u.providers[root].traits:
                return Reason("forbidden_trait", f"had forbidden {name}")
        aggs = frozenset().union(*(p.aggregates for p in members))
        if any(aggs.isdisjoint(any_of) for any_of in self.needs.member_of):
            return NOT_IN_AGGREGATES
        for _, name, amount in self.needs.resources:
            if not any(inv.fits(amount) for inv in holders[name]):
                return Reason("lacked_capacity", f"lacked {name}")
        return NO_CANDIDATE
