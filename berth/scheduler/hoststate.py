"""What the filters and weighers see of one host, and this process's cache of berth's state.

A host is a root resource provider (a compute node) of the candidates
index's universe.  :class:`HostCatalog` keeps the state berth stores itself
in memory: every host's namespaces (:mod:`berth.scheduler.state_store`, as
:class:`~berth.scheduler.host_attributes.HostAttributes`) and aggregate
metadata.  Two ways keep it current:

* the change logs, ``scheduler_state_changes`` and
  ``scheduler_aggregate_changes``, followed with
  :class:`berth.sync.feed.ChangeFeed` (which also handles ids committed out
  of order): the hosts and aggregates they name are read again, everything
  when a feed says so (first look, or too long away).  Read at most every
  ``scheduler_refresh_ms``; while a sync backend is listening and trusted,
  every ``host_state_sync_check_ms`` instead (the safety net);
* a sync backend (:mod:`berth.sync.backends`), chosen by ``host_state_sync``:
  the changes writers published after their commits arrive pushed, and the
  catalog applies what they carry at its next refresh, without reading the
  database.  A :class:`~berth.sync.ledger.Ledger` per log keeps pushes that
  arrive late from undoing newer state, and spares reading again what a push
  already gave.  A listener that (re)connects is trusted only after the next
  read of the logs; one that is down leaves the catalog polling the logs.

A disabled flag or a metric may thus be up to that old, which is harmless
because the claim re-checks capacity, the server-group rules and the
operator's flags in the database.  What depends only on a host's set of
aggregates (zone, tenant isolation, metadata) is computed once per distinct
set (:class:`AggregateView`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select

from berth.candidates.engine import Candidate
from berth.candidates.model import Provider, Universe
from berth.db import tables as t
from berth.db.clock import utcnow
from berth.db.engine import Database, unavailable
from berth.scheduler import host_attributes, staleness, state_store
from berth.scheduler.host_attributes import DEFAULT_HOST, HostAttributes
from berth.scheduler.state_store import NamespaceState
from berth.sync.changes import AGGREGATE, HOST, Change
from berth.sync.feed import ChangeFeed, ChangeLog
from berth.sync.ledger import Ledger
from berth.sync.protocol import NullSync, StateSync

# The logs the catalog follows: a host's namespaces, an aggregate's metadata.
STATE_LOG = ChangeLog(t.scheduler_state_changes, "provider_uuid", at="at")
AGGREGATE_LOG = ChangeLog(t.scheduler_aggregate_changes, "aggregate_uuid", at="at")

AZ_KEY = "availability_zone"
TENANT_PREFIX = "filter_tenant_id"


@dataclass(frozen=True)
class AggregateView:
    """What a set of aggregates says about its hosts."""

    availability_zone: str | None = None
    tenants: frozenset[str] = frozenset()  # empty: open to every project
    metadata: Mapping[str, frozenset[str]] = field(default_factory=dict)


def _view(metadatas: list[dict[str, str]]) -> AggregateView:
    zone = None
    tenants: set[str] = set()
    merged: dict[str, set[str]] = {}
    for metadata in metadatas:
        for key, value in metadata.items():
            merged.setdefault(key, set()).add(value)
            if key == AZ_KEY:
                zone = value if zone is None else min(zone, value)
            elif key.startswith(TENANT_PREFIX):
                tenants.update(v.strip() for v in value.split(",") if v.strip())
    frozen = {key: frozenset(values) for key, values in merged.items()}
    return AggregateView(zone, frozenset(tenants), frozen)


class HostCatalog:
    """Host attributes and aggregate metadata of one database, kept in memory."""

    def __init__(
        self, db: Database, sync: StateSync | None = None, check_interval: float = 0.0
    ) -> None:
        self.db = db
        self.sync: StateSync = sync if sync is not None else NullSync()
        # Seconds between reads of the logs while the sync backend is trusted.
        self.check_interval = check_interval
        self.lock = threading.Lock()
        self.state_feed = ChangeFeed(db, STATE_LOG)
        self.aggregate_feed = ChangeFeed(db, AGGREGATE_LOG)
        self.ledgers = {HOST: Ledger(self.state_feed), AGGREGATE: Ledger(self.aggregate_feed)}
        self.checked = float("-inf")
        # When the last read of the logs ended, and the last that found the database
        # unavailable (with its error): what a thread that waited for it takes.
        self.read_at = float("-inf")
        self.failed: tuple[float, Exception] | None = None
        self.live = False  # the backend is listening and the logs were read since it joined
        self.synced_epoch = 0
        self.seen_signal = -1
        # pushed: changes applied from the backend; polls: reads of the logs; reread: keys
        # read again from the database.
        self.counts: Counter[str] = Counter()
        self.hosts: dict[str, HostAttributes] = {}
        self.aggregates: dict[str, dict[str, str]] = {}
        self.instances: dict[int, int] = {}
        self._views: dict[frozenset[int], AggregateView] = {}

    def _due(self, interval: float) -> float:
        """Seconds between reads of the logs now (0 always reads: the caller waits)."""
        if interval <= 0 or not self.live:
            return interval
        return max(interval, self.check_interval)

    def refresh(self, interval: float, count_instances: bool = False) -> None:
        """Apply what the sync backend pushed; read the logs when the last read is older than
        ``interval`` seconds (the check interval while the backend is trusted).

        One thread reads at a time.  A thread that waited for another's read takes its
        outcome instead of reading in turn: the catalog it read (unless ``interval`` is 0:
        then only a read of its own will do), or the error that found the database
        unavailable.  Otherwise each waiter would wait out one more attempt, and a request
        behind a few of them would wait several connect timeouts.
        """
        now = time.monotonic()
        if now - self.checked < self._due(interval) and self.sync.signal == self.seen_signal:
            return
        with self.lock:
            if self.failed is not None and self.failed[0] >= now:
                raise self.failed[1]  # the read this thread waited for: a 503 it is too
            self.seen_signal = self.sync.signal
            delivery = self.sync.drain()
            self.live = delivery.connected and delivery.epoch == self.synced_epoch
            joined = delivery.connected and not self.live
            fresh = now - self.checked < self._due(interval) or (
                interval > 0 and self.read_at >= now
            )
            if fresh and not (joined or delivery.woke):
                self._apply(delivery.changes)
                return
            try:
                with self.db.read() as conn:
                    self._apply(delivery.changes)
                    self._catch_up(conn)
                    if count_instances:
                        self.instances = _instance_counts(conn)
            except Exception as exc:
                if unavailable(exc) is not None:
                    self.failed = (time.monotonic(), exc)
                raise
            self.checked, self.read_at = now, time.monotonic()
            if delivery.connected:
                # Pushed from this epoch on, committed before this read: nothing escapes.
                self.synced_epoch = delivery.epoch
                self.live = True

    def _apply(self, changes: Sequence[Change]) -> None:
        """Apply the pushed changes that are newer than what the catalog holds."""
        for change in changes:
            if not change.carried or not self.ledgers[change.kind].accept(
                change.version_key, change.id
            ):
                continue
            self.counts["pushed"] += 1
            if change.kind == HOST:
                self._put_namespace(change)
            else:
                self.aggregates[change.key] = dict(change.body or {})
                self._views = {}

    def _put_namespace(self, change: Change) -> None:
        old = self.hosts.get(change.key)
        namespaces = dict(old.namespaces) if old is not None else {}
        namespace = str(change.namespace)
        if change.body is None:
            namespaces.pop(namespace, None)
        else:
            at = change.received_at or utcnow()
            namespaces[namespace] = NamespaceState(change.generation, at, change.body)
            staleness.observe_applied(old, {namespace: namespaces[namespace]})
        if namespaces:
            self.hosts[change.key] = HostAttributes.of(namespaces)
        else:
            self.hosts.pop(change.key, None)

    def _catch_up(self, conn: Connection) -> None:
        """Re-read what the logs name since the last look and no push gave (everything when
        they say so).

        Each feed's keys are read before the rows they name, in the same
        transaction: a write the log shows is in what is read after it.
        """
        self.counts["polls"] += 1
        self._catch_up_hosts(conn)
        ledger = self.ledgers[AGGREGATE]
        rows = self.aggregate_feed.poll_rows(conn)
        if rows is None:
            self.aggregates = host_attributes.aggregate_metadata(conn, None)
            ledger.reloaded()
            self._views = {}
            return
        need = ledger.unseen(rows)
        if need:
            self.aggregates.update(host_attributes.aggregate_metadata(conn, list(need)))
            for uuid, top in need.items():
                ledger.mark((uuid, None), top)
            self.counts["reread"] += len(need)
            self._views = {}

    def _catch_up_hosts(self, conn: Connection) -> None:
        ledger = self.ledgers[HOST]
        rows = self.state_feed.poll_rows(conn)
        if rows is None:
            self.hosts = {
                uuid: HostAttributes.of(namespaces)
                for uuid, namespaces in state_store.read_hosts(conn, None).items()
            }
            ledger.reloaded()
            return
        need = ledger.unseen(rows)
        if not need:
            return
        found = state_store.read_hosts(conn, need)
        for uuid, top in need.items():
            old = self.hosts.get(uuid)
            names = set(old.namespaces) if old is not None else set()
            if uuid in found:
                staleness.observe_applied(old, found[uuid])
                self.hosts[uuid] = HostAttributes.of(found[uuid])
                names |= set(found[uuid])
            else:  # no namespace left (or the provider went): the defaults
                self.hosts.pop(uuid, None)
            for namespace in names:
                ledger.mark((uuid, namespace), top)
        self.counts["reread"] += len(need)

    def invalidate(self) -> None:
        """Check for writes at the next refresh (a claim found a host other than it looked)."""
        self.checked = float("-inf")

    def attributes(self, uuid: str) -> HostAttributes:
        """A host's attributes (the defaults when never set)."""
        return self.hosts.get(uuid, DEFAULT_HOST)

    def view(
        self, aggregates: frozenset[int], uuid_of: Callable[[int], str | None]
    ) -> AggregateView:
        """The combined view of a set of aggregate ids, computed once per set."""
        found = self._views.get(aggregates)
        if found is None:
            metadatas = []
            for agg in sorted(aggregates):
                uuid = uuid_of(agg)
                if uuid is not None and uuid in self.aggregates:
                    metadatas.append(self.aggregates[uuid])
            found = self._views[aggregates] = _view(metadatas)
        return found


