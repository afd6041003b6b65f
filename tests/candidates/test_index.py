"""The in-memory index stays equal to a fresh load while writers change the database.

Writers are emulated with plain SQL plus ``changes.record`` of the touched
providers (the contract every berth writer follows); after each batch the
incrementally refreshed index must equal one loaded from scratch, derived
lookup structures included.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import fresh_database
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import OperationalError

from berth.bench.cloud import ProviderSpec
from berth.bench.cloud_db import write
from berth.candidates.index import MemoryIndex
from berth.candidates.model import Universe
from berth.db import tables as t
from berth.db.engine import Database
from berth.placement import changes, inventories, resource_classes, traits
from berth.placement.inventories import Inventory

from .worlds import wipe, worlds

RP = t.resource_providers
Draw = Callable[[st.SearchStrategy[Any]], Any]


def snapshot(u: Universe) -> dict[str, Any]:
    """Everything the engine reads, as plain comparable data."""
    providers = {
        p.id: (
            p.uuid,
            p.name,
            p.parent_id,
            p.root_id,
            sorted(
                (rc, (i.total, i.reserved, i.min_unit, i.max_unit, i.step_size, i.used))
                for rc, i in p.inventories.items()
            ),
            sorted(p.traits),
            sorted(p.aggregates),
        )
        for p in u.providers.values()
    }
    return {
        "providers": providers,
        "by_uuid": u.by_uuid,
        "members": u.members,
        "roots": u.roots,
        "nested": u.nested,
        "by_rc": u.by_rc,
        "by_trait": u.by_trait,
        "by_agg": u.by_agg,
        "sharing": u.sharing,
        "sharing_by_agg": u.sharing_by_agg,
        "rc_roots": (u.rc_roots.counts, u.rc_roots.sorted),
        "trait_roots": (u.trait_roots.counts, u.trait_roots.sorted),
        "agg_roots": (u.agg_roots.counts, u.agg_roots.sorted),
    }


@pytest.fixture(scope="module")
def index_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One SQLite database, refilled for every example."""
    db = fresh_database("sqlite", Path(tmp_path_factory.mktemp("index")))
    yield db
    db.dispose()


def _ids(conn: Connection) -> list[int]:
    return sorted(conn.execute(select(RP.c.id)).scalars())


def _subtree(conn: Connection, pid: int) -> list[int]:
    rows = conn.execute(select(RP.c.id, RP.c.parent_provider_id)).all()
    out, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in rows if parent in frontier]
        out += frontier
    return out


def _change_usage(conn: Connection, pid: int, draw: Draw) -> list[int]:
    conn.execute(
        insert(t.allocations).values(
            resource_provider_id=pid,
            consumer_id="c",
            resource_class_id=draw(st.integers(0, 2)),
            used=draw(st.integers(1, 3)),
        )
    )
    return [pid]


def _change_inventory(conn: Connection, pid: int, draw: Draw) -> list[int]:
    rc = draw(st.integers(0, 2))
    inv = t.inventories
    mine = (inv.c.resource_provider_id == pid, inv.c.resource_class_id == rc)
    conn.execute(delete(inv).where(*mine))
    if draw(st.booleans()):
        conn.execute(
            insert(inv).values(
                resource_provider_id=pid,
                resource_class_id=rc,
                total=draw(st.integers(1, 9)),
                reserved=0,
                min_unit=1,
                max_unit=9,
                step_size=1,
                allocation_ratio=1.0,
            )
        )
    return [pid]


def _change_memberships(conn: Connection, pid: int, draw: Draw) -> list[int]:
    rpt, rpa = t.resource_provider_traits, t.resource_provider_aggregates
    trait_ids = conn.execute(
        select(t.traits.c.id).where(t.traits.c.name.like("CUSTOM_T%"))
    ).scalars()
    sharing = conn.execute(
        select(t.traits.c.id).where(t.traits.c.name == "MISC_SHARES_VIA_AGGREGATE")
    ).scalar_one()
    choices = [*trait_ids, sharing]
    conn.execute(delete(rpt).where(rpt.c.resource_provider_id == pid))
    for trait in draw(st.sets(st.sampled_from(choices), max_size=2)):
        conn.execute(insert(rpt).values(resource_provider_id=pid, trait_id=trait))
    agg_ids = list(conn.execute(select(t.placement_aggregates.c.id)).scalars())
    conn.execute(delete(rpa).where(rpa.c.resource_provider_id == pid))
    chosen: set[int] = draw(st.sets(st.sampled_from(agg_ids), max_size=2)) if agg_ids else set()
    for agg in chosen:
        conn.execute(insert(rpa).values(resource_provider_id=pid, aggregate_id=agg))
    return [pid]


