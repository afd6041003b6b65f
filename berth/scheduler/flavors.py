"""Flavors: what one instance asks for, kept by berth under a uuid and a name.

A flavor holds resources per instance (resource class -> amount), required
and forbidden traits, and extra specs.  It is created and deleted whole.
Callers read it by uuid (:func:`get`, :func:`find`) or by name
(:func:`find_by_name`), or all of them in one SELECT (:func:`list_flavors`).

A new flavor is checked twice: :func:`check` needs no database (at least
one resource, amounts in range, no trait both required and forbidden);
:func:`create` then checks, in its transaction, that every resource class
and trait exists (the standard ones are rows after ``catalog.sync``, custom
ones are whatever Placement's API created).  Names, not ids, are stored, as
a request names them: deleting a custom class or trait a flavor names is
not refused (Placement does not know flavors); scheduling with that flavor
then gets the 400 an unknown name always gets.

Storage.  The parts of a flavor are JSON text columns of its one row, not
child rows: a flavor is always read and written whole and never searched
by its parts in SQL, so one row means one read for a flavor and one SELECT
without joins for the list, with the same column types on all three
databases.  Names compare exactly on lookup; uniqueness follows the
database's collation (on MariaDB, names that differ only in case collide,
as Placement's own names do there).

Polling for changes.  Every create and delete inserts a row into
``scheduler_flavor_changes`` in its own transaction, and these rows are
never deleted, so their count (:func:`revision`) grows by one with every
committed change.  A poller keeps the revision it last saw and, when it
moved, lists the flavors again (each carries ``updated_at``).  A count and
not the highest id, because ids are assigned at insert but become visible at
commit, so a smaller id can show up after a larger one (berth.sync.feed
tracks such holes); a count cannot miss a change whatever the commit order,
and writers share no row (a counter row, as ``scheduler_revisions`` was, would
queue every writer behind one lock).  The rows grow only with operators'
actions, so counting them stays cheap.

Errors: ``NotFound`` (no such flavor), ``Conflict`` (uuid or name taken),
``InvalidInput`` (anything :func:`check` refuses, an unknown resource class
or trait).
"""

from __future__ import annotations

import datetime
import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError

from berth.db.clock import utcnow
from berth.db.tables import FLAVOR, FLAVOR_CHANGE
from berth.placement import errors, traits
from berth.placement.class_ids import ResourceClassCache
from berth.placement.inventories import MAX_INT

FLAVOR_NOT_FOUND = "berth.scheduler.flavor_not_found"
# How retries of flavor writes are counted (``berth_write_retries{operation=...}``).
OPERATION = "flavors"
MAX_NAME = 255


@dataclass(frozen=True)
class Flavor:
    """One flavor: resources per instance, trait constraints and extra specs."""

    uuid: str
    name: str
    resources: Mapping[str, int]
    required_traits: frozenset[str] = frozenset()
    forbidden_traits: frozenset[str] = frozenset()
    extra_specs: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime.datetime | None = None
    updated_at: datetime.datetime | None = None

    def as_body(self) -> dict[str, Any]:
        """The JSON shape of ``GET /scheduler/flavors/{uuid}`` (keys and lists sorted, as
        stored, so that a flavor reads the same before and after it is stored)."""
        return {
            "uuid": self.uuid,
            "name": self.name,
            "resources": dict(sorted(self.resources.items())),
            "required_traits": sorted(self.required_traits),
            "forbidden_traits": sorted(self.forbidden_traits),
            "extra_specs": dict(sorted(self.extra_specs.items())),
        }


def from_body(body: Mapping[str, Any]) -> Flavor:
    """A flavor from the (schema-validated) body of ``POST /scheduler/flavors``;
    a uuid is generated when the body has none."""
    return Flavor(
        uuid=body.get("uuid") or str(uuidlib.uuid4()),
        name=body["name"],
        resources=dict(body["resources"]),
        required_traits=frozenset(body.get("required_traits") or ()),
        forbidden_traits=frozenset(body.get("forbidden_traits") or ()),
        extra_specs=dict(body.get("extra_specs") or {}),
    )


def _canonical(uuid: str) -> str | None:
    """``uuid`` in its canonical form (lower case, dashes), None when it is no uuid."""
    try:
        return str(uuidlib.UUID(uuid))
    except (TypeError, ValueError, AttributeError):
        return None


def check(flavor: Flavor) -> Flavor:
    """``flavor`` with its uuid canonical; InvalidInput for what no database can fix."""
    uuid = _canonical(flavor.uuid)
    if uuid is None:
        raise errors.InvalidInput(f"Malformed flavor uuid: {flavor.uuid}")
    if not 1 <= len(flavor.name) <= MAX_NAME:
        raise errors.InvalidInput(f"A flavor name has 1 to {MAX_NAME} characters")
    if not flavor.resources:
        raise errors.InvalidInput("A flavor must ask for at least one resource")
    for name, amount in flavor.resources.items():
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise errors.InvalidInput(f"The amount of {name} must be an integer")
        if not 1 <= amount <= MAX_INT:
            raise errors.InvalidInput(f"The amount of {name} must be from 1 to {MAX_INT}")
    clash = flavor.required_traits & flavor.forbidden_traits
    if clash:
        raise errors.InvalidInput(f"Traits both required and forbidden: {', '.join(sorted(clash))}")
    if not all(isinstance(v, str) for v in (*flavor.extra_specs, *flavor.extra_specs.values())):
        raise errors.InvalidInput("Extra specs map strings to strings")
    return replace(flavor, uuid=uuid)


