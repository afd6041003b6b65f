"""The sweeper: what nobody else will do, every ``pull_sweep_interval_s``, in every worker.

One pass, each step in transactions of its own (at most ``pull_sweep_batch``
instances each), every move a compare-and-swap, so that the sweepers of
all serving processes may run at once (a lost swap runs the step again,
reading what the other did)::

    purge      quota reservations expired (quotas.purge_expired)
    timeout    instances queued longer than pull_request_timeout_s: failed
               with the reason, reservation released
    requeue    instances claimed (not active) by a host whose heartbeat is
               older than pull_heartbeat_timeout_s, for longer than that: its
               allocation and group membership removed, quota reserved again
               (over quota now: failed, "quota gone"), attempt + 1, queued,
               unpublished
    stalled    instances claimed longer than pull_claim_timeout_s by a host
               that still heartbeats but never confirmed them active: failed
               with the reason, allocation and group membership removed
    deletes    instances deleting on such a dead host: allocation removed,
               deleted (nobody is left to confirm it)
    lost       the streams (made if missing); messages NATS lost (queued or
               deleting rows whose subject holds fewer messages than they
               are) published again (berth/pull/recovery.py)
    queues     queues without their consumer and key yet; a whole reconcile
               every pull_queues_sync_interval_s, and at once when a stream
               was made again or messages were lost (NATS lost its store:
               every consumer and key went with it)
    publish    unpublished rows (the outbox): work messages of queued
               instances, delete messages of deleting ones

NATS being unreachable skips the last three steps (the rows wait).

A pass first asks whether there is anything to sweep (one statement: a
reservation, an instance queued, claimed or deleting, a queue not synced):
a berth that serves Placement only, or whose pull side is at rest, then
does nothing until the next whole reconcile.  Without that check a pass
cost each worker about 3 % of its time during a registration storm.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from sqlalchemy import ColumnElement, Connection, and_, exists, literal, not_, or_, select

from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.db.tables import PULL_HOST, PULL_INSTANCE, PULL_QUEUE, QUOTA_RESERVATION
from berth.placement import errors
from berth.placement.write.retry import atomically
from berth.pull import agents, instances, outbox, queues, recovery
from berth.pull.bus import Bus
from berth.pull.instances import Instance
from berth.pull.metrics import SWEPT
from berth.pull.model import CLAIMED, DELETED, DELETING, FAILED, QUEUED, reservation_ttl
from berth.scheduler import quotas
from berth.scheduler.quotas import QuotaExceeded, Scope
from berth.settings import Settings

log = structlog.get_logger("berth.pull.sweeper")

OPERATION = "pull_sweeper"
TIMED_OUT = "queued for more than {s} s without a host claiming it"
QUOTA_GONE = "quota gone when its host {host} died: {why}"
STALLED = "claimed by host {host} for more than {s} s without becoming active; allocation removed"
HOST_DEAD = "its host {host} stopped sending heartbeats; allocation removed"


@dataclass
class Pass:
    """What one pass did."""

    purged: int = 0
    failed: int = 0
    requeued: int = 0
    quota_gone: int = 0
    stalled: int = 0
    deletes_finished: int = 0
    published: int = 0
    lost: int = 0
    queues_synced: list[str] = field(default_factory=list)
    nats: str = "ok"


def _steps(db: Database, settings: Settings, step: Callable[[Connection], int]) -> int:
    """Run ``step`` (one batch, in one transaction) until a batch does nothing; the total."""
    total = 0
    while True:
        done = atomically(db, step, settings.allocation_conflict_retry_count, operation=OPERATION)
        total += done
        if done < settings.pull_sweep_batch:
            return total


def _dead(cutoff: datetime.datetime) -> ColumnElement[bool]:
    """Instances whose host has sent no heartbeat since ``cutoff`` (or never)."""
    PI, PH = PULL_INSTANCE, PULL_HOST
    alive = exists().where(PH.c.host_uuid == PI.c.host, PH.c.heartbeat_at >= cutoff)
    return and_(PI.c.updated_at < cutoff, not_(alive))


def time_out(db: Database, settings: Settings, now: datetime.datetime) -> int:
    """Fail the instances queued for too long; how many."""
    cutoff = now - datetime.timedelta(seconds=settings.pull_request_timeout_s)
    reason = TIMED_OUT.format(s=settings.pull_request_timeout_s)
    PI = PULL_INSTANCE

    def step(conn: Connection) -> int:
        where = (PI.c.state == QUEUED, PI.c.queued_at < cutoff)
        batch = instances.read_where(conn, *where, limit=settings.pull_sweep_batch)
        queues.fail(conn, batch, reason)
        return len(batch)

    return _steps(db, settings, step)


def requeue(db: Database, settings: Settings, now: datetime.datetime, report: Pass) -> None:
    """Requeue the instances claimed by dead hosts (see the module docstring)."""
    cutoff = now - datetime.timedelta(seconds=settings.pull_heartbeat_timeout_s)
    PI = PULL_INSTANCE

    def step(conn: Connection) -> int:
        where = (PI.c.state == CLAIMED, _dead(cutoff))
        batch = instances.read_where(conn, *where, limit=settings.pull_sweep_batch)
        agents.release(conn, batch)
        again, gone = _reserve_again(conn, batch, reservation_ttl(settings))
        fresh = {i.uuid: i.reservation for i in again}
        values: dict[str, Any] = {"state": QUEUED, "host": None, "published": False}
        values |= {"queued_at": utcnow(), "attempt": PI.c.attempt + 1, "reason": None}
        moved = [i for i in batch if i.uuid in fresh]
        instances.move_each(conn, moved, "reservation", fresh, values, utcnow())
        for instance, why in gone:
            reason = QUOTA_GONE.format(host=instance.host, why=why)
            failed = {"state": FAILED, "reason": reason, "published": True, "reservation": None}
            instances.move(conn, [instance], failed, utcnow())
        report.requeued += len(moved)
        report.quota_gone += len(gone)
        return len(batch)

    _steps(db, settings, step)


def _reserve_again(
    conn: Connection, batch: list[Instance], ttl: int
) -> tuple[list[Instance], list[tuple[Instance, str]]]:
    """A reservation for each requeued instance (its allocation is gone): those that got one
    (with it) and those over quota now (with why)."""
    again, gone = [], []
    for instance in batch:
        scope = Scope(instance.project_id, instance.user_id)
        try:
            made = quotas.reserve_each(conn, scope, instance.resources, 1, ttl_seconds=ttl)
        except QuotaExceeded as exc:  # judged before anything was written
            gone.append((instance, exc.message))
            continue
        again.append(replace(instance, reservation=made[0].uuid))
    return again, gone


def fail_stalled(db: Database, settings: Settings, now: datetime.datetime) -> int:
    """Fail the instances claimed for longer than the claim timeout; how many.

    Their host is alive (a dead host's claims were requeued first) but never said they
    booted; requeueing would let the same host claim them again, so they end here, and
    the host's late ``active`` is answered ``taken``."""
    cutoff = now - datetime.timedelta(seconds=settings.pull_claim_timeout_s)
    PI = PULL_INSTANCE

    def step(conn: Connection) -> int:
        where = (PI.c.state == CLAIMED, PI.c.updated_at < cutoff)
        batch = instances.read_where(conn, *where, limit=settings.pull_sweep_batch)
        agents.release(conn, batch)
        for instance in batch:
            reason = STALLED.format(host=instance.host, s=settings.pull_claim_timeout_s)
            failed = {"state": FAILED, "reason": reason, "published": True}
            instances.move(conn, [instance], failed, utcnow(), by_host=True)
        return len(batch)

    return _steps(db, settings, step)


def finish_deletes(db: Database, settings: Settings, now: datetime.datetime) -> int:
    """Deleting instances of dead hosts: allocation removed, deleted; how many."""
    cutoff = now - datetime.timedelta(seconds=settings.pull_heartbeat_timeout_s)
    PI = PULL_INSTANCE

    def step(conn: Connection) -> int:
        where = (PI.c.state == DELETING, _dead(cutoff))
        batch = instances.read_where(conn, *where, limit=settings.pull_sweep_batch)
        agents.release(conn, batch)
        for instance in batch:
            values = {"state": DELETED, "reason": HOST_DEAD.format(host=instance.host)}
            instances.move(conn, [instance], {**values, "published": True}, utcnow())
        return len(batch)

    return _steps(db, settings, step)


def publish(db: Database, bus: Bus, settings: Settings) -> int:
    """Send the outbox: every unpublished queued or deleting instance; how many went."""
    PI = PULL_INSTANCE
    where = (PI.c.published.is_(False), PI.c.state.in_([QUEUED, DELETING]))
    total = 0
    while True:
        with db.read() as conn:
            batch = instances.read_where(conn, *where, limit=settings.pull_sweep_batch)
        if not batch:
            return total
        sent = outbox.send(db, bus, batch)
        total += sent
        if sent < len(batch) or len(batch) < settings.pull_sweep_batch:
            return total  # what could not go waits for the next pass


STEPS = ("failed", "requeued", "quota_gone", "stalled", "deletes_finished", "published", "lost")

_BUSY = select(literal(1)).where(
    or_(
        exists().where(QUOTA_RESERVATION.c.id.is_not(None)),
        exists().where(PULL_INSTANCE.c.state.in_([QUEUED, CLAIMED, DELETING])),
        exists().where(PULL_QUEUE.c.synced.is_(False)),
    )
)


def idle(db: Database) -> bool:
    """Nothing for a pass to do: no reservation, no instance queued, claimed or deleting,
    no queue waiting for its consumer."""
    with db.read() as conn:
        return conn.execute(_BUSY).first() is None


def run_pass(
    db: Database,
    settings: Settings,
    bus: Callable[[], Bus],
    full_sync: bool = False,
    now: datetime.datetime | None = None,
    streams: recovery.Streams | None = None,
) -> Pass:
    """One pass of every step (see the module docstring); ``now`` is the clock's unless given;
    ``streams``: the streams' creation times as the last pass saw them (None: not known)."""
    report, now = Pass(), now or utcnow()
    if not full_sync and idle(db):
        return report
    with db.write() as conn:
        report.purged = quotas.purge_expired(conn, now)
    report.failed = time_out(db, settings, now)
    requeue(db, settings, now, report)
    report.stalled = fail_stalled(db, settings, now)
    report.deletes_finished = finish_deletes(db, settings, now)
    try:
        nats = bus()
        streams = streams or recovery.Streams()
        created = queues.ensure_streams(nats, settings)  # NATS may have come back empty
        renewed = streams.renewed(created)
        report.lost = recovery.send_lost(db, nats, settings, now)
        if full_sync or renewed or report.lost:
            if renewed:
                log.warning("nats streams made again; reconciling", streams=renewed)
            report.queues_synced = queues.sync(db, nats, settings).consumers_created
        else:
            report.queues_synced = queues.sync_pending(db, nats, settings)
        streams.seen(created)  # not before: a reconcile cut short is tried again
        report.published = publish(db, nats, settings)
    except errors.Unavailable as exc:
        report.nats = exc.message
    for step in STEPS:
        SWEPT.labels(step).inc(getattr(report, step))
    return report


class Sweeper:
    """A daemon thread running :func:`run_pass` every ``interval`` seconds until stopped."""

    def __init__(self, db: Database, settings: Settings, bus: Callable[[], Bus]) -> None:
        self.db, self.settings, self.bus = db, settings, bus
        self.streams = recovery.Streams()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="berth-pull-sweeper")
        self._thread.daemon = True

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def _loop(self) -> None:
        interval = self.settings.pull_sweep_interval_s
        last_sync = -float("inf")
        while not self._stop.wait(interval):
            full = time.monotonic() - last_sync >= self.settings.pull_queues_sync_interval_s
            try:
                report = run_pass(
                    self.db, self.settings, self.bus, full_sync=full, streams=self.streams
                )
            except Exception as exc:  # the next pass tries again; a sweeper never dies
                log.warning("pull sweep failed", error=repr(exc))
                continue
            if full and report.nats == "ok":
                last_sync = time.monotonic()
            log.debug("pull sweep", **report.__dict__)

    def stop(self) -> None:
        """Stop the thread (after its current pass) and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(max(5.0, self.settings.nats_timeout_s * 4))
