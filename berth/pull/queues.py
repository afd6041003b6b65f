"""The queue manager: which work queues exist, and their streams, consumers and list in NATS.

The table ``pull_queues`` is the truth: one row per flavor (its base queue)
and one per (flavor, capability set) a request asked for.  NATS holds what
the agents read: stream ``BERTH_WORK`` (work-queue retention, file storage,
a duplicate window), one durable pull consumer per queue (filter = the
queue's subject, explicit ack, ``pull_ack_wait_s``), stream ``BERTH_DELETE``,
and the key-value bucket ``berth-queues`` (key = queue name, value = the
queue JSON).

Two halves, so that a NATS outage never blocks a database write:

* the table (:func:`sync_table`, in a transaction): a base row for every
  flavor; the instances still queued in the queues of deleted flavors
  failed (reason given, reservation released); a new capability set's row
  is inserted by the enqueue that asks for it (:func:`ensure_row`).  A new
  row is ``synced = false``; a row whose flavor is gone is *retired*.
* NATS (:func:`reconcile` for everything: table vs bucket vs consumers,
  the consumers and keys of retired queues removed, then their rows, and the
  delete consumer of every agent heard from lately;
  :func:`sync_pending` for the rows not yet synced only), which marks the
  rows it made ``synced``.  Consumers and keys the table never knew are
  left alone unless asked to prune (``berth queues sync --prune``): one
  NATS server may serve more than this deployment.

:func:`sync` runs both; after a flavor create or delete, at a serving
process's first use, by ``berth queues sync``, and from the sweeper
(pending rows every pass, everything every ``pull_queues_sync_interval_s``).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
import structlog
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.db.tables import FLAVOR, PULL_HOST, PULL_INSTANCE, PULL_QUEUE
from berth.placement.write.retry import atomically
from berth.pull import instances
from berth.pull.model import (
    DELETE_STREAM,
    DELETE_SUBJECTS,
    FAILED,
    QUEUED,
    QUEUES_BUCKET,
    WORK_STREAM,
    WORK_SUBJECTS,
    Queue,
    delete_consumer,
    delete_subject,
    dumps,
    queue_name,
)
from berth.scheduler import flavors, quotas
from berth.scheduler.flavors import Flavor
from berth.settings import Settings

if TYPE_CHECKING:
    from nats.js import api as js_api

    from berth.pull.bus import Bus

log = structlog.get_logger("berth.pull.queues")

OPERATION = "pull_queues"
# Consumers of BERTH_WORK that are queues (others, if any, are left alone).
QUEUE_NAME = re.compile(r"^f[0-9a-f]{32}(-c[0-9a-f]{12})?$")
FLAVOR_GONE = "flavor {flavor} was deleted while the instance was queued"


def queue_of(flavor: Flavor, capabilities: Iterable[str] = ()) -> Queue:
    """The queue of ``flavor`` with ``capabilities`` asked on top."""
    return Queue(
        flavor.uuid,
        flavor.name,
        dict(flavor.resources),
        frozenset(flavor.required_traits),
        frozenset(flavor.forbidden_traits),
        frozenset(capabilities),
    )


# -- the table -----------------------------------------------------------------------------
def ensure_row(conn: Connection, queue: Queue) -> bool:
    """Insert the queue's row unless it exists; True when this transaction inserted it."""
    name = queue.name
    if conn.execute(select(PULL_QUEUE.c.name).where(PULL_QUEUE.c.name == name)).first():
        return False
    now = utcnow()
    try:
        with conn.begin_nested():  # a concurrent insert of the same queue: keep theirs
            conn.execute(
                insert(PULL_QUEUE).values(
                    name=name,
                    flavor_uuid=queue.flavor_uuid,
                    capabilities=dumps(sorted(queue.capabilities)),
                    synced=False,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


def list_queues(conn: Connection, unsynced_only: bool = False) -> list[Queue]:
    """Every queue: each flavor's own, and the capability sets asked for (of flavors that
    exist), by name; or only those whose row is not synced yet."""
    query = select(PULL_QUEUE.c.name, PULL_QUEUE.c.flavor_uuid, PULL_QUEUE.c.capabilities)
    if unsynced_only:
        query = query.where(PULL_QUEUE.c.synced.is_(False))
    by_uuid = {f.uuid: f for f in flavors.list_flavors(conn)}
    found = {} if unsynced_only else {queue_name(u): queue_of(f) for u, f in by_uuid.items()}
    for row in conn.execute(query):
        flavor = by_uuid.get(row.flavor_uuid)
        if flavor is not None:
            found[row.name] = queue_of(flavor, orjson.loads(row.capabilities))
    return [found[name] for name in sorted(found)]


@dataclass
class TableChanges:
    """What :func:`sync_table` changed."""

    added: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    failed: int = 0


def sync_table(conn: Connection) -> TableChanges:
    """Base rows for flavors without one; the instances still queued in the queues of
    deleted flavors failed.  Those queues' rows stay (as tombstones) until their consumer
    and key are removed from NATS (:func:`reconcile`)."""
    changes = TableChanges()
    flavor_uuids = set(conn.execute(select(FLAVOR.c.uuid)).scalars())
    for flavor in flavors.list_flavors(conn):
        if ensure_row(conn, queue_of(flavor)):
            changes.added.append(queue_name(flavor.uuid))
    for name, flavor_uuid in _retired(conn, flavor_uuids):
        changes.failed += _fail_queued_in(conn, name, FLAVOR_GONE.format(flavor=flavor_uuid))
        changes.retired.append(name)
    return changes


def _retired(conn: Connection, flavor_uuids: set[str] | None = None) -> list[tuple[str, str]]:
    """(name, flavor uuid) of the queues whose flavor was deleted."""
    if flavor_uuids is None:
        flavor_uuids = set(conn.execute(select(FLAVOR.c.uuid)).scalars())
    rows = conn.execute(select(PULL_QUEUE.c.name, PULL_QUEUE.c.flavor_uuid)).all()
    return sorted((r.name, r.flavor_uuid) for r in rows if r.flavor_uuid not in flavor_uuids)


def _fail_queued_in(conn: Connection, queue: str, reason: str) -> int:
    """Fail every instance queued in ``queue`` (reservations released); how many."""
    PI = PULL_INSTANCE
    where = (PI.c.queue == queue, PI.c.state == QUEUED)
    failed = 0
    while batch := instances.read_where(conn, *where, limit=instances.CHUNK):
        fail(conn, batch, reason)
        failed += len(batch)
    return failed


def fail(conn: Connection, batch: Sequence[instances.Instance], reason: str) -> None:
    """Move queued instances to failed with ``reason``, releasing their reservations."""
    now = utcnow()
    values = {"state": FAILED, "reason": reason, "published": True, "reservation": None}
    instances.move(conn, batch, values, now)
    quotas.release_many(conn, [i.reservation for i in batch if i.reservation])


def mark_synced(conn: Connection, names: Sequence[str]) -> None:
    """The queues ``names`` have their consumer and key-value entry."""
    if names:
        conn.execute(
            update(PULL_QUEUE)
            .where(PULL_QUEUE.c.name.in_(list(names)))
            .values(synced=True, updated_at=utcnow())
        )


# -- NATS ----------------------------------------------------------------------------------
def ensure_streams(
    bus: Bus, settings: Settings, update: bool = False
) -> dict[str, datetime.datetime | None]:
    """Streams BERTH_WORK and BERTH_DELETE as docs/pull.md describes them (made when missing;
    with ``update``, existing ones take this config, e.g. a new duplicate window); when
    each was created."""
    from nats.js import api as js_api  # NATS' client only where pull dispatch runs

    created = {}
    for name, subjects in ((WORK_STREAM, WORK_SUBJECTS), (DELETE_STREAM, DELETE_SUBJECTS)):
        created[name] = bus.ensure_stream(
            js_api.StreamConfig(
                name=name,
                subjects=[subjects],
                retention=js_api.RetentionPolicy.WORK_QUEUE,
                storage=js_api.StorageType.FILE,
                duplicate_window=float(settings.pull_duplicate_window_s),
            ),
            update,
        )
    return created


def consumer_config(name: str, subject: str, settings: Settings) -> js_api.ConsumerConfig:
    """A durable pull consumer of ``subject`` (a work queue's, or an agent's deletes)."""
    from nats.js import api as js_api  # NATS' client only where pull dispatch runs

    return js_api.ConsumerConfig(
        durable_name=name,
        filter_subject=subject,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        ack_wait=float(settings.pull_ack_wait_s),
        deliver_policy=js_api.DeliverPolicy.ALL,
        max_ack_pending=settings.pull_max_ack_pending,
    )


def ensure_delete_consumer(bus: Bus, settings: Settings, agent: str) -> None:
    """The durable consumer ``del-<agent>`` of the agent's deletes (``berth.delete.<agent>.*``)."""
    name = delete_consumer(agent)
    subject = delete_subject(agent, "*")
    bus.ensure_consumer(DELETE_STREAM, consumer_config(name, subject, settings))


def _publish_queue(bus: Bus, settings: Settings, queue: Queue) -> None:
    bus.ensure_consumer(WORK_STREAM, consumer_config(queue.name, queue.subject, settings))
    bus.kv_put(QUEUES_BUCKET, queue.name, dumps(queue.as_body()).encode())


@dataclass
class Report:
    """What a sync did: the table's changes and NATS's."""

    table: TableChanges = field(default_factory=TableChanges)
    consumers_created: list[str] = field(default_factory=list)
    consumers_removed: list[str] = field(default_factory=list)
    delete_consumers_created: list[str] = field(default_factory=list)
    keys_written: list[str] = field(default_factory=list)
    keys_removed: list[str] = field(default_factory=list)


def reconcile(
    db: Database, bus: Bus, settings: Settings, report: Report | None = None, prune: bool = False
) -> Report:
    """Make NATS match the table: the streams, a consumer and a key per queue; the consumers
    and keys of retired queues (deleted flavors) removed, then their rows; a delete
    consumer for every agent that heartbeated within ``pull_heartbeat_timeout_s``
    (a NATS that lost its store lost them too).  With ``prune``,
    also every queue consumer and key the table does not know (only for a NATS server that
    serves this deployment alone: another one's queues would go too)."""
    report = report or Report()
    with db.read() as conn:
        wanted = {q.name: q for q in list_queues(conn)}
        retired = {name for name, _ in _retired(conn)}
    ensure_streams(bus, settings, update=True)
    existing = set(bus.consumer_names(WORK_STREAM))
    for name, queue in wanted.items():
        if name not in existing:
            bus.ensure_consumer(WORK_STREAM, consumer_config(name, queue.subject, settings))
            report.consumers_created.append(name)
    strays = {n for n in existing - wanted.keys() if QUEUE_NAME.match(n)}
    for name in sorted(strays if prune else strays & retired):
        bus.delete_consumer(WORK_STREAM, name)
        report.consumers_removed.append(name)
    _reconcile_keys(bus, wanted, retired, prune, report)
    _reconcile_delete_consumers(db, bus, settings, report)
    with db.write() as conn:
        mark_synced(conn, sorted(wanted))
        if retired:
            conn.execute(delete(PULL_QUEUE).where(PULL_QUEUE.c.name.in_(sorted(retired))))
    return report


def _reconcile_keys(
    bus: Bus, wanted: dict[str, Queue], retired: set[str], prune: bool, report: Report
) -> None:
    stored = bus.kv_items(QUEUES_BUCKET)
    for name, queue in wanted.items():
        value = dumps(queue.as_body()).encode()
        if stored.get(name) != value:
            bus.kv_put(QUEUES_BUCKET, name, value)
            report.keys_written.append(name)
    strays = stored.keys() - wanted.keys()
    for name in sorted(strays if prune else strays & retired):
        bus.kv_delete(QUEUES_BUCKET, name)
        report.keys_removed.append(name)


def _reconcile_delete_consumers(db: Database, bus: Bus, settings: Settings, report: Report) -> None:
    cutoff = utcnow() - datetime.timedelta(seconds=settings.pull_heartbeat_timeout_s)
    query = select(PULL_HOST.c.agent).where(PULL_HOST.c.heartbeat_at >= cutoff).distinct()
    with db.read() as conn:
        alive = set(conn.execute(query).scalars())
    existing = set(bus.consumer_names(DELETE_STREAM))
    for agent in sorted(alive):
        if delete_consumer(agent) not in existing:
            ensure_delete_consumer(bus, settings, agent)
            report.delete_consumers_created.append(delete_consumer(agent))


def sync_pending(db: Database, bus: Bus, settings: Settings) -> list[str]:
    """Consumers and keys for the queues not synced yet; their names."""
    with db.read() as conn:
        pending = list_queues(conn, unsynced_only=True)
    if not pending:
        return []
    ensure_streams(bus, settings)
    for queue in pending:
        _publish_queue(bus, settings, queue)
    with db.write() as conn:
        mark_synced(conn, [q.name for q in pending])
    return [q.name for q in pending]


def sync_table_now(db: Database, settings: Settings) -> TableChanges:
    """:func:`sync_table` in a transaction of its own (run again while it loses a race)."""
    retries = settings.allocation_conflict_retry_count
    return atomically(db, sync_table, retries, operation=OPERATION)


def sync(db: Database, bus: Bus, settings: Settings, prune: bool = False) -> Report:
    """The table, then NATS (Unavailable when NATS cannot be reached: the table is done)."""
    report = Report(table=sync_table_now(db, settings))
    return reconcile(db, bus, settings, report, prune)