def _instance_counts(conn: object) -> dict[int, int]:
    """Consumers per root provider (only read when the instances weigher is on)."""
    A, RP = t.allocations, t.resource_providers
    query = (
        select(RP.c.root_provider_id, func.count(func.distinct(A.c.consumer_id)))
        .select_from(A.join(RP, A.c.resource_provider_id == RP.c.id))
        .group_by(RP.c.root_provider_id)
    )
    return {int(root): int(n) for root, n in conn.execute(query)}  # type: ignore[attr-defined]


class HostState:
    """One candidate host: its root provider, its allocation and berth's attributes."""

    __slots__ = ("aggregates", "attrs", "candidate", "provider", "root", "tree")

    def __init__(
        self,
        provider: Provider,
        tree: list[Provider],
        candidate: Candidate,
        attrs: HostAttributes,
        aggregates: AggregateView,
    ) -> None:
        self.root = provider.id
        self.provider = provider
        self.tree = tree
        self.candidate = candidate
        self.attrs = attrs
        self.aggregates = aggregates

    @property
    def uuid(self) -> str:
        """The host's (root provider's) uuid."""
        return self.provider.uuid

    def free(self, rc: int, consumed: Mapping[tuple[int, int], int]) -> int:
        """Room left for class ``rc`` in the host's tree, after this request's picks."""
        room = 0
        for p in self.tree:
            inv = p.inventories.get(rc)
            if inv is not None:
                room += inv.capacity - inv.used - consumed.get((p.id, rc), 0)
        return room

    def allocation(
        self, universe: Universe, rc_names: Mapping[int, str]
    ) -> dict[str, dict[str, int]]:
        """The candidate as provider uuid -> class name -> amount."""
        out: dict[str, dict[str, int]] = {}
        for (pid, rc), amount in self.candidate.amounts.items():
            out.setdefault(universe.providers[pid].uuid, {})[rc_names[rc]] = amount
        return out