def _reparent(conn: Connection, pid: int, draw: Draw) -> list[int]:
    subtree = _subtree(conn, pid)
    others = [other for other in _ids(conn) if other not in subtree]
    parent = draw(st.sampled_from(others)) if others and draw(st.booleans()) else None
    root = pid
    if parent is not None:
        root = conn.execute(select(RP.c.root_provider_id).where(RP.c.id == parent)).scalar_one()
    conn.execute(update(RP).where(RP.c.id == pid).values(parent_provider_id=parent))
    conn.execute(update(RP).where(RP.c.id.in_(subtree)).values(root_provider_id=root))
    return subtree


def _delete_leaf(conn: Connection, pid: int, draw: Draw) -> list[int]:
    if conn.execute(select(RP.c.id).where(RP.c.parent_provider_id == pid)).first():
        return []
    for table in (t.inventories, t.allocations, t.resource_provider_traits):
        conn.execute(delete(table).where(table.c.resource_provider_id == pid))
    rpa = t.resource_provider_aggregates
    conn.execute(delete(rpa).where(rpa.c.resource_provider_id == pid))
    conn.execute(delete(RP).where(RP.c.id == pid))
    return [pid]


def _add_provider(conn: Connection, pid: int, draw: Draw) -> list[int]:
    n = draw(st.integers(100, 10**6))
    spec = ProviderSpec(uuid=f"20000000-0000-0000-0000-{n:012d}", name=f"new{n}")
    if conn.execute(select(RP.c.id).where(RP.c.uuid == spec.uuid)).first():
        return []
    spec.inventories = {"VCPU": (4, 0, 1, 4, 1, 1.0)}
    (new,) = write(conn, [spec], announce=False)
    if draw(st.booleans()):
        root = conn.execute(select(RP.c.root_provider_id).where(RP.c.id == pid)).scalar_one()
        conn.execute(
            update(RP).where(RP.c.id == new).values(parent_provider_id=pid, root_provider_id=root)
        )
    return [new]


OPERATIONS = [
    _change_usage,
    _change_inventory,
    _change_memberships,
    _reparent,
    _delete_leaf,
    _add_provider,
]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=worlds(), data=st.data())
def test_refreshed_index_equals_fresh_load(
    index_db: Database, specs: list[ProviderSpec], data: st.DataObject
) -> None:
    wipe(index_db)
    with index_db.write() as conn:
        write(conn, specs)
    index = MemoryIndex(index_db)
    index.refresh()
    for _ in range(data.draw(st.integers(1, 4))):
        with index_db.write() as conn:
            ids = _ids(conn)
            if not ids:
                break
            for _ in range(data.draw(st.integers(1, 3))):
                operation = data.draw(st.sampled_from(OPERATIONS))
                touched = operation(conn, data.draw(st.sampled_from(ids)), data.draw)
                changes.record(conn, touched)
                ids = _ids(conn)
                if not ids:
                    break
        index.refresh()
        fresh = MemoryIndex(index_db)
        fresh.refresh()
        assert snapshot(index.universe) == snapshot(fresh.universe)


def test_feed_everything_marker_reloads(index_db: Database) -> None:
    wipe(index_db)
    index = MemoryIndex(index_db)
    index.refresh()
    assert not index.universe.providers
    with index_db.write() as conn:
        write(conn, [ProviderSpec(uuid="30000000-0000-0000-0000-000000000001", name="x")])
    index.refresh()
    assert set(index.universe.by_uuid) == {"30000000-0000-0000-0000-000000000001"}


