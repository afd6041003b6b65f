"""Resolve a parsed request's names (classes, traits, aggregates, providers) to ids.

The reference looks names up group by group and gives up early: a group that
can match nothing makes the whole answer empty before later groups are even
looked at, so an unknown name in a later group is then not an error.
:func:`resolve` keeps that order; it returns ``None`` for "empty answer".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from berth.candidates.request import CandidateRequest, RequestGroup
from berth.placement import errors


class Catalog(Protocol):
    """Name lookups and the cheap existence checks the reference makes up front."""

    def rc_id(self, name: str) -> int | None:
        """Id of a resource class, None when unknown."""

    def trait_id(self, name: str) -> int | None:
        """Id of a trait, None when unknown."""

    def agg_id(self, uuid: str) -> int | None:
        """Id of an aggregate that has members, None otherwise."""

    def tree_root(self, uuid: str) -> int | None:
        """Root id of the tree holding provider ``uuid``, None when no such provider."""

    def any_root_with(self, required: frozenset[int], forbidden: frozenset[int]) -> bool:
        """Whether some root provider has all ``required`` and none of ``forbidden``."""

    def any_in_aggregates(self, member_of: list[frozenset[int]]) -> bool:
        """Whether some provider is in (any of) each aggregate set."""

    def any_capacity(self, rc: int, amount: int, tree_root: int | None) -> bool:
        """Whether some provider (in tree ``tree_root``) can take ``amount`` of ``rc``."""


@dataclass
class GroupPlan:
    """One request group with ids instead of names."""

    suffix: str
    resources: list[tuple[int, int]] = field(default_factory=list)
    required: list[frozenset[int]] = field(default_factory=list)
    forbidden: frozenset[int] = frozenset()
    member_of: list[frozenset[int]] = field(default_factory=list)
    forbidden_aggs: frozenset[int] = frozenset()
    in_tree_root: int | None = None

    @property
    def use_same_provider(self) -> bool:
        """Suffixed groups are satisfied by exactly one provider."""
        return bool(self.suffix)


@dataclass
class Plan:
    """A resolved request, ready for the engine."""

    groups: list[GroupPlan]
    root_required: frozenset[int] = frozenset()
    root_forbidden: frozenset[int] = frozenset()
    isolate: bool = False
    same_subtrees: list[set[str]] = field(default_factory=list)
    limit: int | None = None
    nested_aware: bool = True

    @property
    def requested_rcs(self) -> set[int]:
        """Every class asked for by some group."""
        return {rc for group in self.groups for rc, _ in group.resources}


class Empty(Exception):
    """The answer is known to be empty."""


def _rc_ids(catalog: Catalog, group: RequestGroup) -> list[tuple[int, int]]:
    out = []
    for name, amount in group.resources.items():
        rc = catalog.rc_id(name)
        if rc is None:
            raise errors.InvalidInput(
                f"Invalid resource class in resources parameter: No such resource class {name}."
            )
        out.append((rc, amount))
    return out


def _trait_ids(catalog: Catalog, names: set[str]) -> frozenset[int]:
    ids = set()
    for name in sorted(names):
        trait = catalog.trait_id(name)
        if trait is None:
            raise errors.InvalidInput(f"No such trait(s): {name}.")
        ids.add(trait)
    return frozenset(ids)


def _agg_ids(catalog: Catalog, uuids: set[str]) -> frozenset[int]:
    return frozenset(a for a in (catalog.agg_id(u) for u in uuids) if a is not None)


def _group(catalog: Catalog, group: RequestGroup) -> GroupPlan:
    plan = GroupPlan(group.suffix, resources=_rc_ids(catalog, group))
    plan.member_of = [_agg_ids(catalog, aggs) for aggs in group.member_of]
    if plan.member_of and not (all(plan.member_of) and catalog.any_in_aggregates(plan.member_of)):
        raise Empty
    plan.required = [_trait_ids(catalog, names) for names in group.required]
    plan.forbidden = _trait_ids(catalog, group.forbidden) if group.forbidden else frozenset()
    if group.in_tree is not None:
        root = catalog.tree_root(group.in_tree)
        if root is None:
            raise Empty
        # A group without resources ignores in_tree (as the reference does).
        plan.in_tree_root = root if plan.resources else None
    plan.forbidden_aggs = _agg_ids(catalog, group.forbidden_aggs)
    for rc, amount in plan.resources:
        if not catalog.any_capacity(rc, amount, plan.in_tree_root):
            raise Empty
    return plan


def resolve(
    request: CandidateRequest,
    catalog: Catalog,
    group_is_empty: Callable[[Plan, GroupPlan], bool],
) -> Plan | None:
    """The plan, or None when the answer is empty; InvalidInput for unknown names."""
    plan = Plan(
        groups=[],
        isolate=request.group_policy == "isolate",
        same_subtrees=request.same_subtrees,
        limit=request.limit,
        nested_aware=request.nested_aware,
    )
    try:
        if request.root_required or request.root_forbidden:
            plan.root_required = _trait_ids(catalog, request.root_required)
            plan.root_forbidden = _trait_ids(catalog, request.root_forbidden)
            if not catalog.any_root_with(plan.root_required, plan.root_forbidden):
                return None
        for group in request.groups.values():
            try:
                resolved = _group(catalog, group)
            except errors.InvalidInput:
                # The reference never looks at this group if an earlier one matched nothing.
                if any(group_is_empty(plan, done) for done in plan.groups):
                    return None
                raise
            plan.groups.append(resolved)
    except Empty:
        return None
    return plan
