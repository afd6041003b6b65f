"""The SQL design: match providers in the database, per request (as the reference does).

Each group's providers are found with one query (capacity per class, traits,
aggregates, tree), then only the trees those providers (and the sharing
providers among them) can anchor are read into a small :class:`Universe`,
and the same engine combines them.  Selected with ``candidates_filter = "sql"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Select, and_, exists, select

from berth.candidates import bulk_reads
from berth.candidates.model import SHARING_TRAIT, Provider, Universe
from berth.candidates.plan import GroupPlan, Plan
from berth.db import tables as t
from berth.db.tables import RP, RP_AGG, RP_TRAIT
from berth.placement import provider_filters as pf


def _ids(conn: Connection, query: Select[tuple[int]]) -> set[int]:
    rows: Iterable[Any] = conn.execute(query).scalars()
    return {int(pid) for pid in rows}


def _in_aggregates(aggs: Iterable[int]) -> Select[tuple[int]]:
    return select(RP_AGG.c.resource_provider_id).where(RP_AGG.c.aggregate_id.in_(sorted(aggs)))


def _in_tree(root: int) -> Select[tuple[int]]:
    return select(RP.c.id).where(RP.c.root_provider_id == root)


def capacity_query(rc: int, amount: int, tree_root: int | None) -> Select[tuple[int]]:
    """Providers (of one tree) with room for ``amount`` of ``rc``."""
    query = pf.with_capacity(rc, amount)
    if tree_root is not None:
        query = query.where(t.inventories.c.resource_provider_id.in_(_in_tree(tree_root)))
    return query


def group_query(group: GroupPlan) -> Select[tuple[int]]:
    """Providers that alone satisfy every part of a suffixed group."""
    query = select(RP.c.id)
    for rc, amount in group.resources:
        query = query.where(RP.c.id.in_(pf.with_capacity(rc, amount)))
    if group.in_tree_root is not None:
        query = query.where(RP.c.root_provider_id == group.in_tree_root)
    for any_of in group.required:
        query = query.where(RP.c.id.in_(pf.having_any_trait(sorted(any_of))))
    if group.forbidden:
        query = query.where(RP.c.id.not_in(pf.having_any_trait(sorted(group.forbidden))))
    for aggs in group.member_of:
        query = query.where(RP.c.id.in_(_in_aggregates(aggs)))
    if group.forbidden_aggs:
        query = query.where(RP.c.id.not_in(_in_aggregates(group.forbidden_aggs)))
    return query


class SqlMatcher:
    """A group matcher backed by the id sets the queries returned."""

    def __init__(self, per_class: dict[int, set[int]], alone: set[int]) -> None:
        self.per_class = per_class
        self.alone = alone

    def fits(self, p: Provider, rc: int, amount: int) -> bool:
        """``p`` was found with room for this class."""
        return p.id in self.per_class.get(rc, ())

    def matches(self, p: Provider) -> bool:
        """``p`` was found satisfying the whole group."""
        return p.id in self.alone


def matchers(conn: Connection, plan: Plan) -> list[SqlMatcher]:
    """Run each group's queries."""
    out = []
    for group in plan.groups:
        if group.use_same_provider:
            out.append(SqlMatcher({}, _ids(conn, group_query(group))))
        else:
            per_class = {
                rc: _ids(conn, capacity_query(rc, amount, group.in_tree_root))
                for rc, amount in group.resources
            }
            out.append(SqlMatcher(per_class, set()))
    return out


def sharing_ids(conn: Connection) -> set[int]:
    """Providers with the trait MISC_SHARES_VIA_AGGREGATE."""
    query = (
        select(RP_TRAIT.c.resource_provider_id)
        .join(t.traits, t.traits.c.id == RP_TRAIT.c.trait_id)
        .where(t.traits.c.name == SHARING_TRAIT)
    )
    return set(conn.execute(query).scalars())


