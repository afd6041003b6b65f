"""The checks after a pull run, and what both designs' lines report of the cloud at the end.

Straight from the database (the lab sees it, as :mod:`berth.bench.invariants`
does), after the run and the lab's withdrawal of what no host could take:

* every instance ends ``active``, ``failed`` with a reason, or ``deleted``
  (withdrawn): none left queued, claimed or deleting (``unsettled``);
* quota usage is the instances' rows: per resource, ``in_use`` is what the
  placed instances' requests ask for and ``reserved`` what the queued ones'
  do, ``instances`` counted the same way (``quota_mismatches``);
* no instance holds allocations on two hosts, every active one holds them on
  its own host, and no unplaced one holds any (``double_placed``,
  ``misplaced``, ``leaked``).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, and_, distinct, exists, func, select

from berth.db import tables as t
from berth.db.engine import Database
from berth.pull.model import ACTIVE, CLAIMED, DELETING, FAILED, QUEUED
from berth.scheduler import quotas
from berth.scheduler.quotas import Scope

PLACED = (CLAIMED, ACTIVE, DELETING)
PI, PR, ALLOC, RP = t.pull_instances, t.pull_requests, t.allocations, t.resource_providers


def hosts_used(database_url: str) -> int:
    """Root providers holding any allocation (how many hosts the placements occupy)."""
    query = (
        select(func.count(distinct(RP.c.root_provider_id)))
        .select_from(ALLOC.join(RP, RP.c.id == ALLOC.c.resource_provider_id))
    )  # fmt: skip
    db = Database(database_url)
    try:
        with db.read() as conn:
            return int(conn.execute(query).scalar() or 0)
    finally:
        db.dispose()


def active_instances(database_url: str) -> set[str]:
    """The uuids of the instances active now."""
    db = Database(database_url)
    try:
        with db.read() as conn:
            return set(conn.execute(select(PI.c.uuid).where(PI.c.state == ACTIVE)).scalars())
    finally:
        db.dispose()


def states(conn: Connection) -> dict[str, int]:
    """How many instances are in each state."""
    query = select(PI.c.state, func.count()).group_by(PI.c.state)
    return {str(state): int(n) for state, n in conn.execute(query)}


def _expected_usage(conn: Connection, project: str) -> tuple[dict[str, int], dict[str, int]]:
    """(in use, reserved) per resource as the project's instance rows imply them."""
    query = (
        select(PR.c.resources, PI.c.state, func.count())
        .select_from(PI.join(PR, PR.c.uuid == PI.c.request_uuid))
        .where(PR.c.project_id == project)
        .group_by(PR.c.resources, PI.c.state)
    )
    in_use: dict[str, int] = {}
    reserved: dict[str, int] = {}
    for resources, state, n in conn.execute(query):
        into = in_use if state in PLACED else reserved if state == QUEUED else None
        if into is None:
            continue
        for rc, amount in {**orjson.loads(resources), quotas.INSTANCES: 1}.items():
            into[rc] = into.get(rc, 0) + int(amount) * int(n)
    return in_use, reserved


def quota_mismatches(conn: Connection, project: str) -> list[dict[str, Any]]:
    """Resources whose quota usage in ``project`` differs from its instance rows' (empty:
    it matches)."""
    usage = quotas.usage(conn, Scope(project))
    in_use, reserved = _expected_usage(conn, project)
    wrong = []
    for kind, expected, found in (("in_use", in_use, usage.in_use),
                                  ("reserved", reserved, usage.reserved)):  # fmt: skip
        for rc in sorted(set(expected) | {r for r, n in found.items() if n}):
            if expected.get(rc, 0) != found.get(rc, 0):
                wrong.append({"project": project, "usage": kind, "resource": rc,
                              "rows": expected.get(rc, 0), "quota": found.get(rc, 0)})  # fmt: skip
    return wrong


def _placement_checks(conn: Connection) -> dict[str, int]:
    """Instances on two hosts, active ones not on their host, unplaced ones holding any."""
    roots = (
        select(ALLOC.c.consumer_id, RP.c.root_provider_id)
        .select_from(ALLOC.join(RP, RP.c.id == ALLOC.c.resource_provider_id))
        .distinct()
        .subquery()
    )
    double = (
        select(roots.c.consumer_id)
        .group_by(roots.c.consumer_id)
        .having(func.count() > 1)
        .subquery()
    )
    on_host = exists().where(
        and_(
            ALLOC.c.consumer_id == PI.c.uuid,
            RP.c.id == ALLOC.c.resource_provider_id,
            RP.c.uuid == PI.c.host,
        )
    )
    holds = exists().where(ALLOC.c.consumer_id == PI.c.uuid)
    count = select(func.count()).select_from(PI)
    return {
        "double_placed": int(conn.execute(select(func.count()).select_from(double)).scalar() or 0),
        "misplaced": int(conn.execute(count.where(PI.c.state == ACTIVE, ~on_host)).scalar() or 0),
        "leaked": int(conn.execute(count.where(PI.c.state.not_in(PLACED), holds)).scalar() or 0),
    }


def check(database_url: str, projects: list[str]) -> dict[str, Any]:
    """Every pull invariant above, as result-line fields (zeros when all hold)."""
    db = Database(database_url)
    try:
        with db.read() as conn:
            by_state = states(conn)
            no_reason = select(func.count()).select_from(PI)
            no_reason = no_reason.where(PI.c.state == FAILED, func.coalesce(PI.c.reason, "") == "")
            mismatches = [m for p in projects for m in quota_mismatches(conn, p)]
            found = {
                "states": by_state,
                "unsettled": sum(by_state.get(s, 0) for s in (QUEUED, CLAIMED, DELETING)),
                "failed_without_reason": int(conn.execute(no_reason).scalar() or 0),
                "quota_mismatches": len(mismatches),
                "quota_examples": mismatches[:5],
                **_placement_checks(conn),
            }
    finally:
        db.dispose()
    return found
