"""Host state in the database: one JSON object per (provider, namespace), swapped by generation.

A write (:func:`put`, :func:`patch`, :func:`delete`, or :func:`change` for
berth's own writers) runs in the caller's transaction::

    read     the provider (NotFound when it is gone) and the namespace's row
    judge    the new object by the StateRules: an object, its size, its schema
    swap     UPDATE ... SET generation = g + 1 WHERE generation = g (rowcount checked),
             or INSERT at generation 1; DELETE ... WHERE generation = g
    log      a row in scheduler_state_changes, which workers follow (berth.sync.feed);
             its id and the new object go to ``changes`` (when given), which the caller
             publishes to the sync backend after the commit (berth.sync)
    operator a change of disabled or the zone moves the provider's generation

Nothing is written unless every step passes, so a refused write leaves the
state as it was.  The generation a client sends must be the current one
(0: the namespace holds nothing yet), else :class:`StateConflict`; a write
of berth's own (``expected=None``) swaps from what it read and, when it
loses, is run again by :func:`berth.placement.write.retry.atomically`.  No
shared row is updated: two hosts' writes never wait for each other.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, delete, insert, select, update

from berth.db.clock import utcnow
from berth.db.lists import one_of
from berth.db.tables import HOST_STATE, STATE_CHANGE
from berth.placement import errors
from berth.placement.providers import get_provider
from berth.placement.write import generations
from berth.scheduler.namespaces import (
    OPERATOR,
    StateConflict,
    StateNotFound,
    StateRules,
    check_name,
    merge_patch,
)
from berth.sync.changes import Change, host_change

OPERATION = "host_state"


@dataclass(frozen=True)
class NamespaceState:
    """One namespace of one host: its object, generation and when the server received it."""

    generation: int
    received_at: datetime.datetime
    state: Mapping[str, Any]

    def as_body(self) -> dict[str, Any]:
        """The JSON shape of a namespace in answers."""
        return {
            "generation": self.generation,
            "received_at": timestamp(self.received_at),
            "state": self.state,
        }


HostNamespaces = dict[str, NamespaceState]


def timestamp(when: datetime.datetime) -> str:
    """A stored (naive UTC) time as ISO 8601 with a ``Z``."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry(row: Any) -> NamespaceState:
    return NamespaceState(int(row.generation), row.received_at, orjson.loads(row.body))


def get_host(conn: Connection, provider_uuid: str) -> HostNamespaces:
    """Every namespace of a host ({} when none); NotFound for no provider."""
    get_provider(conn, provider_uuid)
    return read_hosts(conn, [provider_uuid]).get(provider_uuid, {})


def get_one(conn: Connection, provider_uuid: str, namespace: str) -> NamespaceState:
    """One namespace of a host; NotFound for no provider, StateNotFound for no state."""
    check_name(namespace)
    found = get_host(conn, provider_uuid).get(namespace)
    if found is None:
        raise StateNotFound(f"Host {provider_uuid} has no state in namespace {namespace}.")
    return found


def read_hosts(conn: Connection, uuids: Collection[str] | None) -> dict[str, HostNamespaces]:
    """The namespaces of the hosts named (None: of every host), by provider uuid."""
    query = _ALL if uuids is None else _OF_HOSTS
    params = {} if uuids is None else {"uuids": sorted(set(uuids))}
    out: dict[str, HostNamespaces] = {}
    for row in conn.execute(query, params):
        out.setdefault(row.provider_uuid, {})[row.namespace] = _entry(row)
    return out


def list_hosts(
    conn: Connection, namespace: str | None, changed_since: datetime.datetime | None
) -> dict[str, HostNamespaces]:
    """Hosts with state, only ``namespace`` if given, only what was received at or after
    ``changed_since`` if given (inclusive: stored times have whole seconds)."""
    query = select(HOST_STATE)
    if namespace is not None:
        check_name(namespace)
        query = query.where(HOST_STATE.c.namespace == namespace)
    if changed_since is not None:
        query = query.where(HOST_STATE.c.received_at >= changed_since)
    out: dict[str, HostNamespaces] = {}
    for row in conn.execute(query.order_by(HOST_STATE.c.provider_uuid, HOST_STATE.c.namespace)):
        out.setdefault(row.provider_uuid, {})[row.namespace] = _entry(row)
    return out


def put(
    conn: Connection,
    rules: StateRules,
    provider_uuid: str,
    namespace: str,
    state: Mapping[str, Any],
    expected: int | None,
    changes: list[Change] | None = None,
) -> NamespaceState:
    """Replace a namespace's object (created at generation 1)."""
    return change(conn, rules, provider_uuid, namespace, lambda old: dict(state), expected, changes)


def patch(
    conn: Connection,
    rules: StateRules,
    provider_uuid: str,
    namespace: str,
    merge: Mapping[str, Any],
    expected: int | None,
    changes: list[Change] | None = None,
) -> NamespaceState:
    """Apply a JSON merge patch (RFC 7396) to a namespace's object ({} when it has none)."""
    return change(
        conn,
        rules,
        provider_uuid,
        namespace,
        lambda old: merge_patch(old, merge),
        expected,
        changes,
    )


