"""The ``GET /allocation_candidates`` body, per microversion.

* 1.10: ``allocation_requests`` are lists of ``{resource_provider, resources}``;
  from 1.12 a dict keyed by provider uuid; 1.34 adds ``mappings``.
* ``provider_summaries``: capacity and usage of the requested classes; 1.17
  adds traits; 1.27 shows every class of the provider; 1.29 parent and root.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from berth.candidates.engine import Candidate
from berth.candidates.model import Provider
from berth.candidates.results import Result
from berth.placement.catalog import CUSTOM_ID_START


@dataclass(frozen=True)
class Shape:
    """Which parts of the body the request's microversion shows."""

    keyed_allocations: bool  # 1.12
    traits: bool  # 1.17
    all_classes: bool  # 1.27
    tree: bool  # 1.29
    mappings: bool  # 1.34

    @classmethod
    def at(cls, minor: int) -> Shape:
        """The shape of microversion 1.<minor>."""
        return cls(minor >= 12, minor >= 17, minor >= 27, minor >= 29, minor >= 34)


ClassNames = Callable[[Iterable[int]], dict[int, str]]


def body(
    result: Result, shape: Shape, class_names: ClassNames, trait_names: dict[int, str]
) -> dict[str, Any]:
    """The response document."""
    providers = result.providers
    classes = {rc for c in result.candidates for _, rc in c.amounts}
    for p in result.summaries:
        classes.update(p.inventories)
    names = class_names(classes)
    if shape.keyed_allocations:
        requests = [_keyed(c, providers, names, shape.mappings) for c in result.candidates]
    else:
        requests = [_listed(c, providers, names) for c in result.candidates]
    wanted = None if shape.all_classes else frozenset(result.requested)
    summaries = {}
    for p in result.summaries:
        cached = p.rendered.get((shape, wanted))
        if cached is None:
            cached = _summary(p, providers, names, trait_names, wanted, shape)
            if all(rc < CUSTOM_ID_START for rc in p.inventories):
                # Custom classes can be renamed; standard names never change.
                p.rendered[(shape, wanted)] = cached
        summaries[p.uuid] = cached
    return {"allocation_requests": requests, "provider_summaries": summaries}


def _by_provider(c: Candidate, names: dict[int, str]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for (pid, rc), amount in c.amounts.items():
        resources = out.get(pid)
        if resources is None:
            out[pid] = {names[rc]: amount}
        else:
            resources[names[rc]] = amount
    return out


def _keyed(
    c: Candidate, providers: dict[int, Provider], names: dict[int, str], mappings: bool
) -> dict[str, Any]:
    allocations = {
        providers[pid].uuid: {"resources": resources}
        for pid, resources in _by_provider(c, names).items()
    }
    out: dict[str, Any] = {"allocations": allocations}
    if mappings:
        out["mappings"] = {
            suffix: [providers[pid].uuid for pid in sorted(pids)]
            for suffix, pids in c.mappings.items()
        }
    return out


def _listed(c: Candidate, providers: dict[int, Provider], names: dict[int, str]) -> dict[str, Any]:
    return {
        "allocations": [
            {"resource_provider": {"uuid": providers[pid].uuid}, "resources": resources}
            for pid, resources in _by_provider(c, names).items()
        ]
    }


def _summary(
    p: Provider,
    providers: dict[int, Provider],
    names: dict[int, str],
    trait_names: dict[int, str],
    wanted: frozenset[int] | None,
    shape: Shape,
) -> dict[str, Any]:
    resources = {
        names[rc]: {"capacity": inv.capacity, "used": inv.used}
        for rc, inv in sorted(p.inventories.items())
        if wanted is None or rc in wanted
    }
    out: dict[str, Any] = {"resources": resources}
    if shape.traits:
        out["traits"] = [trait_names[tr] for tr in sorted(p.traits)]
    if shape.tree:
        parent = providers.get(p.parent_id) if p.parent_id is not None else None
        out["parent_provider_uuid"] = parent.uuid if parent is not None else None
        out["root_provider_uuid"] = providers[p.root_id].uuid
    return out
