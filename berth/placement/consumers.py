"""Consumers, their projects, users and types, and the consumer generation.

A consumer row is created the first time allocations are written for its
uuid and deleted when its last allocation goes.  Projects, users and consumer
types are created on demand.  Every function runs inside the caller's
transaction; a unique-key race on an insert surfaces as ``IntegrityError``,
which the allocation writer answers by retrying the whole transaction.

The consumer generation is compare-and-swapped exactly like a provider's:
``UPDATE consumers SET generation = g + 1 WHERE id = ? AND generation = g``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.sql.elements import BindParameter

from berth.db.clock import utcnow
from berth.db.tables import ALLOC, CONSUMER, CONSUMER_TYPE, PROJECT, RC, RP, USER
from berth.placement import changes, errors

# Who owns allocations written before microversion 1.8, which had no
# project or user (the reference's incomplete_consumer_* defaults).
INCOMPLETE_PROJECT_ID = "00000000-0000-0000-0000-000000000000"
INCOMPLETE_USER_ID = "00000000-0000-0000-0000-000000000000"
# How a consumer without a type is shown (1.38+); never stored.
UNKNOWN_CONSUMER_TYPE = "unknown"


@dataclass(frozen=True)
class ConsumerRow:
    """One consumer as stored (project and user as internal ids)."""

    id: int
    uuid: str
    project_id: int
    user_id: int
    generation: int
    consumer_type_id: int | None


# A ConsumerRow's columns, in its fields' order.
_ROW_COLUMNS = (
    CONSUMER.c.id,
    CONSUMER.c.uuid,
    CONSUMER.c.project_id,
    CONSUMER.c.user_id,
    CONSUMER.c.generation,
    CONSUMER.c.consumer_type_id,
)


def find_consumer(conn: Connection, uuid: str) -> ConsumerRow | None:
    """The consumer with ``uuid``, or None."""
    row = conn.execute(select(*_ROW_COLUMNS).where(CONSUMER.c.uuid == uuid)).one_or_none()
    return ConsumerRow(**row._mapping) if row else None


def check_generation(uuid: str, current: ConsumerRow | None, given: int | None) -> None:
    """StaleGeneration unless ``given`` is the consumer's generation (None: new)."""
    if current is None:
        if given is not None:
            raise errors.StaleGeneration(
                f"consumer generation conflict - expected null but got {given}"
            )
        return
    if current.generation != given:
        raise errors.StaleGeneration(
            f"consumer generation conflict - expected {current.generation} but got {given}"
        )


def _ensure_external(conn: Connection, table: Table, column: str, value: str) -> int:
    """The id of the row whose ``column`` is ``value``, inserting it if missing."""
    col = table.c[column]
    found = conn.execute(select(table.c.id).where(col == value)).scalar_one_or_none()
    if found is not None:
        return int(found)
    result = conn.execute(insert(table).values({column: value, "created_at": utcnow()}))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


@dataclass(frozen=True)
class Lookup:
    """What one write needs to know of a consumer and its owner, read in one statement.

    The ids are None for a project, user or type not created yet; ``holds``
    says whether any allocation names the consumer's uuid (with or without
    a consumer row: an imported database may have allocations only).
    """

    row: ConsumerRow | None
    project_id: int | None
    user_id: int | None
    type_id: int | None
    holds: bool


def look_up(
    conn: Connection, uuid: str, project: str, user: str, consumer_type: str | None
) -> Lookup:
    """The consumer ``uuid``, the ids of its (new) owner and type, and whether it holds any."""
    params = {"uuid": uuid, "project": project, "user": user, "type": consumer_type}
    r = conn.execute(_LOOK_UP, params).one()
    row = None
    if r.id is not None:
        row = ConsumerRow(r.id, r.uuid, r.project_id, r.user_id, r.generation, r.consumer_type_id)
    return Lookup(row, r.owner_project, r.owner_user, r.owner_type, bool(r.holds))


def ensure_project(conn: Connection, external_id: str) -> int:
    """The internal id of project ``external_id``, created on first use."""
    return _ensure_external(conn, PROJECT, "external_id", external_id)