def change(
    conn: Connection,
    rules: StateRules,
    provider_uuid: str,
    namespace: str,
    new: Callable[[Mapping[str, Any]], Any],
    expected: int | None,
    changes: list[Change] | None = None,
) -> NamespaceState:
    """Write ``new(old object)`` to a namespace, through the steps the module describes."""
    check_name(namespace)
    provider = get_provider(conn, provider_uuid)
    old = _current(conn, provider_uuid, namespace)
    generation = _expect(old, expected, provider_uuid, namespace)
    state = new(old.state if old is not None else {})
    body = rules.check(namespace, state).decode()
    now = _received_now(conn)
    if old is None:
        values = {"provider_uuid": provider_uuid, "namespace": namespace, "generation": 1}
        # A concurrent first write loses on the key: retried, it then sees generation 1.
        conn.execute(insert(HOST_STATE).values(received_at=now, body=body, **values))
    else:
        params = _key(provider_uuid, namespace) | {"g": generation, "now": now, "body": body}
        if conn.execute(_SWAP, params).rowcount != 1:
            _lost(expected, provider_uuid, namespace)
    written = NamespaceState(generation + 1, now, state)
    _finish(conn, provider.id, provider_uuid, namespace, old, written, changes)
    return written


def _received_now(conn: Connection) -> datetime.datetime:
    """The stamp of a write: now, to the microsecond where the column keeps it.

    Workers measure how late they learn of a write from it (berth.scheduler.staleness),
    which whole seconds would blur; MariaDB's ``DATETIME`` keeps whole seconds, so the
    stamp there is cut to what is stored (the answer then shows what a read shows).
    """
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return now.replace(microsecond=0) if conn.dialect.name == "mysql" else now


def delete_one(
    conn: Connection, provider_uuid: str, namespace: str, changes: list[Change] | None = None
) -> None:
    """Empty a namespace of a host; StateNotFound when it holds nothing."""
    check_name(namespace)
    provider = get_provider(conn, provider_uuid)
    old = _current(conn, provider_uuid, namespace)
    if old is None:
        raise StateNotFound(f"Host {provider_uuid} has no state in namespace {namespace}.")
    params = _key(provider_uuid, namespace) | {"g": old.generation}
    if conn.execute(_DELETE, params).rowcount != 1:
        _lost(None, provider_uuid, namespace)
    _finish(conn, provider.id, provider_uuid, namespace, old, None, changes, utcnow())


def _current(conn: Connection, provider_uuid: str, namespace: str) -> NamespaceState | None:
    row = conn.execute(_ONE, _key(provider_uuid, namespace)).one_or_none()
    return _entry(row) if row is not None else None


def _expect(
    old: NamespaceState | None, expected: int | None, provider_uuid: str, namespace: str
) -> int:
    """The generation to swap from: the current one, which must be ``expected`` if given."""
    current = old.generation if old is not None else 0
    if expected is not None and expected != current:
        raise StateConflict(
            f"Namespace {namespace} of host {provider_uuid} is at generation {current}, "
            f"not {expected}: read it again."
        )
    return current


def _lost(expected: int | None, provider_uuid: str, namespace: str) -> None:
    """Another write committed since the read: the client's generation is stale, or ours."""
    message = f"Namespace {namespace} of host {provider_uuid} was changed by another writer."
    if expected is not None:
        raise StateConflict(f"{message} Read it again.")
    raise errors.ConcurrentUpdate(message)


def _finish(
    conn: Connection,
    provider_id: int,
    provider_uuid: str,
    namespace: str,
    old: NamespaceState | None,
    new: NamespaceState | None,
    changes: list[Change] | None,
    deleted_at: datetime.datetime | None = None,
) -> None:
    """Log the write (and note it in ``changes``); move the provider's generation when a
    claim's recheck reads it.  ``new`` None: the namespace was emptied at ``deleted_at``."""
    at = new.received_at if new is not None else deleted_at
    params = {"provider_uuid": provider_uuid, "namespace": namespace, "at": at}
    change_id = conn.execute(_LOG, params).inserted_primary_key[0]  # type: ignore[index]
    if changes is not None:
        state, generation = (new.state, new.generation) if new is not None else (None, 0)
        changes.append(
            host_change(int(change_id), provider_uuid, namespace, generation, at or utcnow(), state)
        )
    now_state = new.state if new is not None else {}
    if namespace == OPERATOR and judged(old.state if old else {}) != judged(now_state):
        generations.advance(conn, [provider_id])


def judged(operator: Mapping[str, Any]) -> tuple[bool, str | None]:
    """What claims recheck of the operator namespace: (disabled, zone)."""
    return bool(operator.get("disabled", False)), operator.get("availability_zone")


def _key(provider_uuid: str, namespace: str) -> dict[str, Any]:
    return {"uuid": provider_uuid, "ns": namespace}


# Built once: a statement object reused is not analysed again on every call.
_WHERE = (
    HOST_STATE.c.provider_uuid == bindparam("uuid"),
    HOST_STATE.c.namespace == bindparam("ns"),
)
_ONE = select(HOST_STATE).where(*_WHERE)
_ALL = select(HOST_STATE)
_OF_HOSTS = select(HOST_STATE).where(one_of(HOST_STATE.c.provider_uuid, "uuids"))
_SWAP = (
    update(HOST_STATE)
    .where(*_WHERE, HOST_STATE.c.generation == bindparam("g"))
    .values(
        generation=HOST_STATE.c.generation + 1,
        received_at=bindparam("now"),
        body=bindparam("body"),
    )
)
_DELETE = delete(HOST_STATE).where(*_WHERE, HOST_STATE.c.generation == bindparam("g"))
_LOG = insert(STATE_CHANGE)
