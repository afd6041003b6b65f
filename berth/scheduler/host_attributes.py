"""A host as filters see it (its namespaces, and the fields of scheduler 1.0), aggregate metadata.

Host state lives in namespaces (:mod:`berth.scheduler.state_store`);
:class:`HostAttributes` is one host's namespaces with the fields scheduler
1.0 named read out of them once: ``disabled``, ``disabled_reason`` and
``availability_zone`` from ``operator``, ``metrics`` from ``compute``.
:func:`put_host` is 1.0's ``PUT /scheduler/hosts/{uuid}``: it writes only
the fields it is given, each into its namespace, so a host pushing metrics
leaves an operator's ``disabled`` and zone alone.

Aggregate metadata berth keeps itself (``scheduler_aggregates``); every
write also inserts a row in ``scheduler_aggregate_changes``, the log workers
follow.  A metadata change moves the generation of every member of the
aggregate, as Placement does when traits or aggregates change: a claim that
read the old metadata then loses its generation swap and runs again
(:mod:`berth.scheduler.recheck`).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select, update

from berth.db import tables as t
from berth.db.clock import utcnow
from berth.db.tables import AGG, AGG_CHANGE, RP_AGG, SCHED_AGG
from berth.placement.write import generations
from berth.scheduler import state_store
from berth.scheduler.namespaces import COMPUTE, OPERATOR, StateRules
from berth.scheduler.state_store import NamespaceState
from berth.sync.changes import Change, aggregate_change

OPERATOR_FIELDS = ("disabled", "disabled_reason", "availability_zone")


@dataclass(frozen=True)
class HostAttributes:
    """One host's state: its namespaces, and the fields of scheduler 1.0 read out of them."""

    disabled: bool = False
    disabled_reason: str | None = None
    availability_zone: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    namespaces: Mapping[str, NamespaceState] = field(default_factory=dict)
    # namespace -> object: what state keys (berth.scheduler.state_keys) look in.
    states: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, namespaces: Mapping[str, NamespaceState]) -> HostAttributes:
        """A host's attributes from its namespaces (read once per catalog refresh)."""
        operator = namespaces[OPERATOR].state if OPERATOR in namespaces else {}
        compute = namespaces[COMPUTE].state if COMPUTE in namespaces else {}
        metrics = compute.get("metrics")
        return cls(
            disabled=bool(operator.get("disabled", False)),
            disabled_reason=operator.get("disabled_reason"),
            availability_zone=operator.get("availability_zone"),
            metrics=_numbers(metrics) if isinstance(metrics, dict) else {},
            namespaces=dict(namespaces),
            states={ns: entry.state for ns, entry in namespaces.items()},
        )

    def received_at(self, namespace: str) -> datetime.datetime | None:
        """When the server received the namespace's last write (None: it holds nothing)."""
        found = self.namespaces.get(namespace)
        return found.received_at if found is not None else None

    def as_body(self) -> dict[str, Any]:
        """The JSON shape of scheduler 1.0's ``GET /scheduler/hosts/{uuid}``."""
        return {
            "disabled": self.disabled,
            "disabled_reason": self.disabled_reason,
            "availability_zone": self.availability_zone,
            "metrics": dict(self.metrics),
        }


