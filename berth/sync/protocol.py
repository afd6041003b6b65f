"""The one small protocol every host-state sync backend speaks, and the listener they share.

Writers call :meth:`StateSync.publish` after their transaction commits; each
worker's host catalog calls :meth:`StateSync.drain` before it answers, and
gets the changes that arrived since (a :class:`Delivery`).  The database
stays the truth: a backend only makes a change visible sooner, and spares
the catalog reading what the change carries.  Whether the catalog may trust
what arrives depends on the delivery's ``epoch``: a new epoch begins each
time the listener (re)connects, or finds it missed something (a gap), and
the catalog then reads the change logs once before it trusts that
connection (``berth.scheduler.hoststate``).

:class:`NullSync` is the ``db`` backend: it carries nothing and never
connects, so the catalog polls the logs as it always did.
:class:`ListeningSync` runs a backend's listener in a daemon thread:
connect, subscribe, :meth:`~ListeningSync.joined` (the new epoch), deliver
until the connection fails, :meth:`~ListeningSync.lost`, wait, again.  It is
started by the first :meth:`drain` (a process that only writes listens to
nothing) and stopped by :meth:`close`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from berth.sync.changes import Change

log = structlog.get_logger("berth.sync")

# Seconds between reconnects after a listener lost its server.
RECONNECT_S = 0.5
# A publish waits at most about this long for the server (it delays the write's answer);
# after a failed one, a writer does not try the server again for PUBLISH_RETRY_S.
PUBLISH_TIMEOUT_S = 0.5
PUBLISH_RETRY_S = 1.0
# Changes waiting in one process's inbox beyond this: drop them, start a new epoch.
MAX_INBOX = 100_000


@dataclass
class Delivery:
    """What a listener received since the previous drain."""

    changes: list[Change] = field(default_factory=list)
    epoch: int = 0  # the connection they came over (0: never connected)
    connected: bool = False  # listening now

    @property
    def woke(self) -> bool:
        """Some change named only its key: the catalog must read the logs now."""
        return any(not c.carried for c in self.changes)


class StateSync(Protocol):
    """A sync backend: publish committed changes, drain what arrived (module docstring)."""

    name: str

    @property
    def signal(self) -> int:
        """A number that moves whenever a drain would return something new (read lock-free)."""
        ...

    def publish(self, changes: Sequence[Change]) -> None:
        """Send committed changes to every worker; never raises (the logs are the net)."""
        ...

    def drain(self) -> Delivery:
        """The changes received since the last drain (starts listening on first call)."""
        ...

    def close(self) -> None:
        """Stop listening and close the connections."""
        ...


class NullSync:
    """The ``db`` backend: nothing is pushed; the catalog polls the change logs."""

    name = "db"
    signal = 0

    def publish(self, changes: Sequence[Change]) -> None:
        """Nothing to send: the change-log rows are the message."""

    def drain(self) -> Delivery:
        """Nothing ever arrives."""
        return Delivery()

    def close(self) -> None:
        """Nothing to close."""


class ListeningSync:
    """A backend with a listener thread; subclasses give :meth:`listen` and :meth:`send`."""

    name = "listening"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inbox: list[Change] = []
        self._epoch = 0
        self._connected = False
        self._signal = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._publish_failed_at = -float("inf")

    # -- the writer's side ------------------------------------------------------------
    def send(self, changes: Sequence[Change]) -> None:
        """Send ``changes`` to the server (raise on failure)."""
        raise NotImplementedError

    def publish(self, changes: Sequence[Change]) -> None:
        """Send after commit; hand them to this process's own catalog too (read your writes)."""
        if not changes:
            return
        if self._thread is not None:
            self.deliver(changes)
        if time.monotonic() - self._publish_failed_at < PUBLISH_RETRY_S:
            return  # the server failed moments ago: the workers' log reads catch up
        try:
            self.send(changes)
        except Exception as exc:  # committed: the change logs carry it to the workers
            self._publish_failed_at = time.monotonic()
            log.warning("host state change not published", backend=self.name, error=repr(exc))

    # -- the listener's side ----------------------------------------------------------
    def listen(self, stop: threading.Event) -> None:
        """Connect, subscribe, call :meth:`joined`, :meth:`deliver` until the connection
        fails (raise) or ``stop`` is set (return)."""
        raise NotImplementedError

    @property
    def signal(self) -> int:
        """Moves on every delivery, (re)connection and loss."""
        return self._signal

    @property
    def listening(self) -> bool:
        """Whether the listener is connected now."""
        return self._connected

    def joined(self) -> None:
        """Subscribed: a new epoch (the catalog reads the logs once before trusting it)."""
        with self._lock:
            self._epoch += 1
            self._connected = True
            self._signal += 1
            epoch = self._epoch
        if epoch > 1:
            log.info("host state sync listening", backend=self.name, epoch=epoch)

    def lost(self) -> None:
        """The connection failed: the catalog falls back to polling the logs."""
        with self._lock:
            self._connected = False
            self._signal += 1

    def gap(self) -> None:
        """Something may have been missed on a live connection: a new epoch."""
        self.joined()

    def deliver(self, changes: Sequence[Change]) -> None:
        """Queue changes for the next drain."""
        with self._lock:
            if len(self._inbox) + len(changes) > MAX_INBOX:
                # Nobody drains fast enough: the logs will say what changed.
                self._inbox = []
                self._epoch += 1
            else:
                self._inbox.extend(changes)
            self._signal += 1

    def drain(self) -> Delivery:
        """The changes since the last drain; starts the listener on first use."""
        if self._thread is None:
            self._start()
        with self._lock:
            changes, self._inbox = self._inbox, []
            return Delivery(changes, self._epoch, self._connected)

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(
                target=self._run, name=f"berth-sync-{self.name}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        was_up = True
        while not self._stop.is_set():
            try:
                self.listen(self._stop)
            except Exception as exc:
                if was_up:
                    log.warning("host state sync lost", backend=self.name, error=repr(exc))
                was_up = False
            else:
                was_up = True
            if self._connected:
                self.lost()
            self._stop.wait(RECONNECT_S)

    def close(self) -> None:
        """Stop the listener (it notices within its poll timeout) and wait a little for it."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(5.0)
        self.lost()
