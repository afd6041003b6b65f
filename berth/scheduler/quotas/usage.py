"""Usage as quotas count it: allocations (as ``GET /usages`` sums them) plus live
reservations, per scope, in one statement.

In use: per resource class, what the allocations of the scope's consumers
add up to (what ``GET /usages?project_id=&user_id=`` answers), and as
``instances`` the number of the scope's consumers holding allocations.
Reserved: what the scope's reservations whose ``expires_at`` is still ahead
add up to; an expired one never counts, purged or not.

How: one pass per project, grouped by user.  The project's consumers are
found by ``ix_consumers_project_user_uuid`` and their allocations by
``consumer_id``; the rows are added up per (user, class), and the consumers
holding any per user, so a project's total and its user's share come out of
the same pass (a user's consumers are a subset of the project's).  The
earlier form ran four aggregates (project and user, sums and a distinct
count) each over the whole allocations table joined to consumers.  The
cost still grows with the number of allocations the project holds; only
the constant shrank (docs/pull.md, "The reserve step").

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

from sqlalchemy import (
    Connection,
    Integer,
    Select,
    String,
    exists,
    func,
    literal_column,
    select,
    union_all,
)

from berth.db.tables import ALLOC, CONSUMER, PROJECT, QUOTA_RESERVATION, RC, USER
from berth.scheduler.quotas.model import INSTANCES, Scope, Usage, moment

IN_USE, RESERVED = "in_use", "reserved"
# (project index, kind, user, resource, amount): one row per user and resource.
Row = tuple[int, str, str, str, int]


def _tag(index: int, kind: str) -> list[Any]:
    return [
        literal_column(str(index), Integer).label("project"),
        literal_column(f"'{kind}'", String).label("kind"),
    ]


def _project_id(project_id: str) -> Any:
    return select(PROJECT.c.id).where(PROJECT.c.external_id == project_id).scalar_subquery()


def _class_sums(index: int, project_id: str) -> Select[Any]:
    """Per (user, class): what the project's consumers' allocations add up to."""
    sums = (
        select(
            CONSUMER.c.user_id,
            ALLOC.c.resource_class_id,
            func.sum(ALLOC.c.used).label("amount"),
        )
        .select_from(CONSUMER.join(ALLOC, ALLOC.c.consumer_id == CONSUMER.c.uuid))
        .where(CONSUMER.c.project_id == _project_id(project_id))
        .group_by(CONSUMER.c.user_id, ALLOC.c.resource_class_id)
        .subquery()
    )
    return select(*_tag(index, IN_USE), USER.c.external_id, RC.c.name, sums.c.amount).select_from(
        sums.join(USER, USER.c.id == sums.c.user_id).join(RC, RC.c.id == sums.c.resource_class_id)
    )


def _holders(index: int, project_id: str) -> Select[Any]:
    """Per user: how many of the project's consumers hold allocations."""
    holds = exists().where(ALLOC.c.consumer_id == CONSUMER.c.uuid)
    counts = (
        select(CONSUMER.c.user_id, func.count().label("amount"))
        .where(CONSUMER.c.project_id == _project_id(project_id), holds)
        .group_by(CONSUMER.c.user_id)
        .subquery()
    )
    instances = literal_column(f"'{INSTANCES}'", String)
    return select(*_tag(index, IN_USE), USER.c.external_id, instances, counts.c.amount).select_from(
        counts.join(USER, USER.c.id == counts.c.user_id)
    )


def _reserved(index: int, project_id: str, now: datetime.datetime) -> Select[Any]:
    """Per (user, resource): what the project's live reservations set aside."""
    QR = QUOTA_RESERVATION
    return (
        select(*_tag(index, RESERVED), QR.c.user_id, QR.c.resource, func.sum(QR.c.amount))
        .where(QR.c.project_id == project_id, QR.c.expires_at > now)
        .group_by(QR.c.user_id, QR.c.resource)
    )


def _rows(conn: Connection, projects: Sequence[str], now: datetime.datetime) -> list[Row]:
    parts = [
        part
        for i, project in enumerate(projects)
        for part in (_class_sums(i, project), _holders(i, project), _reserved(i, project, now))
    ]
    return [(int(p), k, u, r, int(a)) for p, k, u, r, a in conn.execute(union_all(*parts)) if a]


def _add(rows: Sequence[Row], kind: str, user_id: str | None) -> dict[str, int]:
    """The rows of ``kind`` added up per resource, for one user or (None) all of them."""
    total: dict[str, int] = {}
    for _, row_kind, user, resource, amount in rows:
        if row_kind == kind and (user_id is None or user == user_id):
            total[resource] = total.get(resource, 0) + amount
    return total


def usage_of(
    conn: Connection, scopes: Sequence[Scope], now: datetime.datetime | None = None
) -> dict[Scope, Usage]:
    """The usage of each of ``scopes`` at ``now``, read in one statement."""
    projects = sorted({scope.project_id for scope in scopes})
    rows = _rows(conn, projects, moment(now))
    found: dict[Scope, Usage] = {}
    for scope in scopes:
        mine = [row for row in rows if projects[row[0]] == scope.project_id]
        user = scope.user_id or None  # "" counts the whole project, as GET /usages does
        in_use = _add(mine, IN_USE, user)
        reserved = _add(mine, RESERVED, scope.user_id)
        found[scope] = Usage(in_use=in_use, reserved=reserved)
    return found


def usage(conn: Connection, scope: Scope, now: datetime.datetime | None = None) -> Usage:
    """The usage of ``scope`` at ``now`` (default: the clock)."""
    return usage_of(conn, [scope], now)[scope]
