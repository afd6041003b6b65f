"""Helpers of the sync tests: writes that publish, waiting, and an in-memory backend."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from berth.db.engine import Database
from berth.placement.write.retry import atomically
from berth.scheduler import host_attributes, state_store
from berth.scheduler.hoststate import HostCatalog
from berth.sync.changes import Change
from berth.sync.protocol import ListeningSync, StateSync
from tests.scheduler.helpers import RULES


def put_metric(
    db: Database, sync: StateSync | None, host: str, value: float, namespace: str = "compute"
) -> list[Change]:
    """Write ``{"metrics": {"cpu": value}}`` to a namespace of ``host`` as the API does:
    commit, then publish (when ``sync`` is given)."""
    changes: list[Change] = []

    def write(conn: object) -> None:
        changes.clear()
        state = {"metrics": {"cpu": value}}
        state_store.put(conn, RULES, host, namespace, state, None, changes)  # type: ignore[arg-type]

    atomically(db, write, 5, operation="test")
    if sync is not None:
        sync.publish(changes)
    return changes


def put_aggregate(
    db: Database, sync: StateSync | None, uuid: str, metadata: dict[str, str]
) -> list[Change]:
    """Replace an aggregate's metadata, then publish."""
    changes: list[Change] = []

    def write(conn: object) -> None:
        changes.clear()
        host_attributes.put_aggregate_metadata(conn, uuid, metadata, changes)  # type: ignore[arg-type]

    atomically(db, write, 5, operation="test")
    if sync is not None:
        sync.publish(changes)
    return changes


def cpu(catalog: HostCatalog, host: str) -> float | None:
    """The ``cpu`` metric the catalog holds for ``host``."""
    return catalog.attributes(host).metrics.get("cpu")


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``check()`` held; AssertionError after ``timeout``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.01)
    return time.monotonic() - start


def live(catalog: HostCatalog, interval: float) -> Callable[[], bool]:
    """A check that refreshes the catalog and says whether it trusts its backend."""

    def check() -> bool:
        catalog.refresh(interval)
        return catalog.live

    return check


class Hub:
    """The 'server' of :class:`LoopbackSync`: who listens, and whether it is up."""

    def __init__(self) -> None:
        self.members: list[LoopbackSync] = []
        self.up = True


class LoopbackSync(ListeningSync):
    """An in-memory backend: what one member sends, every other listening member gets."""

    name = "loopback"

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self.hub = hub
        hub.members.append(self)

    def send(self, changes: Sequence[Change]) -> None:
        if not self.hub.up:
            raise ConnectionError("the hub is down")
        for member in self.hub.members:
            if member is not self and member.listening:
                member.deliver(changes)

    def listen(self, stop: threading.Event) -> None:
        if not self.hub.up:
            raise ConnectionError("the hub is down")
        self.joined()
        while not stop.wait(0.01):
            if not self.hub.up:
                raise ConnectionError("the hub went down")
