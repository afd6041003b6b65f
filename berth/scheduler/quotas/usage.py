"""Usage as quotas count it: allocations (as ``GET /usages`` sums them) plus live
reservations, for a project and optionally one user in it, in one statement.

In use: per resource class, what the allocations of the scope's consumers
add up to (what ``GET /usages?project_id=&user_id=`` answers), and as
``instances`` the number of the scope's consumers holding allocations.
Reserved: what the scope's reservations whose ``expires_at`` is still ahead
add up to; an expired one never counts, purged or not.

Why one statement: a claim replaces a reservation by allocations in one
transaction (:func:`berth.scheduler.quotas.reservations.consume`) without
moving the project's generation, and one statement reads from one snapshot
on every backend, so a count sees the reservation or the allocations, never
neither.

What it costs: the project's allocations are read once per part asked for
(the class sums, the instance count), the user's figures beside the
project's in the same pass (a ``CASE`` on the consumer's user), the class
names joined to the sums rather than to every allocation.  The statements
are built once (:data:`_STATEMENTS`), one per shape: with or without the
user, with or without the class sums (a check whose limits are only
``instances`` reads no class).
"""

from __future__ import annotations

import datetime
from collections.abc import Collection
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    String,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    select,
    true,
    union_all,
)

from berth.db.tables import ALLOC, CONSUMER, PROJECT, QUOTA_RESERVATION, RC, USER
from berth.scheduler.quotas.model import INSTANCES, Scope, Usage, moment

# What a row of the statement is (its first column).
_IN_USE, _INSTANCES, _RESERVED = range(3)


def _statement(dialect: str, with_user: bool, with_classes: bool) -> Any:
    """Rows (kind, resource, project's amount, user's amount) for :func:`usage_of`.

    Every part starts from the project's consumers (an index on
    ``consumers.project_id``) and reaches their allocations by consumer (an
    index on ``allocations.consumer_id``), so a count reads the project's rows
    and no other: a planner that joined the other way would read every
    allocation of the cloud.  Planners pick that other way when they misjudge
    a project's size (its id is a sub-select, unknown when planning), so the
    order is fixed: on PostgreSQL by a ``LATERAL`` sub-select it cannot flatten
    (``OFFSET 0``, ``LIMIT 1``), on MariaDB and MySQL by ``STRAIGHT_JOIN``;
    SQLite joins in the written order when an index serves it.
    """
    project_id = select(PROJECT.c.id).where(PROJECT.c.external_id == bindparam("project"))
    in_project = CONSUMER.c.project_id == project_id.scalar_subquery()
    user_used: ColumnElement[Any]
    user_consumers: ColumnElement[Any]
    user_reserved: ColumnElement[Any]
    if with_user:
        user_id = select(USER.c.id).where(USER.c.external_id == bindparam("user"))
        mine = CONSUMER.c.user_id == user_id.scalar_subquery()
        QR = QUOTA_RESERVATION
        user_reserved = func.sum(case((QR.c.user_id == bindparam("user"), QR.c.amount), else_=0))
    else:
        mine = None
        user_reserved = literal_column("0", Integer)
    lateral = dialect == "postgresql"
    parts = []
    if with_classes:
        held = select(ALLOC.c.resource_class_id, ALLOC.c.used).where(
            ALLOC.c.consumer_id == CONSUMER.c.uuid
        )
        if lateral:
            rows = held.offset(0).lateral("held")
            joined = CONSUMER.join(rows, true())
            rc, used = rows.c.resource_class_id, rows.c.used
        else:
            joined = CONSUMER.join(ALLOC, ALLOC.c.consumer_id == CONSUMER.c.uuid)
            rc, used = ALLOC.c.resource_class_id, ALLOC.c.used
        user_used = (
            func.sum(case((mine, used), else_=0))
            if mine is not None
            else literal_column("0", Integer)
        )
        sums = (
            select(rc.label("rc"), func.sum(used).label("amount"), user_used.label("mine"))
            .select_from(joined)
            .where(in_project)
            .group_by(rc)
        )
        if not lateral:
            sums = sums.prefix_with("STRAIGHT_JOIN", dialect="mysql")
        summed = sums.subquery()
        parts.append(
            select(
                literal_column(str(_IN_USE), Integer), RC.c.name, summed.c.amount, summed.c.mine
            ).join_from(summed, RC, RC.c.id == summed.c.rc)
        )
    # A consumer counts as an instance while it holds an allocation.
    holds: Select[Any] = select(literal_column("1")).where(ALLOC.c.consumer_id == CONSUMER.c.uuid)
    user_consumers = (
        func.sum(case((mine, 1), else_=0)) if mine is not None else literal_column("0", Integer)
    )
    instances = select(
        literal_column(str(_INSTANCES), Integer),
        literal(INSTANCES, String),
        func.count(),
        user_consumers,
    )
    if lateral:
        holding = CONSUMER.join(holds.limit(1).lateral("holds"), true())
        parts.append(instances.select_from(holding).where(in_project))
    else:
        parts.append(instances.select_from(CONSUMER).where(in_project, holds.exists()))
    QR = QUOTA_RESERVATION
    parts.append(
        select(
            literal_column(str(_RESERVED), Integer),
            QR.c.resource,
            func.sum(QR.c.amount),
            user_reserved,
        )
        .where(QR.c.project_id == bindparam("project"), QR.c.expires_at > bindparam("now"))
        .group_by(QR.c.resource)
    )
    return union_all(*parts)


# Built once per dialect and shape: a statement object reused is not analysed again.
_DIALECTS = ("postgresql", "mysql", "sqlite")
_STATEMENTS = {
    (d, u, c): _statement(d, u, c) for d in _DIALECTS for u in (False, True) for c in (False, True)
}


def usage_of(
    conn: Connection,
    project_id: str,
    user_id: str | None = None,
    now: datetime.datetime | None = None,
    resources: Collection[str] | None = None,
) -> dict[Scope, Usage]:
    """The usage at ``now`` of the project and, when ``user_id`` is given, of that user in
    it, read in one statement.

    ``resources``: the only ones wanted (``None``: all); when ``instances`` is
    the only one, no class is summed.  What is not wanted may still be there.
    """
    with_classes = resources is None or any(r != INSTANCES for r in resources)
    params: dict[str, Any] = {"project": project_id, "now": moment(now)}
    if user_id is not None:
        params["user"] = user_id
    dialect = conn.dialect.name if conn.dialect.name in _DIALECTS else "sqlite"
    statement = _STATEMENTS[(dialect, user_id is not None, with_classes)]
    project: dict[int, dict[str, int]] = {_IN_USE: {}, _RESERVED: {}}
    user: dict[int, dict[str, int]] = {_IN_USE: {}, _RESERVED: {}}
    for kind, resource, amount, mine in conn.execute(statement, params):
        kind = _RESERVED if kind == _RESERVED else _IN_USE
        if amount:
            project[kind][resource] = int(amount)
        if mine:
            user[kind][resource] = int(mine)
    found = {Scope(project_id): Usage(in_use=project[_IN_USE], reserved=project[_RESERVED])}
    if user_id is not None:
        found[Scope(project_id, user_id)] = Usage(in_use=user[_IN_USE], reserved=user[_RESERVED])
    return found


def usage(conn: Connection, scope: Scope, now: datetime.datetime | None = None) -> Usage:
    """The usage of ``scope`` at ``now`` (default: the clock)."""
    return usage_of(conn, scope.project_id, scope.user_id, now)[scope]
