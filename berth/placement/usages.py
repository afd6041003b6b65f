"""Usages: what allocations consume, per provider or per project (and user).

A provider's usage lists every class it has inventory of (0 when nothing is
allocated).  A project's usage lists only classes with allocations; from
microversion 1.38 it is grouped by consumer type with a count of distinct
consumers per group (consumers without a type are grouped as "unknown").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, and_, func, select

from berth.db.tables import ALLOC, CONSUMER, CONSUMER_TYPE, INV, PROJECT, RC, USER

# The group name of consumers without a consumer type.
UNKNOWN_TYPE = "unknown"
# consumer_type filter keywords: everything in one group, or the untyped only.
ALL_TYPES = "all"


@dataclass(frozen=True)
class ProjectFilter:
    """Whose allocations to add up: a project, optionally one user in it."""

    project_id: str
    user_id: str | None = None


def provider_usages(conn: Connection, provider_id: int) -> dict[str, int]:
    """Class name -> amount allocated, for every class the provider has inventory of."""
    used = func.coalesce(func.sum(ALLOC.c.used), 0)
    rows = conn.execute(
        select(RC.c.name, used)
        .select_from(
            INV.join(RC, INV.c.resource_class_id == RC.c.id).outerjoin(
                ALLOC,
                and_(
                    ALLOC.c.resource_provider_id == INV.c.resource_provider_id,
                    ALLOC.c.resource_class_id == INV.c.resource_class_id,
                ),
            )
        )
        .where(INV.c.resource_provider_id == provider_id)
        .group_by(INV.c.resource_class_id, RC.c.name)
        .order_by(INV.c.resource_class_id)
    ).all()
    return {name: int(amount) for name, amount in rows}


def _scoped(query: Select[Any], who: ProjectFilter) -> Select[Any]:
    """Restrict a query over allocations to the consumers of ``who``."""
    query = query.join(CONSUMER, ALLOC.c.consumer_id == CONSUMER.c.uuid).join(
        PROJECT, CONSUMER.c.project_id == PROJECT.c.id
    )
    query = query.where(PROJECT.c.external_id == who.project_id)
    if who.user_id:
        query = query.join(USER, CONSUMER.c.user_id == USER.c.id).where(
            USER.c.external_id == who.user_id
        )
    return query


def _by_class(conn: Connection, query: Select[Any]) -> dict[str, int]:
    return {name: int(amount) for name, amount in conn.execute(query)}


def class_sums(who: ProjectFilter) -> Select[Any]:
    """The query of (class name, amount) allocated to the consumers of ``who``, per class.

    Columns ``name`` and ``amount``; quotas (``berth.scheduler.quotas``) count
    with it too.
    """
    query = select(RC.c.name, func.sum(ALLOC.c.used).label("amount")).select_from(
        ALLOC.join(RC, ALLOC.c.resource_class_id == RC.c.id)
    )
    return _scoped(query, who).group_by(ALLOC.c.resource_class_id, RC.c.name)


def consumer_count(who: ProjectFilter) -> Select[Any]:
    """The query of how many consumers of ``who`` hold allocations (column ``amount``)."""
    count = func.count(func.distinct(ALLOC.c.consumer_id)).label("amount")
    return _scoped(select(count).select_from(ALLOC), who)


def total_usages(conn: Connection, who: ProjectFilter) -> dict[str, int]:
    """Class name -> amount allocated to the project's (or user's) consumers."""
    return _by_class(conn, class_sums(who))


def _one_group(conn: Connection, who: ProjectFilter, only_untyped: bool) -> dict[str, Any]:
    sums = class_sums(who)
    count = consumer_count(who)
    if only_untyped:
        sums = sums.where(CONSUMER.c.consumer_type_id.is_(None))
        count = count.where(CONSUMER.c.consumer_type_id.is_(None))
    usage: dict[str, Any] = _by_class(conn, sums)
    if usage:
        usage["consumer_count"] = int(conn.execute(count).scalar_one())
    return usage


def _per_type(conn: Connection, who: ProjectFilter, type_name: str | None) -> dict[str, Any]:
    base = _scoped(select(CONSUMER_TYPE.c.name).select_from(ALLOC), who).outerjoin(
        CONSUMER_TYPE, CONSUMER.c.consumer_type_id == CONSUMER_TYPE.c.id
    )
    if type_name is not None:
        base = base.where(CONSUMER_TYPE.c.name == type_name)
    sums = (
        base.add_columns(RC.c.name.label("rc_name"), func.sum(ALLOC.c.used))
        .join(RC, ALLOC.c.resource_class_id == RC.c.id)
        .group_by(CONSUMER_TYPE.c.name, ALLOC.c.resource_class_id, RC.c.name)
    )
    grouped: dict[str, dict[str, Any]] = {}
    for kind, rc_name, amount in conn.execute(sums):
        grouped.setdefault(kind or UNKNOWN_TYPE, {})[rc_name] = int(amount)
    # Counted per type, not per class: a consumer of two classes counts once.
    counts = base.add_columns(func.count(func.distinct(ALLOC.c.consumer_id)))
    for kind, consumers in conn.execute(counts.group_by(CONSUMER_TYPE.c.name)):
        if (kind or UNKNOWN_TYPE) in grouped:
            grouped[kind or UNKNOWN_TYPE]["consumer_count"] = int(consumers)
    return grouped


def usages_by_consumer_type(
    conn: Connection, who: ProjectFilter, consumer_type: str | None
) -> dict[str, dict[str, Any]]:
    """Consumer type -> {class name -> amount, "consumer_count": n} (microversion 1.38).

    ``consumer_type`` "all" puts everything in one group, "unknown" keeps only
    consumers without a type, another name keeps only that type, None keeps
    every type in its own group.
    """
    if consumer_type in (ALL_TYPES, UNKNOWN_TYPE):
        group = _one_group(conn, who, only_untyped=consumer_type == UNKNOWN_TYPE)
        return {consumer_type: group} if group else {}
    return _per_type(conn, who, consumer_type)
