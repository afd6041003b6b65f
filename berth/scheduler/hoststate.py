"""What the filters and weighers see of one host, and this process's cache of berth's state.

A host is a root resource provider (a compute node) of the candidates
index's universe.  :class:`HostCatalog` keeps the state berth stores itself
in memory: every host's namespaces (:mod:`berth.scheduler.state_store`, as
:class:`~berth.scheduler.host_attributes.HostAttributes`) and aggregate
metadata.  It catches up at most every ``scheduler_refresh_ms`` by following
two insert-only change logs, ``scheduler_state_changes`` and
``scheduler_aggregate_changes``, with :class:`berth.sync.feed.ChangeFeed`
(which also handles ids committed out of order), and re-reads only the hosts
and aggregates named since its last look; a full reload when a feed says so
(first look, or too long away).  A disabled flag or a metric may thus be up
to that old, which is harmless because the claim re-checks capacity, the
server-group rules and the operator's flags in the database.  What depends
only on a host's set of aggregates (zone, tenant isolation, metadata) is
computed once per distinct set (:class:`AggregateView`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select

from berth.candidates.engine import Candidate
from berth.candidates.model import Provider, Universe
from berth.db import tables as t
from berth.db.engine import Database
from berth.scheduler import host_attributes, staleness, state_store
from berth.scheduler.host_attributes import DEFAULT_HOST, HostAttributes
from berth.sync.feed import ChangeFeed, ChangeLog

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

    def __init__(self, db: Database) -> None:
        self.db = db
        self.lock = threading.Lock()
        self.state_feed = ChangeFeed(db, STATE_LOG)
        self.aggregate_feed = ChangeFeed(db, AGGREGATE_LOG)
        self.checked = float("-inf")
        self.hosts: dict[str, HostAttributes] = {}
        self.aggregates: dict[str, dict[str, str]] = {}
        self.instances: dict[int, int] = {}
        self._views: dict[frozenset[int], AggregateView] = {}

    def refresh(self, interval: float, count_instances: bool = False) -> None:
        """Catch up with writes when the last check is older than ``interval`` seconds."""
        now = time.monotonic()
        if now - self.checked < interval:
            return
        with self.lock:
            if now - self.checked < interval:
                return  # another thread refreshed while this one waited
            with self.db.read() as conn:
                self._catch_up(conn)
                if count_instances:
                    self.instances = _instance_counts(conn)
            self.checked = now

    def _catch_up(self, conn: Connection) -> None:
        """Re-read what the logs name since the last look (everything when they say so).

        Each feed's keys are read before the rows they name, in the same
        transaction: a write the log shows is in what is read after it.
        """
        hosts = self.state_feed.poll(conn)
        if hosts is None:
            self.hosts = {
                uuid: HostAttributes.of(namespaces)
                for uuid, namespaces in state_store.read_hosts(conn, None).items()
            }
        elif hosts:
            found = state_store.read_hosts(conn, hosts)
            for uuid in hosts:
                if uuid in found:
                    staleness.observe_applied(self.hosts.get(uuid), found[uuid])
                    self.hosts[uuid] = HostAttributes.of(found[uuid])
                else:  # no namespace left (or the provider went): the defaults
                    self.hosts.pop(uuid, None)
        aggregates = self.aggregate_feed.poll(conn)
        if aggregates is None:
            self.aggregates = host_attributes.aggregate_metadata(conn, None)
        elif aggregates:
            self.aggregates.update(host_attributes.aggregate_metadata(conn, list(aggregates)))
        if aggregates is None or aggregates:
            self._views = {}

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
