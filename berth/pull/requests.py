"""Client requests: enqueue (quota reserved, rows inserted), show, delete.

:func:`enqueue` runs in ONE write transaction, through ``atomically`` with
``operation = quotas.OPERATION`` (the reservation's project generation swap
may lose a race and run it again)::

    flavor        by uuid, else by name; unknown: InvalidInput
    capabilities  every trait exists; unknown: InvalidInput
    server group  exists; unknown: InvalidInput
    queue         its row (inserted, unsynced, for a new capability set)
    quota         quotas.reserve_each: judged for all instances at once, one
                  reservation per instance; over a limit: QuotaExceeded,
                  nothing written
    rows          the request, and its instances queued (published = false)

The messages go out after the commit (:mod:`berth.pull.outbox`).
:func:`delete` moves queued instances to deleted at once (reservation
released) and claimed or active ones to deleting, whose delete messages the
caller sends after the commit.
"""

from __future__ import annotations

import datetime
import uuid as uuidlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select

from berth.db.arrays import BulkInsert
from berth.db.clock import utcnow
from berth.db.tables import PULL_INSTANCE, PULL_REQUEST
from berth.placement import errors, traits
from berth.pull import instances, queues
from berth.pull.instances import Instance
from berth.pull.model import (
    ACTIVE,
    CLAIMED,
    DELETED,
    DELETING,
    QUEUED,
    REQUEST_NOT_FOUND,
    Queue,
    dumps,
    least_advanced,
)
from berth.scheduler import flavors, groups, quotas
from berth.scheduler.flavors import Flavor
from berth.scheduler.quotas import Scope

DELETED_BY_CLIENT = "deleted by its request's DELETE before a host claimed it"


@dataclass(frozen=True)
class Order:
    """What a client asks for: ``count`` instances of a flavor (uuid or name)."""

    flavor: str
    count: int
    project_id: str
    user_id: str
    server_group: str | None = None
    capabilities: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Enqueued:
    """A request just queued: its uuid, its instances, its queue (new or not)."""

    uuid: str
    instances: list[Instance]
    queue: Queue
    new_queue: bool

    def as_body(self) -> dict[str, Any]:
        """The 202 body of ``POST /scheduler/requests``."""
        return {"uuid": self.uuid, "instances": [i.uuid for i in self.instances], "state": QUEUED}


def find_flavor(conn: Connection, named: str) -> Flavor:
    """The flavor with uuid ``named``, else the one called ``named``; InvalidInput if none."""
    flavor = flavors.find(conn, named) or flavors.find_by_name(conn, named)
    if flavor is None:
        raise errors.InvalidInput(f"No flavor with uuid or name {named!r}")
    return flavor


def _check(conn: Connection, order: Order, flavor: Flavor) -> None:
    """InvalidInput for unknown capability traits, clashes, an unknown server group."""
    try:
        traits.trait_ids(conn, order.capabilities)
    except errors.NotFound as exc:
        raise errors.InvalidInput(f"Unknown capability: {exc.message}") from None
    clash = order.capabilities & flavor.forbidden_traits
    if clash:
        raise errors.InvalidInput(f"Capabilities the flavor forbids: {', '.join(sorted(clash))}")
    group = order.server_group
    if group is not None and groups.find(conn, group, with_members=False) is None:
        raise errors.InvalidInput(f"No server group with uuid {group}")


def enqueue(
    conn: Connection, order: Order, ttl_seconds: int, now: datetime.datetime | None = None
) -> Enqueued:
    """Reserve quota for ``order`` and queue its instances (see the module docstring)."""
    flavor = find_flavor(conn, order.flavor)
    _check(conn, order, flavor)
    queue = queues.queue_of(flavor, order.capabilities)
    new_queue = queues.ensure_row(conn, queue)
    scope = Scope(order.project_id, order.user_id)
    reservations = quotas.reserve_each(
        conn, scope, flavor.resources, order.count, ttl_seconds=ttl_seconds, now=now
    )
    at = now or utcnow()
    request = str(uuidlib.uuid4())
    _insert_request(conn, request, order, queue, at)
    made = [
        Instance(
            str(uuidlib.uuid4()), request, queue.name, QUEUED, None, None, r.uuid, 0, False,
            at, at, dict(flavor.resources), queue.required, queue.forbidden,
            order.project_id, order.user_id, order.server_group,
        )
        for r in reservations
    ]  # fmt: skip
    _insert_instances(conn, made)
    return Enqueued(request, made, queue, new_queue)


def _insert_request(
    conn: Connection, uuid: str, order: Order, queue: Queue, at: datetime.datetime
) -> None:
    conn.execute(
        insert(PULL_REQUEST).values(
            uuid=uuid,
            flavor_uuid=queue.flavor_uuid,
            count=order.count,
            queue=queue.name,
            resources=dumps(dict(queue.resources)),
            required_traits=dumps(sorted(queue.required)),
            forbidden_traits=dumps(sorted(queue.forbidden)),
            capabilities=dumps(sorted(queue.capabilities)),
            project_id=order.project_id,
            user_id=order.user_id,
            server_group=order.server_group,
            created_at=at,
        )
    )


_INSTANCES = BulkInsert(
    PULL_INSTANCE,
    (
        *("uuid", "request_uuid", "queue", "state", "reservation", "attempt", "published"),
        *("queued_at", "created_at", "updated_at"),
    ),
)


def _insert_instances(conn: Connection, made: Iterable[Instance]) -> None:
    _INSTANCES.run(
        conn,
        [
            (
                *(i.uuid, i.request, i.queue, i.state, i.reservation, i.attempt, False),
                *(i.queued_at, i.queued_at, i.queued_at),
            )
            for i in made
        ],
    )


def _request_row(conn: Connection, uuid: str) -> Any:
    row = conn.execute(select(PULL_REQUEST).where(PULL_REQUEST.c.uuid == uuid)).one_or_none()
    if row is None:
        raise errors.NotFound(f"No request with uuid {uuid} found", code=REQUEST_NOT_FOUND)
    return row


def show(conn: Connection, uuid: str) -> dict[str, Any]:
    """``GET /scheduler/requests/{uuid}``: the request and each instance's state."""
    row = _request_row(conn, uuid)
    found = instances.of_request(conn, uuid)
    return {
        "uuid": row.uuid,
        "flavor": row.flavor_uuid,
        "count": row.count,
        "project_id": row.project_id,
        "user_id": row.user_id,
        "server_group": row.server_group,
        "capabilities": orjson.loads(row.capabilities),
        "state": least_advanced(i.state for i in found),
        "instances": [
            {"uuid": i.uuid, "state": i.state, "host": i.host, "reason": i.reason} for i in found
        ],
    }


def delete(conn: Connection, uuid: str) -> list[Instance]:
    """Delete the request's instances: queued ones at once, claimed and active ones
    through their host (returned, to send their delete messages after the commit)."""
    _request_row(conn, uuid)
    found = instances.of_request(conn, uuid)
    now = utcnow()
    waiting = [i for i in found if i.state == QUEUED]
    if waiting:
        values = {"state": DELETED, "reason": DELETED_BY_CLIENT, "published": True}
        instances.move(conn, waiting, {**values, "reservation": None}, now)
        quotas.release_many(conn, [i.reservation for i in waiting if i.reservation])
    placed = [i for i in found if i.state in (CLAIMED, ACTIVE)]
    if placed:
        instances.move(conn, placed, {"state": DELETING, "published": False}, now)
    return [replace(i, state=DELETING, published=False) for i in placed]