DEFAULT_HOST = HostAttributes()


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {
        name: float(value)
        for name, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def get_host(conn: Connection, provider_uuid: str) -> HostAttributes:
    """A host's attributes (the defaults when it has no state); NotFound for no provider."""
    return HostAttributes.of(state_store.get_host(conn, provider_uuid))


def list_hosts(conn: Connection) -> dict[str, HostAttributes]:
    """Every host with something in ``operator`` or ``compute``, by provider uuid."""
    hosts = state_store.read_hosts(conn, None)
    return {
        uuid: HostAttributes.of(namespaces)
        for uuid, namespaces in hosts.items()
        if OPERATOR in namespaces or COMPUTE in namespaces
    }


def put_host(
    conn: Connection,
    rules: StateRules,
    provider_uuid: str,
    fields: Mapping[str, Any],
    changes: list[Change] | None = None,
) -> HostAttributes:
    """Write the 1.0 fields given, and only those: operator fields into ``operator``
    (None removes one), ``metrics`` (replaced whole) into ``compute``.

    The provider's generation moves when ``disabled`` or the zone changes.
    """
    named = {k: fields[k] for k in OPERATOR_FIELDS if k in fields}
    if named:
        state_store.change(conn, rules, provider_uuid, OPERATOR, _setter(named), None, changes)
    if "metrics" in fields:
        metrics = {"metrics": dict(fields["metrics"] or {})}
        state_store.change(conn, rules, provider_uuid, COMPUTE, _setter(metrics), None, changes)
    return get_host(conn, provider_uuid)


def _setter(values: Mapping[str, Any]) -> Any:
    def setter(old: Mapping[str, Any]) -> dict[str, Any]:
        new = {**old, **values}
        return {k: v for k, v in new.items() if v is not None}

    return setter


def get_aggregate_metadata(conn: Connection, aggregate_uuid: str) -> dict[str, str]:
    """An aggregate's metadata ({} when never set)."""
    found = conn.execute(
        select(SCHED_AGG.c.metadata).where(SCHED_AGG.c.aggregate_uuid == aggregate_uuid)
    )
    text = found.scalar()
    return dict(orjson.loads(text)) if text else {}


def put_aggregate_metadata(
    conn: Connection,
    aggregate_uuid: str,
    metadata: dict[str, str],
    changes: list[Change] | None = None,
) -> None:
    """Replace an aggregate's metadata (any uuid: aggregates exist implicitly); note the
    change in ``changes`` (for the sync backend) when given.

    The generations of the aggregate's members move when the metadata changes.
    """
    if get_aggregate_metadata(conn, aggregate_uuid) != metadata:
        members = (
            select(RP_AGG.c.resource_provider_id)
            .join(AGG, AGG.c.id == RP_AGG.c.aggregate_id)
            .where(AGG.c.uuid == aggregate_uuid)
        )
        generations.advance(conn, list(conn.execute(members).scalars()))
    now = utcnow()
    text = orjson.dumps(metadata).decode()
    key = SCHED_AGG.c.aggregate_uuid == aggregate_uuid
    done = conn.execute(update(SCHED_AGG).where(key).values(metadata=text, updated_at=now))
    if done.rowcount != 1:
        # A concurrent first write loses on the key and is run again.
        conn.execute(
            insert(SCHED_AGG).values(aggregate_uuid=aggregate_uuid, metadata=text, created_at=now)
        )
    logged = conn.execute(insert(AGG_CHANGE).values(aggregate_uuid=aggregate_uuid, at=now))
    if changes is not None:
        change_id = int(logged.inserted_primary_key[0])  # type: ignore[index]
        changes.append(aggregate_change(change_id, aggregate_uuid, metadata))


def aggregate_metadata(conn: Connection, uuids: list[str] | None) -> dict[str, dict[str, str]]:
    """The metadata of the aggregates named (None: of every aggregate with some)."""
    query = select(SCHED_AGG.c.aggregate_uuid, SCHED_AGG.c.metadata)
    if uuids is not None:
        query = query.where(SCHED_AGG.c.aggregate_uuid.in_(sorted(set(uuids))))
    return {row.aggregate_uuid: dict(orjson.loads(row.metadata)) for row in conn.execute(query)}


def host_names(conn: Connection, uuids: list[str]) -> dict[str, str | None]:
    """Provider names by uuid, for answers meant for people."""
    if not uuids:
        return {}
    RP = t.resource_providers
    rows = conn.execute(select(RP.c.uuid, RP.c.name).where(RP.c.uuid.in_(sorted(set(uuids)))))
    return {r.uuid: r.name for r in rows}
