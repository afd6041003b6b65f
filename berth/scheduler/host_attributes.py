"""berth's own host attributes: disabled flag, availability zone, metrics, aggregate metadata.

Placement has no place for these, so berth keeps them in ``scheduler_hosts``
and ``scheduler_aggregates``.  Every write takes a new revision from the
``scheduler_revisions`` counter in the same transaction; the counter's row
lock orders writers, so a reader that remembers the last revision it saw
fetches exactly the rows written since (:func:`changed_since`).

A write that changes what a claim re-checks (a host's ``disabled`` flag or
zone, an aggregate's metadata) also moves the generation of the providers
concerned (the host; every member of the aggregate), as Placement does when
traits or aggregates change: a claim that read the old state then loses its
generation swap and runs again (:mod:`berth.scheduler.recheck`).  Metrics
alone move nothing: no claim re-checks them.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Column, Connection, insert, select, update

from berth.db import tables as t
from berth.db.clock import utcnow
from berth.db.tables import AGG, RP_AGG, SCHED_AGG, SCHED_HOST, SCHED_REVISION
from berth.placement import errors
from berth.placement.providers import get_provider
from berth.placement.write import generations

STATE = "state"


@dataclass(frozen=True)
class HostAttributes:
    """What berth knows about a host beyond Placement."""

    disabled: bool = False
    disabled_reason: str | None = None
    availability_zone: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    updated_at: datetime.datetime | None = None

    def as_body(self) -> dict[str, Any]:
        """The JSON shape of ``GET /scheduler/hosts/{uuid}``."""
        return {
            "disabled": self.disabled,
            "disabled_reason": self.disabled_reason,
            "availability_zone": self.availability_zone,
            "metrics": dict(self.metrics),
        }


DEFAULT_HOST = HostAttributes()


def next_revision(conn: Connection) -> int:
    """Bump the state counter (creating it) and return the new value."""
    bumped = conn.execute(
        update(SCHED_REVISION)
        .where(SCHED_REVISION.c.name == STATE)
        .values(value=SCHED_REVISION.c.value + 1)
    )
    if bumped.rowcount != 1:
        # First write ever; a concurrent first write loses on the key and retries.
        conn.execute(insert(SCHED_REVISION).values(name=STATE, value=1))
    return int(
        conn.execute(
            select(SCHED_REVISION.c.value).where(SCHED_REVISION.c.name == STATE)
        ).scalar_one()
    )


def current_revision(conn: Connection) -> int:
    """The newest revision committed (0 before any write)."""
    found = conn.execute(
        select(SCHED_REVISION.c.value).where(SCHED_REVISION.c.name == STATE)
    ).scalar()
    return int(found or 0)


def _put(conn: Connection, key: Column[str], value: str, values: dict[str, Any]) -> None:
    """Write ``values`` with a new revision to the row of ``key``'s table where ``key`` is
    ``value``: updated if it is there, inserted if not."""
    values = {**values, "revision": next_revision(conn)}
    now = utcnow()
    table = key.table
    done = conn.execute(update(table).where(key == value).values(updated_at=now, **values))
    if done.rowcount != 1:
        conn.execute(insert(table).values({key.name: value, "created_at": now, **values}))


def _host(row: Any) -> HostAttributes:
    return HostAttributes(
        disabled=bool(row.disabled),
        disabled_reason=row.disabled_reason,
        availability_zone=row.availability_zone,
        metrics=orjson.loads(row.metrics) if row.metrics else {},
        updated_at=row.updated_at or row.created_at,
    )


def get_host(conn: Connection, provider_uuid: str) -> HostAttributes:
    """A host's attributes (the defaults when never set); NotFound for no provider."""
    get_provider(conn, provider_uuid)
    row = conn.execute(
        select(SCHED_HOST).where(SCHED_HOST.c.provider_uuid == provider_uuid)
    ).one_or_none()
    return _host(row) if row is not None else DEFAULT_HOST


