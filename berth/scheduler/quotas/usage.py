"""Usage as quotas count it: allocations (as ``GET /usages`` sums them) plus live
reservations, per scope, in one statement.

In use: per resource class, what the allocations of the scope's consumers
add up to (``berth.placement.usages.class_sums``, the query ``GET
/usages?project_id=&user_id=`` runs), and as ``instances`` the number of the
scope's consumers holding allocations.  Reserved: what the scope's
reservations whose ``expires_at`` is still ahead add up to; an expired one
never counts, purged or not.

Why one statement: a claim replaces a reservation by allocations in one
transaction (:func:`berth.scheduler.quotas.reservations.consume`) without
moving the project's generation, and one statement reads from one snapshot
on every backend, so a count sees the reservation or the allocations, never
neither.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Integer, Select, String, func, literal_column, select, union_all

from berth.db.tables import QUOTA_RESERVATION
from berth.placement.usages import ProjectFilter, class_sums, consumer_count
from berth.scheduler.quotas.model import INSTANCES, Scope, Usage, moment

IN_USE, RESERVED = "in_use", "reserved"


def _tagged(index: int, kind: str, query: Select[Any], resource: str | None) -> Select[Any]:
    """``query`` (columns ``amount`` and maybe ``name``) as rows (scope, kind, resource, amount)."""
    sub = query.subquery()
    return select(
        literal_column(str(index), Integer).label("scope"),
        literal_column(f"'{kind}'", String).label("kind"),
        sub.c.name if resource is None else literal_column(f"'{resource}'", String),
        sub.c.amount,
    )


def _reserved(scope: Scope, now: datetime.datetime) -> Select[Any]:
    QR = QUOTA_RESERVATION
    query = select(QR.c.resource.label("name"), func.sum(QR.c.amount).label("amount")).where(
        QR.c.project_id == scope.project_id, QR.c.expires_at > now
    )
    if scope.user_id is not None:
        query = query.where(QR.c.user_id == scope.user_id)
    return query.group_by(QR.c.resource)


def _parts(index: int, scope: Scope, now: datetime.datetime) -> list[Select[Any]]:
    who = ProjectFilter(scope.project_id, scope.user_id)
    return [
        _tagged(index, IN_USE, class_sums(who), None),
        _tagged(index, IN_USE, consumer_count(who), INSTANCES),
        _tagged(index, RESERVED, _reserved(scope, now), None),
    ]


def usage_of(
    conn: Connection, scopes: Sequence[Scope], now: datetime.datetime | None = None
) -> dict[Scope, Usage]:
    """The usage of each of ``scopes`` at ``now``, read in one statement."""
    at = moment(now)
    parts = [part for i, scope in enumerate(scopes) for part in _parts(i, scope, at)]
    counts: list[dict[str, dict[str, int]]] = [{IN_USE: {}, RESERVED: {}} for _ in scopes]
    for index, kind, resource, amount in conn.execute(union_all(*parts)):
        if amount:
            counts[int(index)][kind][resource] = int(amount)
    return {
        scope: Usage(in_use=c[IN_USE], reserved=c[RESERVED])
        for scope, c in zip(scopes, counts, strict=True)
    }


def usage(conn: Connection, scope: Scope, now: datetime.datetime | None = None) -> Usage:
    """The usage of ``scope`` at ``now`` (default: the clock)."""
    return usage_of(conn, [scope], now)[scope]