def anchors_of(conn: Connection, sharing: Iterable[int]) -> set[int]:
    """Roots of the trees sharing an aggregate with any of ``sharing``."""
    mine = RP_AGG.alias("mine")
    theirs = RP_AGG.alias("theirs")
    found: set[int] = set()
    for chunk in bulk_reads.chunks(sharing):
        query = (
            select(RP.c.root_provider_id)
            .select_from(
                mine.join(theirs, mine.c.aggregate_id == theirs.c.aggregate_id).join(
                    RP, RP.c.id == theirs.c.resource_provider_id
                )
            )
            .where(mine.c.resource_provider_id.in_(chunk))
            .distinct()
        )
        found.update(conn.execute(query).scalars())
    return found


def roots_of(conn: Connection, ids: Iterable[int]) -> set[int]:
    """The roots of the trees holding ``ids``."""
    found: set[int] = set()
    for chunk in bulk_reads.chunks(ids):
        found.update(
            conn.execute(select(RP.c.root_provider_id).where(RP.c.id.in_(chunk))).scalars()
        )
    return found


def has_trees(conn: Connection) -> bool:
    """Whether any provider anywhere has a parent."""
    return bool(conn.execute(select(exists().where(RP.c.parent_provider_id.is_not(None)))).scalar())


def universe(conn: Connection, found: list[SqlMatcher]) -> Universe:
    """The trees the matched providers can serve, read in full."""
    matched: set[int] = set()
    for m in found:
        matched |= m.alone
        for ids in m.per_class.values():
            matched |= ids
    sharing = sharing_ids(conn) & matched
    roots = roots_of(conn, matched) | anchors_of(conn, sharing)
    providers = bulk_reads.read_providers(conn, sorted(bulk_reads.tree_members(conn, roots)))
    trait = conn.execute(select(t.traits.c.id).where(t.traits.c.name == SHARING_TRAIT)).scalar()
    u = Universe(trait)
    for pid in sorted(providers):
        u.add(providers[pid])
    u.nested = 1 if has_trees(conn) else 0
    return u


class SqlCatalog:
    """Name lookups and existence checks as queries (the plan's Catalog)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def rc_id(self, name: str) -> int | None:
        """Id of a resource class."""
        rc = t.resource_classes
        return self.conn.execute(select(rc.c.id).where(rc.c.name == name)).scalar()

    def trait_id(self, name: str) -> int | None:
        """Id of a trait."""
        return self.conn.execute(select(t.traits.c.id).where(t.traits.c.name == name)).scalar()

    def agg_id(self, uuid: str) -> int | None:
        """Id of an aggregate."""
        agg = t.placement_aggregates
        return self.conn.execute(select(agg.c.id).where(agg.c.uuid == uuid)).scalar()

    def tree_root(self, uuid: str) -> int | None:
        """Root of the tree holding provider ``uuid``."""
        return self.conn.execute(select(RP.c.root_provider_id).where(RP.c.uuid == uuid)).scalar()

    def any_root_with(self, required: frozenset[int], forbidden: frozenset[int]) -> bool:
        """Whether a root has all ``required`` traits and no ``forbidden`` one."""
        query = select(RP.c.id).where(RP.c.parent_provider_id.is_(None))
        for trait in required:
            query = query.where(RP.c.id.in_(pf.having_any_trait([trait])))
        if forbidden:
            query = query.where(RP.c.id.not_in(pf.having_any_trait(sorted(forbidden))))
        return self.conn.execute(query.limit(1)).first() is not None

    def any_in_aggregates(self, member_of: list[frozenset[int]]) -> bool:
        """Whether some provider is in (one of) each aggregate set."""
        query = select(RP.c.id).where(and_(*(RP.c.id.in_(_in_aggregates(a)) for a in member_of)))
        return self.conn.execute(query.limit(1)).first() is not None

    def any_capacity(self, rc: int, amount: int, tree_root: int | None) -> bool:
        """Whether some provider has room for ``amount`` of ``rc``."""
        query = capacity_query(rc, amount, tree_root).limit(1)
        return self.conn.execute(query).first() is not None
