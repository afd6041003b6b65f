"""The seed's Python design: every provider read from the database per request, filtered in Python.

In the 2016 measurements berth's design comes from ("DB vs Python",
placement-bench's ``--filter-strategy python``) the scheduler fetched every
compute node with its inventory and usage for each request and ran the
filters over them in a Python loop; nothing was kept between requests.
This source does the same for ``GET /allocation_candidates``: each request
reads the whole provider table (inventories with usage, traits, aggregates;
the bulk reads the in-memory index loads itself with) and the class, trait
and aggregate names, in one read transaction, builds a :class:`Universe`
from them and hands it to the same engine with the in-memory matchers.
The answers are the memory mode's; the cost is the read, which grows with
the cloud.  Selected with ``candidates_filter = "python"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection

from berth.candidates import bulk_reads, render
from berth.candidates.matching import MemoryMatcher
from berth.candidates.model import SHARING_TRAIT, Provider, Universe
from berth.candidates.plan import GroupPlan, Plan, resolve
from berth.candidates.request import CandidateRequest
from berth.candidates.results import Limits, Result, collect, group_is_empty
from berth.db import tables as t
from berth.db.engine import Database


class Snapshot:
    """Every provider and every name, read for one request: the plan's Catalog over them."""

    def __init__(self, conn: Connection) -> None:
        self.class_by_id = bulk_reads.names(conn, t.resource_classes)
        self.trait_names = bulk_reads.names(conn, t.traits)
        self.class_ids = {name: rc for rc, name in self.class_by_id.items()}
        self.trait_ids = {name: trait for trait, name in self.trait_names.items()}
        self.agg_ids = bulk_reads.aggregate_uuids(conn)
        providers = bulk_reads.read_providers(conn)
        self.universe = Universe.build(self.trait_ids.get(SHARING_TRAIT), providers.values())

    def _all(self) -> Iterable[Provider]:
        return self.universe.providers.values()

    def rc_id(self, name: str) -> int | None:
        """Id of a resource class."""
        return self.class_ids.get(name)

    def trait_id(self, name: str) -> int | None:
        """Id of a trait."""
        return self.trait_ids.get(name)

    def agg_id(self, uuid: str) -> int | None:
        """Id of an aggregate some provider is (or was) in."""
        return self.agg_ids.get(uuid)

    def tree_root(self, uuid: str) -> int | None:
        """Root of the tree holding provider ``uuid``."""
        pid = self.universe.by_uuid.get(uuid)
        return self.universe.providers[pid].root_id if pid is not None else None

    def any_root_with(self, required: frozenset[int], forbidden: frozenset[int]) -> bool:
        """Whether a root has every ``required`` trait and no ``forbidden`` one."""
        return any(
            p.parent_id is None and required <= p.traits and p.traits.isdisjoint(forbidden)
            for p in self._all()
        )

    def any_in_aggregates(self, member_of: list[frozenset[int]]) -> bool:
        """Whether some provider is in (one of) each aggregate set."""
        return any(
            all(not p.aggregates.isdisjoint(any_of) for any_of in member_of) for p in self._all()
        )

    def any_capacity(self, rc: int, amount: int, tree_root: int | None) -> bool:
        """Whether some provider (of tree ``tree_root``) has room for ``amount`` of ``rc``."""
        for p in self._all():
            inv = p.inventories.get(rc)
            in_tree = tree_root is None or p.root_id == tree_root
            if inv is not None and in_tree and inv.fits(amount):
                return True
        return False

    def class_names(self, ids: Iterable[int]) -> dict[int, str]:
        """id -> name of the given classes."""
        return {rc: self.class_by_id[rc] for rc in ids if rc in self.class_by_id}


def search(snapshot: Snapshot, request: CandidateRequest, limits: Limits) -> Result | None:
    """The engine over this request's snapshot (None: empty answer)."""
    u = snapshot.universe

    def alone_empty(plan: Plan, group: GroupPlan) -> bool:
        return group_is_empty(u, plan, group, MemoryMatcher(group))

    plan = resolve(request, snapshot, alone_empty)
    if plan is None:
        return None
    return collect(u, plan, [MemoryMatcher(g) for g in plan.groups], limits)


def search_python(db: Database, request: CandidateRequest, limits: Limits) -> Result | None:
    """Read everything, then search it (None: empty answer)."""
    with db.read() as conn:
        snapshot = Snapshot(conn)
    return search(snapshot, request, limits)


def answer_body(
    db: Database, request: CandidateRequest, shape: render.Shape, limits: Limits
) -> dict[str, Any]:
    """The response document for ``request``, read and filtered for it alone."""
    with db.read() as conn:
        snapshot = Snapshot(conn)
    result = search(snapshot, request, limits)
    if result is None:
        return {"allocation_requests": [], "provider_summaries": {}}
    return render.body(result, shape, snapshot.class_names, snapshot.trait_names)