def _fail_once(index: MemoryIndex, method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next ``index.<method>`` meets a database that went away."""

    def down(*_args: Any) -> None:
        monkeypatch.undo()
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(index, method, down)


def test_refresh_failing_after_the_poll_keeps_what_it_read(
    index_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feed moved on, the re-read failed: the next refresh still reads those providers."""
    wipe(index_db)
    with index_db.write() as conn:
        write(
            conn,
            [
                ProviderSpec(uuid="30000000-0000-0000-0000-000000000002", name="a"),
                ProviderSpec(uuid="30000000-0000-0000-0000-000000000003", name="b"),
            ],
        )
    index = MemoryIndex(index_db)
    index.refresh()
    with index_db.write() as conn:
        first, second = _ids(conn)
        conn.execute(delete(RP).where(RP.c.id == second))
        changes.record(conn, [second])
    _fail_once(index, "_read_changes", monkeypatch)
    with pytest.raises(OperationalError):
        index.refresh()
    index.refresh()  # nothing new in the feed: the pending providers are read now
    fresh = MemoryIndex(index_db)
    fresh.refresh()
    assert snapshot(index.universe) == snapshot(fresh.universe)
    assert set(index.universe.providers) == {first}


def test_reload_failing_after_the_feed_started_is_asked_again(
    index_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    wipe(index_db)
    with index_db.write() as conn:
        write(conn, [ProviderSpec(uuid="30000000-0000-0000-0000-000000000004", name="a")])
    index = MemoryIndex(index_db)
    _fail_once(index, "reload", monkeypatch)
    with pytest.raises(OperationalError):
        index.refresh()  # the feed has its position; the load did not happen
    index.refresh()
    assert set(index.universe.by_uuid) == {"30000000-0000-0000-0000-000000000004"}


def _provider(n: int) -> ProviderSpec:
    return ProviderSpec(uuid=f"31000000-0000-0000-0000-{n:012d}", name=f"r{n}")


def test_a_refresh_reads_without_the_lock_and_threads_share_one(
    index_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a refresh waits for the database the index lock is free (selections go
    on); threads asking meanwhile share the next refresh, and each sees every write
    committed before it asked."""
    wipe(index_db)
    index = MemoryIndex(index_db)
    index.refresh()
    with index_db.write() as conn:
        write(conn, [_provider(1)])
    reading, release = threading.Event(), threading.Event()
    polls: list[int] = []
    real_poll = index.feed.poll

    def slow_poll(*args: Any) -> set[int] | None:
        polls.append(1)
        if len(polls) == 1:
            reading.set()
            assert release.wait(30)
        return real_poll(*args)

    monkeypatch.setattr(index.feed, "poll", slow_poll)
    first = threading.Thread(target=index.refresh)
    first.start()
    assert reading.wait(30)
    assert index.lock.acquire(timeout=5), "the refresh held the lock while reading"
    index.lock.release()
    assert index.refresh_if_idle() is False  # one is under way: no waiting
    with index_db.write() as conn:
        write(conn, [_provider(2)])  # committed after the first refresh polled
    seen: list[set[str]] = []
    waiters = [
        threading.Thread(target=lambda: (index.refresh(), seen.append(set(index.universe.by_uuid))))
        for _ in range(6)
    ]
    for w in waiters:
        w.start()
    release.set()
    for w in [first, *waiters]:
        w.join(30)
    assert len(seen) == 6
    assert all({_provider(1).uuid, _provider(2).uuid} <= s for s in seen)
    assert len(polls) == 2  # the six waiters shared the one refresh after the first


class _CountingTurns(threading.Condition):
    """The index's refresh turns, counting the waits for one."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


def test_threads_waiting_for_a_refresh_that_found_the_database_away_share_its_error(
    index_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They are answered 503 at once instead of each running a refresh in turn (each of
    which would wait out one more connection attempt during a database outage)."""
    wipe(index_db)
    index = MemoryIndex(index_db)
    index.refresh()
    turns = index._turns = _CountingTurns()
    reading, release = threading.Event(), threading.Event()
    polls: list[int] = []
    real_poll = index.feed.poll

    def poll_then_fail(*args: Any) -> set[int] | None:
        polls.append(1)
        if len(polls) == 1:
            reading.set()
            assert release.wait(30)
            raise OperationalError("SELECT", {}, Exception(2013, "Lost connection"))
        return real_poll(*args)

    monkeypatch.setattr(index.feed, "poll", poll_then_fail)
    errors: list[Exception] = []

    def refresh() -> None:
        try:
            index.refresh()
        except OperationalError as exc:
            errors.append(exc)

    first = threading.Thread(target=refresh)
    first.start()
    assert reading.wait(30)
    waiters = [threading.Thread(target=refresh) for _ in range(5)]
    for w in waiters:
        w.start()
    deadline = time.monotonic() + 30
    while turns.waits < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for w in [first, *waiters]:
        w.join(30)
    assert len(polls) == 1
    assert len(errors) == 6
    index.refresh()  # asked after the failure: a refresh of its own
    assert len(polls) == 2


def _generation(conn: Connection, spec: ProviderSpec) -> int:
    return int(conn.execute(select(RP.c.generation).where(RP.c.uuid == spec.uuid)).scalar_one())


def _set_traits(conn: Connection, spec: ProviderSpec, names: list[str]) -> None:
    traits.replace_provider_traits(conn, spec.uuid, names, _generation(conn, spec))


def _set_inventory(conn: Connection, spec: ProviderSpec, classes: list[str]) -> None:
    wanted = [Inventory(rc, 4) for rc in classes]
    inventories.replace_inventories(conn, spec.uuid, wanted, _generation(conn, spec))


def _provider_trait_names(index: MemoryIndex, uuid: str) -> list[str]:
    """A provider's traits as an answer names them (what ``render`` reads)."""
    u = index.universe
    return sorted(index.trait_names[tr] for tr in u.providers[u.by_uuid[uuid]].traits)


def test_a_trait_id_reused_after_a_delete_names_the_new_trait(index_db: Database) -> None:
    """SQLite gives a new trait the id of the highest one deleted: the index must not
    name it after the deleted trait (nothing tells the feed a trait was deleted)."""
    wipe(index_db)
    first, second = _provider(11), _provider(12)
    with index_db.write() as conn:
        write(conn, [first, second])
    index = MemoryIndex(index_db)
    index.refresh()
    with index_db.write() as conn:
        old, _ = traits.ensure_trait(conn, "CUSTOM_OLD")
        _set_traits(conn, first, ["CUSTOM_OLD"])
    index.refresh()
    assert _provider_trait_names(index, first.uuid) == ["CUSTOM_OLD"]
    assert index.trait_id("CUSTOM_OLD") == old.id  # a request looked it up by name
    with index_db.write() as conn:
        _set_traits(conn, first, [])
        traits.delete_trait(conn, "CUSTOM_OLD")
    with index_db.write() as conn:
        new, _ = traits.ensure_trait(conn, "CUSTOM_NEW")
        assert new.id == old.id, "SQLite did not reuse the id: the test proves nothing"
        _set_traits(conn, second, ["CUSTOM_NEW"])
    index.refresh()
    assert _provider_trait_names(index, second.uuid) == ["CUSTOM_NEW"]
    assert _provider_trait_names(index, first.uuid) == []
    assert index.trait_id("CUSTOM_OLD") is None
    assert index.trait_id("CUSTOM_NEW") == new.id


def test_a_class_id_reused_after_a_delete_names_the_new_class(index_db: Database) -> None:
    """Custom class ids are the highest in use plus one, so a deleted class's id comes
    back for the next one: a class delete makes every worker reload its names."""
    wipe(index_db)
    spec = _provider(13)
    with index_db.write() as conn:
        write(conn, [spec])
        old = resource_classes.create_class(conn, "CUSTOM_OLD")
        _set_inventory(conn, spec, ["CUSTOM_OLD"])
    index = MemoryIndex(index_db)
    index.refresh()
    assert index.rc_names[old.id] == "CUSTOM_OLD"
    with index_db.write() as conn:
        _set_inventory(conn, spec, [])
        resource_classes.delete_class(conn, "CUSTOM_OLD")
        new = resource_classes.create_class(conn, "CUSTOM_NEW")
        assert new.id == old.id, "the id was not reused: the test proves nothing"
        _set_inventory(conn, spec, ["CUSTOM_NEW"])
    index.refresh()
    assert index.rc_names[new.id] == "CUSTOM_NEW"
    assert index.class_names([new.id]) == {new.id: "CUSTOM_NEW"}
