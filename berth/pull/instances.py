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
from sqlalchemy import ColumnElement, Connection, bindparam, case, func, select, update
from sqlalchemy.dialects import postgresql

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
    each: tuple[str, Mapping[str, Any]] | None = None,
) -> None:
    """Swap ``moved`` from the state (and attempt, and with ``by_host`` the host) they were
    read in to ``values`` (and ``each``: a column set to a value per instance, by uuid);
    ConcurrentUpdate unless every one of them moved."""
    by_state: dict[str, list[Instance]] = {}
    for instance in moved:
        by_state.setdefault(instance.state, []).append(instance)
    for state, group in sorted(by_state.items()):
        for start in range(0, len(group), CHUNK):
            chunk = group[start : start + CHUNK]
            match: dict[str, dict[str, Any]] = {"attempt": {i.uuid: i.attempt for i in chunk}}
            if by_host:
                match["host"] = {i.uuid: i.host or "" for i in chunk}
            setting = {**values, "updated_at": now}
            if update_each(conn, match, setting, each, PI.c.state == state) != len(chunk):
                raise errors.ConcurrentUpdate(LOST_RACE)


def move_each(
    conn: Connection,
    moved: Sequence[Instance],
    column: str,
    values: Mapping[str, Any],
    common: Mapping[str, Any],
    now: datetime.datetime,
) -> None:
    """As :func:`move`, setting ``column`` to a value per instance (``values`` by uuid)."""
    move(conn, moved, common, now, each=(column, values))


def update_each(
    conn: Connection,
    match: Mapping[str, Mapping[str, Any]],
    values: Mapping[str, Any],
    each: tuple[str, Mapping[str, Any]] | None = None,
    *where: ColumnElement[bool],
) -> int:
    """``UPDATE pull_instances SET values [, column = its value per instance]`` on the rows
    whose uuid is a key of the ``match`` mappings and whose ``match`` columns hold the
    values given for that uuid; the number of rows changed.

    On PostgreSQL the per-instance values travel as arrays (``UPDATE ... FROM
    unnest(...)``): the statement is a few terms whatever the number of
    instances, and its text depends on the columns only.  Elsewhere each is
    ``CASE uuid WHEN ... THEN ... END``, a term per instance.
    """
    uuids = list(next(iter(match.values())))
    if conn.dialect.name == "postgresql":
        columns = {f"m_{k}": (PI.c[k].type, [v[u] for u in uuids]) for k, v in match.items()}
        if each is not None:
            columns[f"s_{each[0]}"] = (PI.c[each[0]].type, [each[1][u] for u in uuids])
        rows = _unnest({"uuid": (PI.c.uuid.type, uuids), **columns})
        conditions = [PI.c.uuid == rows.c.uuid, *(PI.c[k] == rows.c[f"m_{k}"] for k in match)]
        setting = dict(values)
        if each is not None:
            setting[each[0]] = rows.c[f"s_{each[0]}"]
    else:
        conditions = [PI.c.uuid.in_(uuids), *(PI.c[k] == per_instance(v) for k, v in match.items())]
        setting = dict(values)
        if each is not None:
            setting[each[0]] = per_instance({u: each[1][u] for u in uuids})
    statement = update(PI).where(*conditions, *where).values(**setting)
    return int(conn.execute(statement).rowcount)


def _unnest(columns: Mapping[str, tuple[Any, list[Any]]]) -> Any:
    """``unnest(:a, :b, ...) AS each_row(a, b, ...)``, one array per column (PostgreSQL)."""
    arrays = [
        bindparam(name, value, type_=postgresql.ARRAY(kind))
        for name, (kind, value) in columns.items()
    ]
    return func.unnest(*arrays).table_valued(*columns).render_derived(name="each_row")


def per_instance(values: Mapping[str, Any]) -> Any:
    """A value per instance: ``CASE uuid WHEN ... THEN ... END``."""
    return case(dict(values), value=PI.c.uuid)