def ensure_user(conn: Connection, external_id: str) -> int:
    """The internal id of user ``external_id``, created on first use."""
    return _ensure_external(conn, USER, "external_id", external_id)


def ensure_consumer_type(conn: Connection, name: str) -> int:
    """The id of consumer type ``name``, created on first use."""
    return _ensure_external(conn, CONSUMER_TYPE, "name", name)


def create_consumer(
    conn: Connection,
    uuid: str,
    project_id: int,
    user_id: int,
    type_id: int | None,
    generation: int = 0,
) -> ConsumerRow:
    """Insert a consumer at ``generation`` (a concurrent insert: IntegrityError)."""
    now = utcnow()
    values = {
        "uuid": uuid,
        "project_id": project_id,
        "user_id": user_id,
        "generation": generation,
        "consumer_type_id": type_id,
        "created_at": now,
        "updated_at": now if generation else None,
    }
    result = conn.execute(_CREATE, values)
    new_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    return ConsumerRow(new_id, uuid, project_id, user_id, generation, type_id)


def save_consumer(
    conn: Connection,
    consumer: ConsumerRow,
    *,
    bump: bool,
    project_id: int,
    user_id: int,
    type_id: int | None,
) -> int:
    """Write owner and type, compare-and-swapping the generation (+1 if ``bump``).

    Returns the new generation.  Raises ConcurrentUpdate when another writer
    changed (or deleted) the consumer since it was read.
    """
    changes: dict[str, object] = {}
    if (project_id, user_id) != (consumer.project_id, consumer.user_id):
        changes.update(project_id=project_id, user_id=user_id)
    if type_id != consumer.consumer_type_id:
        changes["consumer_type_id"] = type_id
    new_generation = consumer.generation + 1 if bump else consumer.generation
    if not changes and not bump:
        return new_generation
    changes.update(generation=new_generation, updated_at=utcnow())
    result = conn.execute(
        update(CONSUMER)
        .where(CONSUMER.c.id == consumer.id, CONSUMER.c.generation == consumer.generation)
        .values(changes)
    )
    if result.rowcount != 1:
        raise errors.ConcurrentUpdate("consumer generation conflict")
    return new_generation


def delete_if_unallocated(conn: Connection, consumer_id: int, generation: int) -> None:
    """Delete the consumer if it has no allocations and is still at ``generation``.

    Raises ConcurrentUpdate when the row changed meanwhile; a consumer that
    still has allocations is kept.
    """
    uuid = select(CONSUMER.c.uuid).where(CONSUMER.c.id == consumer_id).scalar_subquery()
    has_allocations = exists().where(ALLOC.c.consumer_id == uuid)
    if conn.execute(select(has_allocations)).scalar():
        return
    result = conn.execute(
        delete(CONSUMER).where(CONSUMER.c.id == consumer_id, CONSUMER.c.generation == generation)
    )
    if result.rowcount != 1:
        raise errors.ConcurrentUpdate("consumer generation conflict")


@dataclass(frozen=True)
class Held:
    """One allocation row as the listings show it."""

    key: str  # provider uuid (per consumer) or consumer uuid (per provider)
    generation: int  # that provider's or consumer's generation
    resource_class: str
    used: int
    modified: datetime.datetime | None


def _held_columns(
    key: ColumnElement[str], generation: ColumnElement[int]
) -> list[ColumnElement[Any]]:
    """The columns of :class:`Held` rows whose ``key`` and ``generation`` are these."""
    return [
        key.label("key"),
        generation.label("generation"),
        RC.c.name.label("resource_class"),
        ALLOC.c.used,
        func.coalesce(ALLOC.c.updated_at, ALLOC.c.created_at).label("modified"),
    ]


def _held(row: Any) -> Held:
    return Held(row.key, row.generation, row.resource_class, row.used, row.modified)


@dataclass(frozen=True)
class ConsumerView:
    """A consumer with its allocations, for GET /allocations/{uuid}."""

    project_id: str
    user_id: str
    generation: int
    consumer_type: str
    allocations: list[Held]


