"""Pull dispatch in one process: its NATS bus, its sweeper, and what follows a commit.

:class:`Pull` is built once per process by :class:`berth.services.Services`
(``services.pull``) and closed with it.  It owns the :class:`~berth.pull.bus.Bus`
(built on first use), the :class:`~berth.pull.sweeper.Sweeper` thread (started
by a serving worker), and the steps that follow a committed write: publish
an enqueued request's messages, make a new queue's consumer, sync the
queues after a flavor changed.  None of those steps fails the write that
called for them: when NATS cannot be reached the rows stay unpublished or
unsynced, and the sweeper finishes the work later.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import structlog

from berth.db.engine import Database
from berth.placement import errors
from berth.pull import outbox, queues
from berth.pull.bus import Bus
from berth.pull.claims import Owners
from berth.pull.instances import Instance
from berth.pull.requests import Enqueued
from berth.pull.sweeper import Sweeper
from berth.settings import Settings

log = structlog.get_logger("berth.pull")


class Pull:
    """One process's pull dispatch (see the module docstring)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._lock = threading.Lock()
        self._bus: Bus | None = None
        self._sweeper: Sweeper | None = None
        self._queues_seen = False
        self._agents: set[str] = set()  # agents whose delete consumer exists
        self.owners = Owners()  # project and user ids, for the claims

    @property
    def bus(self) -> Bus:
        """The process's NATS connection (built on first use; it connects when asked to)."""
        with self._lock:
            if self._bus is None:
                s = self.settings
                self._bus = Bus(s.nats_url, s.nats_timeout_s, s.nats_retry_s)
            return self._bus

    def first_use(self) -> None:
        """Sync the queues once per process, before it first serves pull dispatch."""
        if self._queues_seen:
            return
        self._queues_seen = True
        self.queues_changed()

    def queues_changed(self) -> None:
        """Sync the queues (the table, then NATS); never fails the caller, whose own write
        committed or does not depend on it (the sweeper's periodic sync catches up)."""
        try:
            queues.sync(self.db, self.bus, self.settings)
        except errors.Unavailable as exc:
            log.warning("queues not synced to NATS; the sweeper will", error=exc.message)
        except Exception as exc:
            log.warning("queues not synced; the sweeper will", error=repr(exc))

    def enqueued(self, done: Enqueued) -> None:
        """After an enqueue committed: its queue's consumer if new, then its messages."""
        try:
            if done.new_queue:
                queues.sync_pending(self.db, self.bus, self.settings)
            if outbox.send(self.db, self.bus, done.instances) < len(done.instances):
                log.warning("request partly published; the sweeper will", request=done.uuid)
        except Exception as exc:  # committed: the request stands, the sweeper publishes it
            log.warning("request not published; the sweeper will", error=repr(exc))

    def deleting(self, placed: Sequence[Instance]) -> None:
        """After a delete committed: the delete messages of the instances on hosts."""
        if not placed:
            return
        try:
            outbox.send(self.db, self.bus, placed)
        except Exception as exc:  # committed: the sweeper publishes them
            log.warning("deletes not published; the sweeper will", error=repr(exc))

    def agent_seen(self, agent: str) -> None:
        """Make the agent's delete consumer the first time this process hears of it."""
        if agent in self._agents:
            return
        try:
            queues.ensure_streams(self.bus, self.settings)
            queues.ensure_delete_consumer(self.bus, self.settings, agent)
        except errors.Unavailable as exc:
            log.warning("delete consumer not made; next heartbeat", agent=agent, error=exc.message)
            return
        self._agents.add(agent)

    def start_sweeper(self) -> None:
        """Start this process's sweeper (``pull_sweep_interval_s`` 0: none)."""
        with self._lock:
            if self._sweeper is None and self.settings.pull_sweep_interval_s > 0:
                self._sweeper = Sweeper(self.db, self.settings, lambda: self.bus)
                self._sweeper.start()

    def close(self) -> None:
        """Stop the sweeper, then close the NATS connection."""
        with self._lock:
            sweeper, bus = self._sweeper, self._bus
            self._sweeper = self._bus = None
        if sweeper is not None:
            sweeper.stop()
        if bus is not None:
            bus.close()
