"""Instance rows: read them with their request, and move their state by compare-and-swap.

Every move is one ``UPDATE pull_instances SET ... WHERE uuid IN (...) AND
state = ? [AND host/attempt as read]`` whose row count must be the number of
instances moved: fewer means another writer (an agent's call, another
process's sweeper) moved one first, and :class:`ConcurrentUpdate` makes
``atomically`` run the whole transaction again, now reading the new state.
No row is locked beforehand.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, and_, case, select, update

from berth.db.tables import PULL_INSTANCE, PULL_REQUEST
from berth.placement import errors
from berth.pull.model import Work

# Rows per statement (bounded IN lists).
CHUNK = 500
LOST_RACE = "another writer moved the instance first"


@dataclass(frozen=True)
class Instance:
    """An instance row with what its request says about it."""

    uuid: str
    request: str
    queue: str
    state: str
    host: str | None
    reason: str | None
    reservation: str | None
    attempt: int
    published: bool
    queued_at: datetime.datetime
    updated_at: datetime.datetime | None
    resources: Mapping[str, int]
    required: frozenset[str]
    forbidden: frozenset[str]
    project_id: str
    user_id: str
    server_group: str | None

    def work(self) -> Work:
        """The instance's work message (its current attempt)."""
        return Work(
            self.uuid,
            self.request,
            self.queue,
            self.attempt,
            self.resources,
            self.required,
            self.forbidden,
            self.project_id,
            self.user_id,
            self.server_group,
        )


PI, PR = PULL_INSTANCE, PULL_REQUEST
COLUMNS = (
    PI.c.uuid,
    PI.c.request_uuid,
    PI.c.queue,
    PI.c.state,
    PI.c.host,
    PI.c.reason,
    PI.c.reservation,
    PI.c.attempt,
    PI.c.published,
    PI.c.queued_at,
    PI.c.updated_at,
    PR.c.resources,
    PR.c.required_traits,
    PR.c.forbidden_traits,
    PR.c.project_id,
    PR.c.user_id,
    PR.c.server_group,
)
JOINED = PI.join(PR, PR.c.uuid == PI.c.request_uuid)


def _instance(row: Any) -> Instance:
    return Instance(
        row.uuid,
        row.request_uuid,
        row.queue,
        row.state,
        row.host,
        row.reason,
        row.reservation,
        int(row.attempt),
        bool(row.published),
        row.queued_at,
        row.updated_at,
        orjson.loads(row.resources),
        frozenset(orjson.loads(row.required_traits)),
        frozenset(orjson.loads(row.forbidden_traits)),
        row.project_id,
        row.user_id,
        row.server_group,
    )


def select_instances(*where: ColumnElement[bool], limit: int | None = None) -> Any:
    """The SELECT of instance rows (with their request) matching ``where``, oldest first."""
    query = select(*COLUMNS).select_from(JOINED).where(*where).order_by(PI.c.id)
    return query.limit(limit) if limit is not None else query


def read(conn: Connection, uuids: Iterable[str]) -> dict[str, Instance]:
    """The instances ``uuids`` that exist, by uuid."""
    wanted = sorted(set(uuids))
    found: dict[str, Instance] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        for row in conn.execute(select_instances(PI.c.uuid.in_(chunk))):
            found[row.uuid] = _instance(row)
    return found


def read_where(conn: Connection, *where: ColumnElement[bool], limit: int) -> list[Instance]:
    """Up to ``limit`` instances matching ``where``, oldest first."""
    return [_instance(row) for row in conn.execute(select_instances(*where, limit=limit))]


def of_request(conn: Connection, request: str) -> list[Instance]:
    """The instances of one request, in the order they were made."""
    return [_instance(r) for r in conn.execute(select_instances(PI.c.request_uuid == request))]


def move(
    conn: Connection,
    moved: Sequence[Instance],
    values: Mapping[str, Any],
    now: datetime.datetime,
    *,
    by_host: bool = False,
) -> None:
    """Swap ``moved`` from the state (and attempt, and with ``by_host`` the host) they were
    read in to ``values``; ConcurrentUpdate unless every one of them moved."""
    by_state: dict[str, list[Instance]] = {}
    for instance in moved:
        by_state.setdefault(instance.state, []).append(instance)
    for state, group in sorted(by_state.items()):
        for start in range(0, len(group), CHUNK):
            _move_chunk(conn, state, group[start : start + CHUNK], values, now, by_host)


def _move_chunk(
    conn: Connection,
    state: str,
    chunk: Sequence[Instance],
    values: Mapping[str, Any],
    now: datetime.datetime,
    by_host: bool,
) -> None:
    uuids = [i.uuid for i in chunk]
    attempts = {i.uuid: i.attempt for i in chunk}
    where = [PI.c.uuid.in_(uuids), PI.c.state == state, PI.c.attempt == per_instance(attempts)]
    if by_host:
        where.append(PI.c.host == per_instance({i.uuid: i.host or "" for i in chunk}))
    done = conn.execute(update(PI).where(and_(*where)).values(**values, updated_at=now))
    if done.rowcount != len(uuids):
        raise errors.ConcurrentUpdate(LOST_RACE)


def per_instance(values: Mapping[str, Any]) -> Any:
    """A value per instance: ``CASE uuid WHEN ... THEN ... END``."""
    return case(dict(values), value=PI.c.uuid)


def move_each(
    conn: Connection,
    moved: Sequence[Instance],
    column: str,
    values: Mapping[str, Any],
    common: Mapping[str, Any],
    now: datetime.datetime,
) -> None:
    """As :func:`move`, setting ``column`` to a value per instance (``values`` by uuid)."""
    for start in range(0, len(moved), CHUNK):
        chunk = moved[start : start + CHUNK]
        per = per_instance({i.uuid: values[i.uuid] for i in chunk})
        move(conn, chunk, {**common, column: per}, now)
