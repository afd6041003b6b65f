"""What must hold after any fault, read from the database itself.

* no provider over capacity;
* every pull instance ended: active (on a host), failed with a reason, or deleted;
* per project, quota usage is what the rows say: in use = the consumers holding
  allocations (pull instances claimed, active or deleting, plus ``push`` consumers
  placed by select_destinations), reserved = the queued pull instances;
* no leaked allocation: a pull instance's allocations are all on its current
  host, and only while it is claimed, active or deleting.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import select

from berth.db import tables as t
from berth.db.engine import Database
from berth.scheduler import quotas
from berth.scheduler.quotas import Scope
from tests.helpers import over_committed

PLACED = ("claimed", "active", "deleting")


def pull_rows(db: Database) -> list[dict[str, Any]]:
    """Every pull instance: uuid, request, state, host, reason, attempt, published, project."""
    PI, PR = t.pull_instances, t.pull_requests
    columns = (PI.c.uuid, PI.c.request_uuid, PI.c.state, PI.c.host, PI.c.reason, PI.c.attempt)
    query = select(*columns, PI.c.published, PR.c.project_id).select_from(
        PI.join(PR, PR.c.uuid == PI.c.request_uuid)
    )
    with db.read() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def allocation_hosts(db: Database) -> dict[str, set[str]]:
    """Consumer uuid -> the uuids of the providers it has allocations on."""
    A, RP = t.allocations, t.resource_providers
    query = select(A.c.consumer_id, RP.c.uuid).join(RP, RP.c.id == A.c.resource_provider_id)
    found: dict[str, set[str]] = defaultdict(set)
    with db.read() as conn:
        for consumer, provider in conn.execute(query):
            found[consumer].add(provider)
    return found


def check(db: Database, push: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Assert every invariant above (``push``: placed select_destinations consumers per
    project); the pull rows."""
    assert over_committed(db) == []
    rows = pull_rows(db)
    for row in rows:
        assert row["state"] in ("active", "failed", "deleted"), row
        assert row["state"] != "failed" or row["reason"], row
        assert row["state"] != "active" or row["host"], row
    _check_quota(db, rows, push or {})
    held = allocation_hosts(db)
    for row in rows:
        expected = {row["host"]} if row["state"] in PLACED else set()
        assert held.get(row["uuid"], set()) == expected, ("leaked allocation", row)
    return rows


def _check_quota(db: Database, rows: list[dict[str, Any]], push: dict[str, int]) -> None:
    """Per project: in use = allocations' consumers, reserved = queued instances."""
    placed: Counter[str] = Counter(push)
    queued: Counter[str] = Counter()
    for row in rows:
        if row["state"] in PLACED:
            placed[row["project_id"]] += 1
        elif row["state"] == "queued":
            queued[row["project_id"]] += 1
    with db.read() as conn:
        for project in set(placed) | {r["project_id"] for r in rows}:
            usage = quotas.usage(conn, Scope(project))
            assert usage.in_use.get("instances", 0) == placed[project], (project, usage)
            assert usage.reserved.get("instances", 0) == queued[project], (project, usage)
