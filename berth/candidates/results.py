"""Run the search and cut the answer: limit, randomisation, provider summaries.

Shared by both filter modes: they differ only in the universe and matchers
they hand over.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from berth.candidates import anchors as anchoring
from berth.candidates.engine import Candidate, GroupMatcher, Search
from berth.candidates.model import Provider, Universe
from berth.candidates.plan import GroupPlan, Plan


@dataclass
class Result:
    """Candidates plus the providers to summarise, taken from one universe."""

    candidates: list[Candidate] = field(default_factory=list)
    summaries: list[Provider] = field(default_factory=list)
    providers: dict[int, Provider] = field(default_factory=dict)
    requested: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Limits:
    """The settings that bound and order the answer."""

    cap: int = -1
    randomize: bool = False


def collect(u: Universe, plan: Plan, matchers: Sequence[GroupMatcher], limits: Limits) -> Result:
    """Candidates for ``plan`` with their summaries, limited as asked."""
    search = Search(u, plan, matchers, cap=limits.cap)
    order = anchoring.iterate(anchoring.candidate_anchors(u, plan), limits.randomize)
    legacy = search.exclude_nested
    limit = plan.limit
    if limit is not None and not legacy:
        kept = list(itertools.islice(search.run(order), limit))
        if limits.randomize:
            random.shuffle(kept)
        return _result(u, plan, kept, _whole_trees(u, kept))
    every = list(search.run(order))
    kept = every
    if limit is not None and limit < len(every):
        kept = random.sample(every, limit) if limits.randomize else every[:limit]
    elif limits.randomize:
        random.shuffle(kept)
    summarised = _used_providers(u, every, kept) if legacy else _whole_trees(u, kept)
    return _result(u, plan, kept, summarised)


def _result(u: Universe, plan: Plan, kept: list[Candidate], summarised: list[int]) -> Result:
    providers = u.providers
    involved = {pid for c in kept for pid, _ in c.amounts}
    involved.update(pid for c in kept for pids in c.mappings.values() for pid in pids)
    involved.update(summarised)
    return Result(
        candidates=kept,
        summaries=[providers[pid] for pid in summarised],
        providers={pid: providers[pid] for pid in _with_relatives(u, involved)},
        requested=plan.requested_rcs,
    )


def _with_relatives(u: Universe, pids: set[int]) -> set[int]:
    """``pids`` plus their parents and roots (the summaries name them)."""
    out = set(pids)
    for pid in pids:
        p = u.providers[pid]
        out.add(p.root_id)
        if p.parent_id is not None:
            out.add(p.parent_id)
    return out


def _whole_trees(u: Universe, kept: list[Candidate]) -> list[int]:
    """Every provider of every tree that gives resources to a kept candidate."""
    providers = u.providers
    roots = {providers[pid].root_id for c in kept for pid, _ in c.amounts}
    return [pid for root in sorted(roots) for pid in u.members.get(root, ())]


def _used_providers(u: Universe, every: list[Candidate], kept: list[Candidate]) -> list[int]:
    """Before 1.29 (with trees around): only providers some candidate uses."""
    providers = u.providers
    roots = {providers[pid].root_id for c in kept for pid, _ in c.amounts}
    used = {pid for c in every for pid, _ in c.amounts}
    return sorted(pid for pid in used if providers[pid].root_id in roots)


def group_is_empty(u: Universe, plan: Plan, group: GroupPlan, matcher: GroupMatcher) -> bool:
    """Whether ``group`` alone has no candidate (how the reference gives up early)."""
    alone = Plan(
        groups=[group],
        root_required=plan.root_required,
        root_forbidden=plan.root_forbidden,
    )
    search = Search(u, alone, [matcher])
    return next(search.run(anchoring.candidate_anchors(u, alone)), None) is None
