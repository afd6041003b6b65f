"""The in-memory provider index of one worker process, kept current by the change feed.

Loaded in full at first use; before each request :meth:`MemoryIndex.refresh`
polls :class:`~berth.sync.feed.ChangeFeed` and re-reads only the providers
that changed (or everything when the feed says so).  Any write acknowledged
by any worker before a request starts is therefore visible to it.

A refresh that fails half way (the database went away between the poll and
the re-read) forgets nothing: the providers the feed returned stay pending,
and a full reload that was asked for stays asked for, until a refresh
succeeds.  The request that met the failure is answered 503.

Names are resolved here too.  Standard classes and traits can be neither
renamed nor deleted, so they are answered from memory; custom names are
looked up in the database each time (they may have been created, deleted or,
for classes, renamed without any provider changing).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterable

import structlog
from sqlalchemy import Connection, select

from berth.candidates import bulk_reads
from berth.candidates.model import SHARING_TRAIT, Provider, Universe
from berth.db import tables as t
from berth.db.engine import Database
from berth.placement.catalog import CUSTOM_ID_START, STANDARD_TRAITS
from berth.sync.feed import ChangeFeed

log = structlog.get_logger("berth.candidates")

# Beyond this many changed providers one full reload is cheaper than re-reading each.
RELOAD_THRESHOLD = 20_000


class MemoryIndex:
    """Every provider of the database, in a :class:`Universe`, plus name maps."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.feed = ChangeFeed(db)
        self.lock = threading.RLock()
        self.universe = Universe(None)
        self.rc_names: dict[int, str] = {}
        self.rc_ids: dict[str, int] = {}
        self.trait_names: dict[int, str] = {}
        self.trait_ids: dict[str, int] = {}
        self.agg_ids: dict[str, int] = {}
        self._agg_uuids: dict[int, str] | None = None  # agg_ids inverted, on first use
        # Moves whenever the universe changes: results computed from it stay valid until then.
        self.version = 0
        self._capacity_memo: dict[tuple[int, int, int, int | None], bool] = {}
        self._capacity_memo_version = 0
        # What the feed returned that is not read yet: a full reload, or these providers.
        self._reload_pending = False
        self._pending: set[int] = set()

    def refresh(self) -> None:
        """Catch up with every committed write (call with ``lock`` held).

        The poll and the re-read of what it names share one read transaction
        (and the re-read is one statement): two statements when something
        changed, one when nothing did.
        """
        with self.db.read() as conn:
            changed = self.feed.poll(conn)
            if changed is None:
                self._reload_pending = True
            else:
                self._pending |= changed
            if len(self._pending) > RELOAD_THRESHOLD:
                self._reload_pending = True
            if self._pending and not self._reload_pending:
                self._reread(conn, self._pending)
                self._pending = set()
        if self._reload_pending:
            self.reload()
            self._reload_pending = False
            self._pending = set()

    def reload(self) -> None:
        """Read everything again."""
        started = time.monotonic()
        # Millions of small objects: the cyclic collector would only slow this down.
        collecting = gc.isenabled()
        gc.disable()
        try:
            with self.db.read() as conn:
                self._read_names(conn)
                providers = bulk_reads.read_providers(conn)
                self.agg_ids = bulk_reads.aggregate_uuids(conn)
                self._agg_uuids = None
            self.universe = Universe.build(self.trait_ids.get(SHARING_TRAIT), providers.values())
            self.version += 1
        finally:
            if collecting:
                gc.enable()
        # The index lives as long as the process: keep the collector off it.
        gc.freeze()
        log.info(
            "candidates index loaded",
            providers=len(self.universe.providers),
            seconds=round(time.monotonic() - started, 3),
        )

    def _read_names(self, conn: object) -> None:
        self.rc_names = bulk_reads.names(conn, t.resource_classes)  # type: ignore[arg-type]
        self.rc_ids = {name: rc for rc, name in self.rc_names.items()}
        self.trait_names = bulk_reads.names(conn, t.traits)  # type: ignore[arg-type]
        self.trait_ids = {name: trait for trait, name in self.trait_names.items()}

    def reread(self, ids: Iterable[int]) -> None:
        """Replace the given providers with their current state (or drop them)."""
        with self.db.read() as conn:
            self._reread(conn, ids)

    def _reread(self, conn: Connection, ids: Iterable[int]) -> None:
        ids = sorted(ids)
        fresh = bulk_reads.read_changed(conn, ids)
        new_aggs = {a for p in fresh.values() for a in p.aggregates} - self._agg_inverse().keys()
        if new_aggs:
            self.agg_ids.update(bulk_reads.aggregate_uuids(conn, new_aggs))
            self._agg_uuids = None
        new_traits = {tr for p in fresh.values() for tr in p.traits} - self.trait_names.keys()
        if new_traits:
            self._read_names(conn)
        universe = self.universe
        self.version += 1
        for pid in ids:
            universe.remove(pid)
        for pid in ids:
            if pid in fresh:
                universe.add(fresh[pid])

    # -- names ---------------------------------------------------------------------------

    def rc_id(self, name: str) -> int | None:
        """Id of resource class ``name`` (custom ones checked in the database)."""
        if not name.startswith("CUSTOM_"):
            return self.rc_ids.get(name)
        with self.db.read() as conn:
            found = conn.execute(
                select(t.resource_classes.c.id).where(t.resource_classes.c.name == name)
            ).scalar()
        return int(found) if found is not None else None

    def trait_id(self, name: str) -> int | None:
        """Id of trait ``name`` (custom ones checked in the database)."""
        if name in STANDARD_TRAITS and name in self.trait_ids:
            return self.trait_ids[name]
        with self.db.read() as conn:
            found = conn.execute(select(t.traits.c.id).where(t.traits.c.name == name)).scalar()
        if found is None:
            return None
        self.trait_ids[name] = int(found)
        self.trait_names[int(found)] = name
        return int(found)

    def class_names(self, ids: Iterable[int]) -> dict[int, str]:
        """id -> current name for the given classes (custom names re-read)."""
        wanted = set(ids)
        custom = {rc for rc in wanted if rc >= CUSTOM_ID_START}
        out = {rc: self.rc_names[rc] for rc in wanted - custom if rc in self.rc_names}
        if custom:
            with self.db.read() as conn:
                rows = conn.execute(
                    select(t.resource_classes.c.id, t.resource_classes.c.name).where(
                        t.resource_classes.c.id.in_(sorted(custom))
                    )
                )
                out.update(dict(rows.all()))
        return out

    def agg_id(self, uuid: str) -> int | None:
        """Id of aggregate ``uuid`` if some provider is (or was) in it."""
        return self.agg_ids.get(uuid)

    def agg_uuid(self, agg: int) -> str | None:
        """Uuid of aggregate id ``agg``."""
        return self._agg_inverse().get(agg)

    def _agg_inverse(self) -> dict[int, str]:
        """``agg_ids`` inverted, once per change of it."""
        inverse = self._agg_uuids
        if inverse is None:
            inverse = self._agg_uuids = {i: u for u, i in self.agg_ids.items()}
        return inverse

    def tree_root(self, uuid: str) -> int | None:
        """Root of the tree holding provider ``uuid``."""
        pid = self.universe.by_uuid.get(uuid)
        return self.universe.providers[pid].root_id if pid is not None else None

    def any_root_with(self, required: frozenset[int], forbidden: frozenset[int]) -> bool:
        """Whether a root has every ``required`` trait and no ``forbidden`` one."""
        u = self.universe
        roots = min((u.trait_roots.roots(tr) for tr in required), key=len, default=u.roots)
        return any(_root_ok(u.providers[r], required, forbidden) for r in roots)

    def any_in_aggregates(self, member_of: list[frozenset[int]]) -> bool:
        """Whether some provider is in (one of) each aggregate set."""
        by_agg = self.universe.by_agg
        found: set[int] | None = None
        for any_of in member_of:
            members: set[int] = set().union(*(by_agg.get(a, ()) for a in any_of))
            found = members if found is None else found & members
            if not found:
                return False
        return bool(found)

    def any_capacity(self, rc: int, amount: int, tree_root: int | None) -> bool:
        """Whether some provider (of tree ``tree_root``) has room for ``amount`` of ``rc``.

        Remembered until the index changes: a filling cloud would otherwise
        make every request walk past the same full providers.
        """
        key = (self.version, rc, amount, tree_root)
        known = self._capacity_memo.get(key)
        if known is None:
            if len(self._capacity_memo) > 4096 or self._capacity_memo_version != self.version:
                self._capacity_memo = {}
                self._capacity_memo_version = self.version
            known = self._capacity_memo[key] = self._any_capacity(rc, amount, tree_root)
        return known

    def _any_capacity(self, rc: int, amount: int, tree_root: int | None) -> bool:
        u = self.universe
        pids: Iterable[int] = u.by_rc.get(rc, ())
        if tree_root is not None:
            pids = u.members.get(tree_root, ())
        for pid in pids:
            inv = u.providers[pid].inventories.get(rc)
            if inv is not None and inv.fits(amount):
                return True
        return False


def _root_ok(p: Provider, required: frozenset[int], forbidden: frozenset[int]) -> bool:
    return p.parent_id is None and required <= p.traits and p.traits.isdisjoint(forbidden)