def list_hosts(conn: Connection) -> dict[str, HostAttributes]:
    """Every host with attributes set, by provider uuid."""
    return {row.provider_uuid: _host(row) for row in conn.execute(select(SCHED_HOST))}


def put_host(conn: Connection, provider_uuid: str, attrs: HostAttributes) -> None:
    """Replace a host's attributes; NotFound when the provider does not exist.

    The provider's generation moves when ``disabled`` or the zone changes.
    """
    provider = get_provider(conn, provider_uuid)
    before = conn.execute(
        select(SCHED_HOST.c.disabled, SCHED_HOST.c.availability_zone).where(
            SCHED_HOST.c.provider_uuid == provider_uuid
        )
    ).one_or_none()
    was = (bool(before.disabled), before.availability_zone) if before else (False, None)
    if was != (attrs.disabled, attrs.availability_zone):
        generations.advance(conn, [provider.id])
    values = {
        "disabled": attrs.disabled,
        "disabled_reason": attrs.disabled_reason,
        "availability_zone": attrs.availability_zone,
        "metrics": orjson.dumps(dict(attrs.metrics)).decode(),
    }
    _put(conn, SCHED_HOST.c.provider_uuid, provider_uuid, values)


def get_aggregate_metadata(conn: Connection, aggregate_uuid: str) -> dict[str, str]:
    """An aggregate's metadata ({} when never set)."""
    found = conn.execute(
        select(SCHED_AGG.c.metadata).where(SCHED_AGG.c.aggregate_uuid == aggregate_uuid)
    )
    text = found.scalar()
    return dict(orjson.loads(text)) if text else {}


def put_aggregate_metadata(conn: Connection, aggregate_uuid: str, metadata: dict[str, str]) -> None:
    """Replace an aggregate's metadata (any uuid: aggregates exist implicitly).

    The generations of the aggregate's members move when the metadata changes.
    """
    if get_aggregate_metadata(conn, aggregate_uuid) != metadata:
        members = (
            select(RP_AGG.c.resource_provider_id)
            .join(AGG, AGG.c.id == RP_AGG.c.aggregate_id)
            .where(AGG.c.uuid == aggregate_uuid)
        )
        generations.advance(conn, list(conn.execute(members).scalars()))
    values = {"metadata": orjson.dumps(metadata).decode()}
    _put(conn, SCHED_AGG.c.aggregate_uuid, aggregate_uuid, values)


@dataclass
class StateChanges:
    """Rows written after some revision: hosts and aggregates."""

    revision: int
    hosts: dict[str, HostAttributes]
    aggregates: dict[str, dict[str, str]]


def changed_since(conn: Connection, revision: int) -> StateChanges | None:
    """Host and aggregate rows newer than ``revision`` (None: nothing new)."""
    newest = current_revision(conn)
    if newest <= revision:
        return None
    hosts = {
        row.provider_uuid: _host(row)
        for row in conn.execute(select(SCHED_HOST).where(SCHED_HOST.c.revision > revision))
    }
    aggregates = {
        row.aggregate_uuid: dict(orjson.loads(row.metadata))
        for row in conn.execute(select(SCHED_AGG).where(SCHED_AGG.c.revision > revision))
    }
    return StateChanges(newest, hosts, aggregates)


def check_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Metrics as floats; InvalidInput for anything that is not a number."""
    out = {}
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise errors.InvalidInput(f"metric {name!r} must be a number")
        out[name] = float(value)
    return out


def host_names(conn: Connection, uuids: list[str]) -> dict[str, str | None]:
    """Provider names by uuid, for answers meant for people."""
    if not uuids:
        return {}
    RP = t.resource_providers
    rows = conn.execute(select(RP.c.uuid, RP.c.name).where(RP.c.uuid.in_(sorted(set(uuids)))))
    return {r.uuid: r.name for r in rows}
