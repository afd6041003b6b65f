"""The in-memory provider index of one worker process, kept current by the change feed.

Loaded in full at first use; :meth:`MemoryIndex.refresh` polls
:class:`~berth.sync.feed.ChangeFeed` and re-reads only the providers that
changed (or everything when the feed says so).  A request that calls it
first sees every write acknowledged by any worker before it started.

A refresh reads the database *without* holding :attr:`MemoryIndex.lock`;
only putting what it read in place takes the lock, so selections and
searches of other threads go on while it waits for the database.  One
refresh runs at a time: threads that ask meanwhile wait for the next one
(it starts after they asked, so it sees what they must see) and share it,
and :meth:`MemoryIndex.refresh_if_idle` does not wait at all.

A refresh that fails half way (the database went away between the poll and
the re-read) forgets nothing: the providers the feed returned stay pending,
and a full reload that was asked for stays asked for, until a refresh
succeeds.  The request that met the failure is answered 503, and so are the
threads that were waiting for a refresh when the database was found
unavailable: they take that error rather than trying in turn, each waiting
out one more attempt.

Names are resolved here too.  Standard classes and traits can be neither
renamed nor deleted, so they are answered from memory; custom names are
looked up in the database each time (they may have been created, deleted or,
for classes, renamed without any provider changing).  The names of the traits
a provider holds are read with the provider, in the same statement: an id can
name another trait than it did (a trait no provider holds is deleted without
the feed hearing of it, and SQLite gives its id to the next trait created),
and a provider cannot hold a trait that is deleted.  A class rename or delete
makes every worker reload everything (the feed's "everything" row).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from sqlalchemy import Connection, select

from berth.candidates import bulk_reads
from berth.candidates.model import SHARING_TRAIT, Provider, Universe
from berth.db import tables as t
from berth.db.engine import Database, unavailable
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
        # Refreshes: one at a time; numbered so a caller can wait for one that began after it.
        self._turns = threading.Condition()
        self._started = 0
        self._finished = 0
        self._running = False
        # The last refresh that found the database unavailable: when, and its error.
        self._failed: tuple[float, Exception] | None = None

    def refresh(self) -> None:
        """Catch up with every write committed before this call.

        Call *without* holding :attr:`lock` (a refresh in another thread needs
        it to finish).  Joins a refresh that starts after this call, or runs one;
        raises the error of one that found the database unavailable meanwhile.
        """
        asked = time.monotonic()
        with self._turns:
            wanted = self._started + 1
            while self._finished < wanted:
                if self._failed is not None and self._failed[0] >= asked:
                    raise self._failed[1]
                if not self._running:
                    break
                self._turns.wait()
            else:
                return
            turn = self._begin()
        self._run(turn)

    def refresh_if_idle(self) -> bool:
        """Run a refresh unless one is running already (then return False at once).

        Before the first load has finished there is nothing to go on: wait for it.
        """
        with self._turns:
            if self._running and self._finished == 0:
                turn = 0
            elif self._running:
                return False
            else:
                turn = self._begin()
        if turn:
            self._run(turn)
        else:
            self.refresh()
        return True

    def _begin(self) -> int:
        """Take the turn (call with ``_turns`` held)."""
        self._running = True
        self._started += 1
        return self._started

    def _run(self, turn: int) -> None:
        done = False
        failed: tuple[float, Exception] | None = None
        try:
            self._catch_up()
            done = True
        except Exception as exc:
            if unavailable(exc) is not None:
                failed = (time.monotonic(), exc)
            raise
        finally:
            with self._turns:
                self._running = False
                if done:
                    self._finished = turn
                elif failed is not None:
                    self._failed = failed
                self._turns.notify_all()

    def _catch_up(self) -> None:
        """Poll the feed and read what it names in one read transaction (two statements
        when something changed, one when nothing did); then put it in place under ``lock``."""
        fresh: _Changes | None = None
        with self.db.read() as conn:
            changed = self.feed.poll(conn)
            if changed is None:
                self._reload_pending = True
            else:
                self._pending |= changed
            if len(self._pending) > RELOAD_THRESHOLD:
                self._reload_pending = True
            if self._pending and not self._reload_pending:
                fresh = self._read_changes(conn, self._pending)
        if fresh is not None:
            self._apply(fresh)
            self._pending = set()
        if self._reload_pending:
            self.reload()
            self._reload_pending = False
            self._pending = set()

    def reload(self) -> None:
        """Read everything again (the database outside ``lock``, the swap under it)."""
        started = time.monotonic()
        # Millions of small objects: the cyclic collector would only slow this down.
        collecting = gc.isenabled()
        gc.disable()
        try:
            with self.db.read() as conn:
                names = _Names.read(conn)
                providers = bulk_reads.read_providers(conn)
                agg_ids = bulk_reads.aggregate_uuids(conn)
            universe = Universe.build(names.trait_ids.get(SHARING_TRAIT), providers.values())
            with self.lock:
                names.install(self)
                self.agg_ids = agg_ids
                self._agg_uuids = None
                self.universe = universe
                self.version += 1
        finally:
            if collecting:
                gc.enable()
        # The index lives as long as the process: keep the collector off it.
        gc.freeze()
        log.info(
            "candidates index loaded",
            providers=len(universe.providers),
            seconds=round(time.monotonic() - started, 3),
        )

    def reread(self, ids: Iterable[int]) -> None:
        """Replace the given providers with their current state (or drop them)."""
        with self.db.read() as conn:
            fresh = self._read_changes(conn, ids)
        self._apply(fresh)

    def _read_changes(self, conn: Connection, ids: Iterable[int]) -> _Changes:
        """The providers' current state, their traits' names and the aggregate ids new to
        us (no lock held)."""
        ordered = sorted(ids)
        changed = bulk_reads.read_changed(conn, ordered)
        providers = changed.providers
        new_aggs = {a for p in providers.values() for a in p.aggregates} - set(
            self.agg_ids.values()
        )
        agg_ids = bulk_reads.aggregate_uuids(conn, new_aggs) if new_aggs else {}
        return _Changes(ordered, providers, agg_ids, changed.trait_names)

    def _apply(self, fresh: _Changes) -> None:
        """Put what :meth:`_read_changes` read in place."""
        with self.lock:
            if fresh.agg_ids:
                self.agg_ids.update(fresh.agg_ids)
                self._agg_uuids = None
            self._name_traits(fresh.trait_names)
            universe = self.universe
            self.version += 1
            for pid in fresh.ids:
                universe.remove(pid)
            for pid in fresh.ids:
                if pid in fresh.providers:
                    universe.add(fresh.providers[pid])

    def _name_traits(self, names: dict[int, str]) -> None:
        """Name trait ids as the providers holding them were read (call under ``lock``).

        An id may have changed names: a trait no provider holds can be deleted
        (the feed hears nothing of it) and SQLite gives its id to the next trait.
        """
        for trait, name in names.items():
            old = self.trait_names.get(trait)
            if old == name:
                continue
            if old is not None and self.trait_ids.get(old) == trait:
                del self.trait_ids[old]
            self.trait_names[trait] = name
            self.trait_ids[name] = trait

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
        # Not remembered: the trait may be deleted, its id given to another, meanwhile.
        return int(found) if found is not None else None

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
        """Uuid of aggregate id ``agg`` (``agg_ids`` inverted once per change of it)."""
        inverse = self._agg_uuids
        if inverse is None:
            inverse = self._agg_uuids = {i: u for u, i in self.agg_ids.items()}
        return inverse.get(agg)

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


@dataclass
class _Changes:
    """Providers read again (absent: deleted), their traits' names, the aggregate ids new
    to us."""

    ids: list[int]
    providers: dict[int, Provider]
    agg_ids: dict[str, int]
    trait_names: dict[int, str]


class _Names:
    """Resource class and trait names as read, before they are put in place."""

    def __init__(self, rc_names: dict[int, str], trait_names: dict[int, str]) -> None:
        self.rc_names = rc_names
        self.trait_names = trait_names
        self.trait_ids = {name: trait for trait, name in trait_names.items()}

    @classmethod
    def read(cls, conn: Connection) -> _Names:
        """Every class and trait name."""
        return cls(bulk_reads.names(conn, t.resource_classes), bulk_reads.names(conn, t.traits))

    def install(self, index: MemoryIndex) -> None:
        """Put the names in ``index`` (under its lock)."""
        index.rc_names = self.rc_names
        index.rc_ids = {name: rc for rc, name in self.rc_names.items()}
        index.trait_names = self.trait_names
        index.trait_ids = self.trait_ids


def _root_ok(p: Provider, required: frozenset[int], forbidden: frozenset[int]) -> bool:
    return p.parent_id is None and required <= p.traits and p.traits.isdisjoint(forbidden)
