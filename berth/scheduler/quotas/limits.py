"""Quota limits: per project (stored with user_id "") and per user in a project.

Setting a scope's limits replaces them all; a resource without a limit is
unlimited.  A limit names ``instances`` or a resource class that exists
(custom classes are created first, as inventories require).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Connection, and_, delete, insert, or_, select

from berth.db.clock import utcnow
from berth.db.tables import QUOTA_LIMIT, RC
from berth.placement import errors
from berth.scheduler.quotas.model import INSTANCES, MAX_LIMIT, Scope

# The user_id of a project's own limits.
PROJECT_WIDE = ""


def _stored_user(scope: Scope) -> str:
    return PROJECT_WIDE if scope.user_id is None else scope.user_id


def check_scope(scope: Scope) -> None:
    """InvalidInput unless the scope names a project (and a user, when it has one)."""
    if not scope.project_id or scope.user_id == PROJECT_WIDE:
        raise errors.InvalidInput("A quota scope needs a project id and, if any, a user id.")
    for value in (scope.project_id, scope.user_id):
        if value is not None and len(value) > 255:
            raise errors.InvalidInput(f"Project and user ids are at most 255 long: {value}")


def _check_values(limits: Mapping[str, int]) -> None:
    bad = sorted(
        resource
        for resource, value in limits.items()
        if type(value) is not int or not 0 <= value <= MAX_LIMIT
    )
    if bad:
        raise errors.InvalidInput(
            f"Quota limits must be whole numbers from 0 to {MAX_LIMIT}: {', '.join(bad)}"
        )


def _check_resources(conn: Connection, resources: Iterable[str]) -> None:
    classes = set(resources) - {INSTANCES}
    if not classes:
        return
    known = set(conn.execute(select(RC.c.name).where(RC.c.name.in_(sorted(classes)))).scalars())
    unknown = sorted(classes - known)
    if unknown:
        raise errors.InvalidInput(
            f"No such resource class(es): {', '.join(unknown)}. A quota limit names "
            f"'{INSTANCES}' or an existing resource class."
        )


def set_limits(conn: Connection, scope: Scope, limits: Mapping[str, int]) -> dict[str, int]:
    """Replace the limits of ``scope`` by ``limits`` (resource -> limit); the limits set.

    Two writers of one scope at once: the second one's insert hits the
    unique key and its transaction runs again (``atomically``), then wins.
    """
    check_scope(scope)
    _check_values(limits)
    _check_resources(conn, limits)
    delete_limits(conn, scope)
    if limits:
        now, user = utcnow(), _stored_user(scope)
        conn.execute(
            insert(QUOTA_LIMIT),
            [
                {
                    "project_id": scope.project_id,
                    "user_id": user,
                    "resource": resource,
                    "hard_limit": limit,
                    "created_at": now,
                }
                for resource, limit in sorted(limits.items())
            ],
        )
    return dict(limits)


def delete_limits(conn: Connection, scope: Scope) -> None:
    """Remove every limit of ``scope`` (a project's own limits leave its users' alone)."""
    check_scope(scope)
    conn.execute(
        delete(QUOTA_LIMIT).where(
            QUOTA_LIMIT.c.project_id == scope.project_id,
            QUOTA_LIMIT.c.user_id == _stored_user(scope),
        )
    )


def limits_of(conn: Connection, scopes: Iterable[Scope]) -> dict[Scope, dict[str, int]]:
    """The limits of each of ``scopes`` (in the order given), read in one statement."""
    wanted = {(s.project_id, _stored_user(s)): s for s in scopes}
    found: dict[Scope, dict[str, int]] = {s: {} for s in wanted.values()}
    clauses = [
        and_(QUOTA_LIMIT.c.project_id == project, QUOTA_LIMIT.c.user_id == user)
        for project, user in wanted
    ]
    rows = conn.execute(
        select(
            QUOTA_LIMIT.c.project_id,
            QUOTA_LIMIT.c.user_id,
            QUOTA_LIMIT.c.resource,
            QUOTA_LIMIT.c.hard_limit,
        ).where(or_(*clauses))
    )
    for row in rows:
        found[wanted[(row.project_id, row.user_id)]][row.resource] = int(row.hard_limit)
    return found


def get_limits(conn: Connection, scope: Scope) -> dict[str, int]:
    """The limits of ``scope``: resource -> limit (empty: no limit at all)."""
    check_scope(scope)
    return limits_of(conn, [scope])[scope]