def _check_names(conn: Connection, flavor: Flavor) -> None:
    """InvalidInput unless every resource class and trait the flavor names exists."""
    classes = ResourceClassCache(conn)
    try:
        for name in sorted(flavor.resources):
            classes.id_of(name)
        traits.trait_ids(conn, flavor.required_traits | flavor.forbidden_traits)
    except errors.NotFound as exc:
        raise errors.InvalidInput(exc.message) from None


def _record(conn: Connection, uuid: str, when: datetime.datetime) -> None:
    """One change row: the revision moves when this transaction commits."""
    conn.execute(insert(FLAVOR_CHANGE).values(flavor_uuid=uuid, created_at=when))


def _json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _taken(conn: Connection, flavor: Flavor) -> errors.Conflict:
    """The Conflict for an insert refused on a unique key, naming what is taken."""
    clashes = [f"uuid {flavor.uuid}"] if find(conn, flavor.uuid) is not None else []
    if find_by_name(conn, flavor.name) is not None or not clashes:
        # Also a name equal to another under the database's collation only.
        clashes.append(f"name {flavor.name}")
    return errors.Conflict(
        f"A flavor with {' and '.join(clashes)} already exists", code=errors.DUPLICATE_NAME
    )


def create(conn: Connection, flavor: Flavor) -> Flavor:
    """Insert ``flavor`` (see :func:`check`); Conflict when its uuid or name is taken.

    A concurrent create of the same uuid or name waits for the first one's
    commit, then fails on the unique key inside its savepoint: a Conflict too.
    """
    flavor = check(flavor)
    _check_names(conn, flavor)
    now = utcnow()
    try:
        with conn.begin_nested():
            conn.execute(
                insert(FLAVOR).values(
                    uuid=flavor.uuid,
                    name=flavor.name,
                    resources=_json(flavor.resources),
                    required_traits=_json(sorted(flavor.required_traits)),
                    forbidden_traits=_json(sorted(flavor.forbidden_traits)),
                    extra_specs=_json(flavor.extra_specs),
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        raise _taken(conn, flavor) from None
    _record(conn, flavor.uuid, now)
    return replace(flavor, created_at=now, updated_at=now)


def _flavor(row: Any) -> Flavor:
    return Flavor(
        uuid=row.uuid,
        name=row.name,
        resources=orjson.loads(row.resources),
        required_traits=frozenset(orjson.loads(row.required_traits)),
        forbidden_traits=frozenset(orjson.loads(row.forbidden_traits)),
        extra_specs=orjson.loads(row.extra_specs),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def find(conn: Connection, uuid: str) -> Flavor | None:
    """The flavor ``uuid`` (in any form a uuid is written), or None."""
    canonical = _canonical(uuid)
    if canonical is None:
        return None
    row = conn.execute(select(FLAVOR).where(FLAVOR.c.uuid == canonical)).one_or_none()
    return _flavor(row) if row is not None else None


def get(conn: Connection, uuid: str) -> Flavor:
    """The flavor ``uuid``; NotFound when there is none."""
    flavor = find(conn, uuid)
    if flavor is None:
        raise errors.NotFound(f"No flavor with uuid {uuid} found", code=FLAVOR_NOT_FOUND)
    return flavor


def find_by_name(conn: Connection, name: str) -> Flavor | None:
    """The flavor called exactly ``name``, or None."""
    rows = conn.execute(select(FLAVOR).where(FLAVOR.c.name == name)).all()
    # Exactly: MySQL's default collation ignores case.
    return next((_flavor(row) for row in rows if row.name == name), None)


def list_flavors(conn: Connection) -> list[Flavor]:
    """Every flavor, oldest first (one SELECT)."""
    return [_flavor(row) for row in conn.execute(select(FLAVOR).order_by(FLAVOR.c.id))]


def delete(conn: Connection, uuid: str) -> None:
    """Delete the flavor ``uuid``; NotFound when there is none."""
    canonical = _canonical(uuid)
    deleted = canonical is not None and bool(
        conn.execute(FLAVOR.delete().where(FLAVOR.c.uuid == canonical)).rowcount
    )
    if not deleted:
        raise errors.NotFound(f"No flavor with uuid {uuid} found", code=FLAVOR_NOT_FOUND)
    _record(conn, str(canonical), utcnow())


def revision(conn: Connection) -> int:
    """How many flavor changes have committed: it moves with every create and delete.

    Read it in a transaction of its own: a poller compares it with the
    value it saw last and lists the flavors again when it moved.
    """
    return int(conn.execute(select(func.count()).select_from(FLAVOR_CHANGE)).scalar_one())
