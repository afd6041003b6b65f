"""What agents report besides claims: heartbeats, instances booted, instances deleted.

Each is a batch in one transaction (run through ``atomically``: a lost
compare-and-swap runs it again, reading the new state):

* :func:`heartbeat`: the hosts' rows say which agent runs them and when it
  last spoke; a host silent for ``pull_heartbeat_timeout_s`` is dead to the
  sweeper.
* :func:`activate`: claimed -> active, when the instance is still claimed
  by that host (``active``; already active there: ``active`` again); else
  ``taken``: the claim is no longer the host's (do not boot it).
* :func:`deleted`: deleting -> deleted, its allocation removed (quota
  counts allocations, so it is released here) and its server-group
  membership forgotten; already deleted there: ``deleted``; else ``taken``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from berth.db.clock import utcnow
from berth.db.tables import PULL_HOST
from berth.placement import consumers, errors
from berth.pull import instances
from berth.pull.claims import Result
from berth.pull.instances import Instance
from berth.pull.model import (
    ACTIVE,
    ACTIVE_OUTCOME,
    CLAIMED,
    DELETED,
    DELETED_OUTCOME,
    DELETING,
    TAKEN,
)
from berth.scheduler import groups

CONFIRMED_BY_HOST = "deleted by its host"


@dataclass(frozen=True)
class Report:
    """An agent's word about one instance on one of its hosts."""

    instance: str
    host: str


def heartbeat(conn: Connection, agent: str, hosts: Sequence[str]) -> None:
    """Record that ``agent`` runs ``hosts`` and is alive now."""
    now = utcnow()
    wanted = sorted(set(hosts))
    for start in range(0, len(wanted), instances.CHUNK):
        chunk = wanted[start : start + instances.CHUNK]
        query = select(PULL_HOST.c.host_uuid).where(PULL_HOST.c.host_uuid.in_(chunk))
        known = set(conn.execute(query).scalars())
        if known:
            conn.execute(
                update(PULL_HOST)
                .where(PULL_HOST.c.host_uuid.in_(sorted(known)))
                .values(agent=agent, heartbeat_at=now)
            )
        fresh = [h for h in chunk if h not in known]
        if fresh:  # a concurrent first heartbeat: the unique key, and atomically runs again
            rows = [{"host_uuid": h, "agent": agent, "heartbeat_at": now} for h in fresh]
            conn.execute(insert(PULL_HOST), rows)


def _sort(
    conn: Connection, reports: Sequence[Report], from_state: str, to_state: str
) -> tuple[list[Instance], list[Result]]:
    """The instances to move (in ``from_state`` on the reported host) and the result of
    each report (``to_state``'s outcome for those, and for those already there)."""
    rows = instances.read(conn, [r.instance for r in reports])
    outcome = ACTIVE_OUTCOME if to_state == ACTIVE else DELETED_OUTCOME
    moving: dict[str, Instance] = {}
    results = []
    for report in reports:
        row = rows.get(report.instance)
        if row is None or row.host != report.host:
            held = "no such instance" if row is None else f"the instance is not on {report.host}"
            results.append(Result(report.instance, TAKEN, held))
        elif row.state == from_state or report.instance in moving:
            moving[report.instance] = row
            results.append(Result(report.instance, outcome))
        elif row.state == to_state:
            results.append(Result(report.instance, outcome))
        else:
            results.append(Result(report.instance, TAKEN, f"the instance is {row.state}"))
    return list(moving.values()), results


def activate(conn: Connection, reports: Sequence[Report]) -> list[Result]:
    """Claimed -> active for the instances still claimed by the reporting host."""
    moving, results = _sort(conn, reports, CLAIMED, ACTIVE)
    instances.move(conn, moving, {"state": ACTIVE}, utcnow(), by_host=True)
    return results


def deleted(conn: Connection, reports: Sequence[Report]) -> list[Result]:
    """Deleting -> deleted, allocations removed, for the instances their host deleted."""
    moving, results = _sort(conn, reports, DELETING, DELETED)
    release(conn, moving)
    values = {"state": DELETED, "reason": CONFIRMED_BY_HOST, "published": True}
    instances.move(conn, moving, values, utcnow(), by_host=True)
    return results


def release(conn: Connection, gone: Sequence[Instance]) -> None:
    """Remove the allocations and group memberships of ``gone`` (in the caller's write)."""
    for instance in gone:
        with contextlib.suppress(errors.NotFound):  # never written, or removed already
            consumers.delete_allocations(conn, instance.uuid)
    by_group: dict[str, list[str]] = {}
    for instance in gone:
        if instance.server_group:
            by_group.setdefault(instance.server_group, []).append(instance.uuid)
    for group, members in sorted(by_group.items()):
        groups.forget(conn, group, members)
