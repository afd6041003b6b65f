"""SQL building blocks that select provider ids by trait, aggregate and capacity.

Each function returns a SELECT of ``resource_providers.id``-compatible ids, to
be combined with ``IN`` by the caller.  They are shared by the provider list
and by the SQL path of allocation candidates.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Select, and_, func, literal, select

from berth.db.tables import AGG, ALLOC, INV, RP_AGG, RP_TRAIT, TRAIT
from berth.placement import errors


def trait_ids(conn: Connection, names: Iterable[str]) -> dict[str, int]:
    """Ids of the named traits; NotFound listing every unknown name."""
    wanted = set(names)
    if not wanted:
        return {}
    rows = conn.execute(select(TRAIT.c.name, TRAIT.c.id).where(TRAIT.c.name.in_(wanted)))
    found = {r.name: r.id for r in rows}
    missing = sorted(wanted - set(found))
    if missing:
        raise errors.NotFound(f"No such trait(s): {', '.join(missing)}.")
    return found


def having_any_trait(ids: Iterable[int]) -> Select[tuple[int]]:
    """Providers holding any of the given traits."""
    return (
        select(RP_TRAIT.c.resource_provider_id).where(RP_TRAIT.c.trait_id.in_(list(ids))).distinct()
    )


def in_any_aggregate(uuids: Iterable[str]) -> Select[tuple[int]]:
    """Providers that are members of any of the aggregates named by uuid."""
    return (
        select(RP_AGG.c.resource_provider_id)
        .join(AGG, AGG.c.id == RP_AGG.c.aggregate_id)
        .where(AGG.c.uuid.in_(list(uuids)))
        .distinct()
    )


def usage_subquery(rc_id: int):  # type: ignore[no-untyped-def]
    """Per-provider usage of one class, as a subquery (provider id, used)."""
    return (
        select(ALLOC.c.resource_provider_id, func.sum(ALLOC.c.used).label("used"))
        .where(ALLOC.c.resource_class_id == rc_id)
        .group_by(ALLOC.c.resource_provider_id)
        .subquery()
    )


def with_capacity(rc_id: int, amount: int) -> Select[tuple[int]]:
    """Providers whose inventory of ``rc_id`` can take ``amount`` more."""
    usage = usage_subquery(rc_id)
    used = func.coalesce(usage.c.used, 0)
    return (
        select(INV.c.resource_provider_id)
        .select_from(
            INV.outerjoin(usage, usage.c.resource_provider_id == INV.c.resource_provider_id)
        )
        .where(
            and_(
                INV.c.resource_class_id == rc_id,
                used + amount <= (INV.c.total - INV.c.reserved) * INV.c.allocation_ratio,
                INV.c.min_unit <= amount,
                INV.c.max_unit >= amount,
                literal(amount) % INV.c.step_size == 0,
            )
        )
    )
