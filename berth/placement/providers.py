"""Resource providers: their rows, create, update (rename, re-parent), delete, list."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Integer,
    Select,
    String,
    Unicode,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from berth.db.clock import utcnow
from berth.db.tables import ALLOC, CHANGE_LOG, HOST_STATE, INV, RP, RP_AGG, RP_TRAIT, STATE_CHANGE
from berth.placement import changes, errors
from berth.placement import provider_filters as pf
from berth.placement.class_ids import ResourceClassCache


@dataclass(frozen=True)
class ProviderRow:
    """One resource provider as stored, with its parent's and root's uuid."""

    id: int
    uuid: str
    name: str | None
    generation: int
    parent_provider_id: int | None
    root_provider_id: int | None
    parent_uuid: str | None
    root_uuid: str | None
    created_at: datetime.datetime | None
    updated_at: datetime.datetime | None


def provider_query() -> Select[Any]:
    """A SELECT of provider rows (add WHERE / ORDER BY as needed)."""
    parent = RP.alias("parent")
    root = RP.alias("root")
    return select(
        RP.c.id,
        RP.c.uuid,
        RP.c.name,
        RP.c.generation,
        RP.c.parent_provider_id,
        RP.c.root_provider_id,
        parent.c.uuid.label("parent_uuid"),
        root.c.uuid.label("root_uuid"),
        RP.c.created_at,
        RP.c.updated_at,
    ).select_from(
        RP.outerjoin(parent, RP.c.parent_provider_id == parent.c.id).outerjoin(
            root, RP.c.root_provider_id == root.c.id
        )
    )


def find_provider(conn: Connection, uuid: str) -> ProviderRow | None:
    """The provider with ``uuid``, or None."""
    row = conn.execute(_FIND, {"uuid": uuid}).one_or_none()
    return ProviderRow(*row) if row else None


def get_provider(conn: Connection, uuid: str) -> ProviderRow:
    """The provider with ``uuid``; NotFound when there is none."""
    provider = find_provider(conn, uuid)
    if provider is None:
        raise errors.NotFound(missing_provider(uuid))
    return provider


def missing_provider(uuid: str) -> str:
    """Why a write to provider ``uuid`` found none (the NotFound message)."""
    return f"No resource provider with uuid {uuid} found"


def _action_error(action: str, reason: str) -> str:
    return f"Object action {action} failed because: {reason}"


def create(conn: Connection, uuid: str, name: str, parent_uuid: str | None) -> ProviderRow:
    """Create a provider (root, or a child of ``parent_uuid``).

    On PostgreSQL one statement inserts the row (its own root when it has no
    parent), skips it on a clash of uuid or name, and records the change;
    a skipped row is then explained by :func:`_check_duplicates`.
    """
    prefix = f'Unable to create resource provider "{name}", {uuid}: '
    parent = None if parent_uuid is None else _new_parent(conn, uuid, parent_uuid, prefix)
    now = utcnow()
    values = {
        "uuid": uuid,
        "name": name,
        "parent": parent.id if parent else None,
        "root": parent.root_provider_id if parent else None,
        "now": now,
    }
    if conn.dialect.name == "postgresql":
        new_id = conn.execute(_CREATE_PG, values).scalar()
        if new_id is None:
            _check_duplicates(conn, uuid, name)
            raise _clash(uuid, name)  # the other row is gone already
    else:
        new_id = _create_elsewhere(conn, values)
    root_id = parent.root_provider_id if parent else new_id
    return ProviderRow(
        id=new_id,
        uuid=uuid,
        name=name,
        generation=0,
        parent_provider_id=parent.id if parent else None,
        root_provider_id=root_id,
        parent_uuid=parent.uuid if parent else None,
        root_uuid=parent.root_uuid if parent else uuid,
        created_at=now,
        updated_at=None,
    )


def _create_elsewhere(conn: Connection, values: dict[str, Any]) -> int:
    """MariaDB/MySQL and SQLite: check the names, insert, set the root, record."""
    _check_duplicates(conn, values["uuid"], values["name"])
    try:
        new_id = int(conn.execute(_CREATE, values).inserted_primary_key[0])  # type: ignore[index]
    except IntegrityError:
        # A concurrent create won the race for this uuid or name.
        raise _clash(values["uuid"], values["name"]) from None
    if values["parent"] is None:
        conn.execute(update(RP).where(RP.c.id == new_id).values(root_provider_id=new_id))
    changes.record(conn, [new_id])
    return new_id


def _clash(uuid: str, name: str) -> errors.Conflict:
    return errors.Conflict(
        f"Conflicting resource provider uuid: {uuid} or name: {name} already exists.",
        code=errors.DUPLICATE_NAME,
    )


def _new_parent(conn: Connection, uuid: str, parent_uuid: str, prefix: str) -> ProviderRow:
    """The parent named for a new provider; InvalidInput (after ``prefix``) when invalid."""
    if parent_uuid == uuid:
        raise errors.InvalidInput(
            prefix
            + _action_error(
                "create",
                "parent provider UUID cannot be same as UUID. Please set parent "
                "provider UUID to None if there is no parent.",
            )
        )
    parent = find_provider(conn, parent_uuid)
    if parent is None:
        raise errors.InvalidInput(
            prefix + _action_error("create", "parent provider UUID does not exist.")
        )
    return parent


def _check_duplicates(conn: Connection, uuid: str, name: str) -> None:
    clashes = []
    if conn.execute(select(RP.c.id).where(RP.c.uuid == uuid)).first():
        clashes.append(f"uuid: {uuid}")
    if conn.execute(select(RP.c.id).where(RP.c.name == name)).first():
        clashes.append(f"name: {name}")
    if clashes:
        raise errors.Conflict(
            f"Conflicting resource provider {', '.join(clashes)} already exists.",
            code=errors.DUPLICATE_NAME,
        )


def _subtree_ids(conn: Connection, provider_id: int) -> list[int]:
    ids = [provider_id]
    frontier = [provider_id]
    while frontier:
        frontier = list(
            conn.execute(select(RP.c.id).where(RP.c.parent_provider_id.in_(frontier))).scalars()
        )
        ids.extend(frontier)
    return ids


def _parent_change(
    conn: Connection, current: ProviderRow, parent_uuid: str | None, allow_reparenting: bool
) -> tuple[dict[str, object], list[int]]:
    """Column values and the moved subtree for giving ``current`` a new parent (or none)."""

    def refuse(action: str, reason: str) -> errors.InvalidInput:
        message = f"Unable to save resource provider {current.uuid}: "
        return errors.InvalidInput(message + _action_error(action, reason))

    if parent_uuid is None:
        if current.parent_provider_id is None:
            return {}, []
        if not allow_reparenting:
            raise refuse("update", "un-parenting a provider is not currently allowed.")
        subtree = _subtree_ids(conn, current.id)
        return {"parent_provider_id": None, "root_provider_id": current.id}, subtree
    parent = find_provider(conn, parent_uuid)
    if parent is None:
        raise refuse("create", "parent provider UUID does not exist.")
    moving = current.parent_provider_id not in (None, parent.id)
    if moving and not allow_reparenting:
        raise refuse("update", "re-parenting a provider is not currently allowed.")
    subtree = _subtree_ids(conn, current.id)
    if parent.id in subtree:
        raise refuse("update", "creating loop in the provider tree is not allowed.")
    return {"parent_provider_id": parent.id, "root_provider_id": parent.root_provider_id}, subtree


def update_provider(
    conn: Connection,
    uuid: str,
    name: str,
    parent_uuid: str | None,
    change_parent: bool,
    allow_reparenting: bool,
) -> ProviderRow:
    """Rename a provider and, when asked, give it a (new) parent or none."""
    current = get_provider(conn, uuid)
    values: dict[str, object] = {"name": name, "updated_at": utcnow()}
    subtree: list[int] = []
    if change_parent:
        moved, subtree = _parent_change(conn, current, parent_uuid, allow_reparenting)
        values.update(moved)
    duplicate = errors.Conflict(
        f"Conflicting resource provider {name} already exists.", code=errors.DUPLICATE_NAME
    )
    taken = select(RP.c.id).where(RP.c.name == name, RP.c.id != current.id)
    if name != current.name and conn.execute(taken).first():
        raise duplicate
    try:
        conn.execute(update(RP).where(RP.c.id == current.id).values(**values))
    except IntegrityError:  # a concurrent rename took the name first
        raise duplicate from None
    if subtree and "root_provider_id" in values:
        new_root = values["root_provider_id"]
        conn.execute(update(RP).where(RP.c.id.in_(subtree)).values(root_provider_id=new_root))
    changes.record(conn, [current.id, *subtree])
    return get_provider(conn, uuid)


def delete_provider(conn: Connection, uuid: str) -> bool:
    """Delete a provider with no children and no allocations; True when it had host state
    (its deletion is then news for the scheduler's host catalogs)."""
    provider = find_provider(conn, uuid)
    if provider is None:
        raise errors.NotFound(f"No resource provider with uuid {uuid} found for delete")
    if conn.execute(select(RP.c.id).where(RP.c.parent_provider_id == provider.id)).first():
        raise errors.Conflict(
            f"Unable to delete parent resource provider {uuid}: It has child resource providers.",
            code=errors.PROVIDER_CANNOT_DELETE_PARENT,
        )
    used = conn.execute(
        select(exists().where(ALLOC.c.resource_provider_id == provider.id))
    ).scalar()
    if used:
        raise errors.Conflict(
            f"Unable to delete resource provider {uuid}: Resource provider has allocations.",
            code=errors.PROVIDER_IN_USE,
        )
    for table in (INV, RP_AGG, RP_TRAIT):
        conn.execute(delete(table).where(table.c.resource_provider_id == provider.id))
    had_state = _forget_host_state(conn, uuid)
    conn.execute(update(RP).where(RP.c.id == provider.id).values(root_provider_id=None))
    changes.record(conn, [provider.id])
    try:
        conn.execute(delete(RP).where(RP.c.id == provider.id))
    except IntegrityError:
        raise errors.Conflict(
            f"Unable to delete parent resource provider {uuid}: It has child resource providers.",
            code=errors.PROVIDER_CANNOT_DELETE_PARENT,
        ) from None
    return had_state


def _forget_host_state(conn: Connection, uuid: str) -> bool:
    """Delete the scheduler's state of the provider (every namespace), and log it for the
    workers that follow the state log (berth.scheduler.hoststate); True if it had some."""
    key = HOST_STATE.c.provider_uuid == uuid
    namespaces = list(conn.execute(select(HOST_STATE.c.namespace).where(key)).scalars())
    if namespaces:
        conn.execute(delete(HOST_STATE).where(key))
        now = utcnow()
        rows = [{"provider_uuid": uuid, "namespace": ns, "at": now} for ns in namespaces]
        conn.execute(insert(STATE_CHANGE), rows)
    return bool(namespaces)


@dataclass
class ProviderFilter:
    """The filters of ``GET /resource_providers``."""

    name: str | None = None
    uuid: str | None = None
    in_tree: str | None = None
    member_of: list[set[str]] = field(default_factory=list)
    forbidden_aggs: set[str] = field(default_factory=set)
    required_traits: list[set[str]] = field(default_factory=list)
    forbidden_traits: set[str] = field(default_factory=set)
    resources: dict[str, int] = field(default_factory=dict)


def list_providers(conn: Connection, flt: ProviderFilter) -> Sequence[ProviderRow]:
    """Providers matching every filter, ordered by internal id."""
    query = provider_query()
    if flt.name is not None:
        query = query.where(RP.c.name == flt.name)
    if flt.uuid is not None:
        query = query.where(RP.c.uuid == flt.uuid)
    if flt.in_tree is not None:
        tree = find_provider(conn, flt.in_tree)
        if tree is None:
            return []
        query = query.where(RP.c.root_provider_id == tree.root_provider_id)
    if flt.required_traits:
        ids = pf.trait_ids(conn, set().union(*flt.required_traits))
        for group in flt.required_traits:
            query = query.where(RP.c.id.in_(pf.having_any_trait(ids[n] for n in group)))
    if flt.forbidden_traits:
        ids = pf.trait_ids(conn, flt.forbidden_traits)
        query = query.where(RP.c.id.not_in(pf.having_any_trait(ids.values())))
    for aggs in flt.member_of:
        query = query.where(RP.c.id.in_(pf.in_any_aggregate(aggs)))
    if flt.forbidden_aggs:
        query = query.where(RP.c.id.not_in(pf.in_any_aggregate(flt.forbidden_aggs)))
    if flt.resources:
        classes = ResourceClassCache(conn)
        for rc_name, amount in flt.resources.items():
            query = query.where(RP.c.id.in_(pf.with_capacity(classes.id_of(rc_name), amount)))
    rows = conn.execute(query.order_by(RP.c.id)).all()
    return [ProviderRow(**r._mapping) for r in rows]


def count(conn: Connection) -> int:
    """How many providers there are."""
    return int(conn.execute(select(func.count()).select_from(RP)).scalar_one())


def _create_pg() -> Any:
    """PostgreSQL: insert (root: itself unless given) unless uuid or name clash; record it."""
    n = select(func.nextval(func.pg_get_serial_sequence("resource_providers", "id")).label("id"))
    new_id = n.subquery("n").c.id
    now = bindparam("now", type_=DateTime())
    row = select(
        new_id,
        bindparam("uuid", type_=String()),
        bindparam("name", type_=Unicode()),
        literal_column("0"),
        func.coalesce(bindparam("root", type_=Integer()), new_id),
        bindparam("parent", type_=Integer()),
        now,
    )
    columns = ["id", "uuid", "name", "generation", "root_provider_id", "parent_provider_id"]
    inserted = (
        postgresql.insert(RP)
        .from_select([*columns, "created_at"], row)
        .on_conflict_do_nothing()
        .returning(RP.c.id)
        .cte("inserted")
    )
    return (
        insert(CHANGE_LOG)
        .from_select(["provider_id", "created_at"], select(inserted.c.id, now))
        .returning(CHANGE_LOG.c.provider_id)
    )


# Built once: a statement object reused is not analysed again on every call.
_FIND = provider_query().where(RP.c.uuid == bindparam("uuid"))
_CREATE_PG = _create_pg()
_CREATE = insert(RP).values(
    uuid=bindparam("uuid"),
    name=bindparam("name"),
    generation=0,
    parent_provider_id=bindparam("parent"),
    root_provider_id=bindparam("root"),
    created_at=bindparam("now"),
    updated_at=None,
)