def allocations_of(conn: Connection, uuid: str) -> ConsumerView | None:
    """The consumer's allocations, owner and type; None when it holds nothing."""
    query = (
        select(
            *_held_columns(RP.c.uuid, RP.c.generation),
            CONSUMER.c.generation.label("consumer_generation"),
            PROJECT.c.external_id.label("project"),
            USER.c.external_id.label("user"),
            CONSUMER_TYPE.c.name.label("consumer_type"),
        )
        .select_from(
            ALLOC.join(RP, ALLOC.c.resource_provider_id == RP.c.id)
            .join(RC, ALLOC.c.resource_class_id == RC.c.id)
            .join(CONSUMER, ALLOC.c.consumer_id == CONSUMER.c.uuid)
            .join(PROJECT, CONSUMER.c.project_id == PROJECT.c.id)
            .join(USER, CONSUMER.c.user_id == USER.c.id)
            .outerjoin(CONSUMER_TYPE, CONSUMER.c.consumer_type_id == CONSUMER_TYPE.c.id)
        )
        .where(ALLOC.c.consumer_id == uuid)
        .order_by(ALLOC.c.id)
    )
    rows = conn.execute(query).all()
    if not rows:
        return None
    first = rows[0]
    return ConsumerView(
        project_id=first.project,
        user_id=first.user,
        generation=first.consumer_generation,
        consumer_type=first.consumer_type or UNKNOWN_CONSUMER_TYPE,
        allocations=[_held(row) for row in rows],
    )


def allocations_on(conn: Connection, provider_id: int) -> list[Held]:
    """Every allocation on a provider, keyed by consumer uuid."""
    query = (
        select(*_held_columns(ALLOC.c.consumer_id, CONSUMER.c.generation))
        .select_from(
            ALLOC.join(CONSUMER, ALLOC.c.consumer_id == CONSUMER.c.uuid).join(
                RC, ALLOC.c.resource_class_id == RC.c.id
            )
        )
        .where(ALLOC.c.resource_provider_id == provider_id)
        .order_by(ALLOC.c.id)
    )
    return [_held(row) for row in conn.execute(query)]


def delete_allocations(conn: Connection, uuid: str) -> None:
    """Remove all of a consumer's allocations, and the consumer.

    Provider generations are not bumped (as the reference): freeing capacity
    cannot over-commit anyone.  The consumer is deleted with a generation
    compare-and-swap, so a concurrent write to it makes this run again.
    """
    consumer = find_consumer(conn, uuid)
    held = select(exists().where(ALLOC.c.consumer_id == uuid))
    if consumer is None or not conn.execute(held).scalar():
        raise errors.NotFound(f"No allocations for consumer '{uuid}'")
    freed = select(ALLOC.c.resource_provider_id).where(ALLOC.c.consumer_id == uuid).distinct()
    changes.record(conn, conn.execute(freed).scalars().all())
    conn.execute(delete(ALLOC).where(ALLOC.c.consumer_id == uuid))
    delete_if_unallocated(conn, consumer.id, consumer.generation)


def _look_up() -> Any:
    """The statement of :func:`look_up`: the consumer row (if any) and three scalar reads."""
    one = select(literal_column("1").label("one")).subquery("one")
    uuid: BindParameter[str] = bindparam("uuid")
    return select(
        *_ROW_COLUMNS,
        select(PROJECT.c.id)
        .where(PROJECT.c.external_id == bindparam("project"))
        .scalar_subquery()
        .label("owner_project"),
        select(USER.c.id)
        .where(USER.c.external_id == bindparam("user"))
        .scalar_subquery()
        .label("owner_user"),
        select(CONSUMER_TYPE.c.id)
        .where(CONSUMER_TYPE.c.name == bindparam("type"))
        .scalar_subquery()
        .label("owner_type"),
        exists().where(ALLOC.c.consumer_id == uuid).label("holds"),
    ).select_from(one.outerjoin(CONSUMER, CONSUMER.c.uuid == uuid))


# Built once: a statement object reused is not analysed again on every call.
_LOOK_UP = _look_up()
_CREATE = insert(CONSUMER)
