"""Host state in namespaces, stored (on SQLite, PostgreSQL and MariaDB): generations, merge
patches, limits, schemas, the operator's flags and the provider's generation, the change log."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import OperationalError

from berth.db import tables as t
from berth.db.engine import Database
from berth.placement import errors, providers
from berth.placement.write.retry import atomically
from berth.scheduler import host_attributes, state_store
from berth.scheduler.hoststate import HostCatalog
from berth.scheduler.namespaces import (
    StateConflict,
    StateInvalid,
    StateNotFound,
    StateRules,
    StateTooLarge,
)
from berth.scheduler.state_store import NamespaceState
from tests.scheduler.conftest import host_uuid, write_cloud
from tests.scheduler.helpers import RULES

H1, H2 = host_uuid(1), host_uuid(2)
NET_SCHEMA = {
    "type": "object",
    "properties": {"links": {"type": "array", "items": {"type": "object", "required": ["gbps"]}}},
}


def _write(db: Database, fn: Any, *args: Any) -> Any:
    return atomically(db, lambda conn: fn(conn, *args), 3, operation="test")


def _put(db: Database, ns: str, state: dict[str, Any], generation: int | None, **kw: Any) -> Any:
    rules = kw.get("rules", RULES)
    return _write(db, state_store.put, rules, kw.get("host", H1), ns, state, generation)


def _namespaces(db: Database, host: str = H1) -> dict[str, NamespaceState]:
    with db.read() as conn:
        return state_store.get_host(conn, host)


def _generation(db: Database, host: str = H1) -> int:
    with db.read() as conn:
        return providers.get_provider(conn, host).generation


def _log_rows(db: Database) -> list[tuple[str, str]]:
    log = t.scheduler_state_changes
    with db.read() as conn:
        rows = conn.execute(select(log.c.provider_uuid, log.c.namespace).order_by(log.c.id))
        return [(r.provider_uuid, r.namespace) for r in rows]


@pytest.fixture
def hosts(db: Database) -> Database:
    write_cloud(db, 2)
    return db


def test_first_write_creates_at_generation_1_then_each_write_moves_it(hosts: Database) -> None:
    made = _put(hosts, "compute", {"metrics": {"cpu": 1}}, 0)
    assert made.generation == 1 and made.state == {"metrics": {"cpu": 1}}
    again = _put(hosts, "compute", {"metrics": {"cpu": 2}}, 1)
    assert again.generation == 2
    stored = _namespaces(hosts)["compute"]
    assert (stored.generation, stored.state) == (2, {"metrics": {"cpu": 2}})
    assert stored.received_at == again.received_at
    assert _log_rows(hosts) == [(H1, "compute"), (H1, "compute")]


@pytest.mark.parametrize("sent", [0, 1, 3])
def test_a_stale_generation_is_refused_and_changes_nothing(hosts: Database, sent: int) -> None:
    _put(hosts, "net", {"a": 1}, 0)
    _put(hosts, "net", {"a": 2}, 1)
    with pytest.raises(StateConflict, match="at generation 2, not"):
        _put(hosts, "net", {"a": 3}, sent)
    assert _namespaces(hosts)["net"].state == {"a": 2}
    assert len(_log_rows(hosts)) == 2


def test_merge_patch_merges_and_removes(hosts: Database) -> None:
    _put(hosts, "net", {"links": {"eth0": {"gbps": 10, "up": True}}, "mtu": 1500}, 0)
    merge = {"links": {"eth0": {"up": None}, "eth1": {"gbps": 25}}, "mtu": None, "vlan": 7}
    patched = _write(hosts, state_store.patch, RULES, H1, "net", merge, 1)
    expected = {"links": {"eth0": {"gbps": 10}, "eth1": {"gbps": 25}}, "vlan": 7}
    assert (patched.generation, patched.state) == (2, expected)
    assert _namespaces(hosts)["net"].state == expected


def test_patch_of_an_empty_namespace_starts_from_nothing(hosts: Database) -> None:
    made = _write(hosts, state_store.patch, RULES, H1, "net", {"a": {"b": 1, "c": None}}, 0)
    assert (made.generation, made.state) == (1, {"a": {"b": 1}})


def test_too_large_is_refused_and_changes_nothing(hosts: Database) -> None:
    small = StateRules(64)
    _put(hosts, "net", {"a": "x"}, 0, rules=small)
    with pytest.raises(StateTooLarge, match="the limit is 64"):
        _put(hosts, "net", {"a": "x" * 100}, 1, rules=small)
    with pytest.raises(StateTooLarge):
        _write(hosts, state_store.patch, small, H1, "net", {"b": "y" * 60}, 1)
    assert _namespaces(hosts)["net"].state == {"a": "x"}


def test_a_schema_refusal_names_the_path(hosts: Database) -> None:
    rules = StateRules(65536, {"net": NET_SCHEMA})
    _put(hosts, "net", {"links": [{"gbps": 1}]}, 0, rules=rules)
    with pytest.raises(StateInvalid, match=r"at \$\.links\[1\]: 'gbps' is a required property"):
        _put(hosts, "net", {"links": [{"gbps": 1}, {"up": True}]}, 1, rules=rules)
    with pytest.raises(StateInvalid, match=r"at \$\.metrics\.cpu: 'high' is not of type 'number'"):
        _put(hosts, "compute", {"metrics": {"cpu": "high"}}, 0)
    with pytest.raises(StateInvalid, match="Additional properties are not allowed"):
        _put(hosts, "operator", {"disabled": True, "colour": "red"}, 0)
    assert set(_namespaces(hosts)) == {"net"}


def test_missing_things(hosts: Database) -> None:
    with pytest.raises(errors.NotFound, match="No resource provider"):
        _put(hosts, "net", {}, 0, host="12345678-1234-1234-1234-123456789012")
    with hosts.read() as conn, pytest.raises(StateNotFound):
        state_store.get_one(conn, H1, "net")
    with pytest.raises(StateNotFound):
        _write(hosts, state_store.delete_one, H1, "net")
    with pytest.raises(errors.InvalidInput, match="Bad namespace"):
        _put(hosts, "Net/1", {}, 0)


def test_delete_empties_the_namespace_and_a_new_write_starts_again(hosts: Database) -> None:
    _put(hosts, "net", {"a": 1}, 0)
    _write(hosts, state_store.delete_one, H1, "net")
    assert _namespaces(hosts) == {}
    assert _put(hosts, "net", {"a": 2}, 0).generation == 1
    assert _log_rows(hosts) == [(H1, "net")] * 3


def test_operator_flags_move_the_provider_generation_and_metrics_do_not(hosts: Database) -> None:
    start, other = _generation(hosts), _generation(hosts, H2)
    _put(hosts, "compute", {"metrics": {"cpu": 1}}, 0)
    _put(hosts, "operator", {"disabled_reason": "none yet"}, 0)  # disabled, zone unchanged
    assert _generation(hosts) == start
    _put(hosts, "operator", {"disabled": True}, 1)
    assert _generation(hosts) == start + 1
    _write(hosts, state_store.patch, RULES, H1, "operator", {"availability_zone": "az9"}, 2)
    assert _generation(hosts) == start + 2
    _write(hosts, state_store.delete_one, H1, "operator")
    assert _generation(hosts) == start + 3
    assert _generation(hosts, H2) == other


def test_the_1_0_put_writes_only_the_fields_it_names(hosts: Database) -> None:
    """No clobbering: a host pushing metrics leaves the operator's flags alone."""
    operator = {"disabled": True, "disabled_reason": "maintenance", "availability_zone": "az1"}
    _write(hosts, host_attributes.put_host, RULES, H1, operator)
    generation = _generation(hosts)
    attrs = _write(hosts, host_attributes.put_host, RULES, H1, {"metrics": {"cpu.percent": 7}})
    assert attrs.as_body() == {**operator, "metrics": {"cpu.percent": 7.0}}
    assert _generation(hosts) == generation  # metrics move nothing
    attrs = _write(hosts, host_attributes.put_host, RULES, H1, {"availability_zone": None})
    assert (attrs.disabled, attrs.availability_zone, attrs.metrics) == (
        True,
        None,
        {"cpu.percent": 7},
    )
    assert _generation(hosts) == generation + 1
    attrs = _write(hosts, host_attributes.put_host, RULES, H1, {"disabled": False})
    assert attrs.disabled is False and attrs.disabled_reason == "maintenance"
    assert set(_namespaces(hosts)) == {"operator", "compute"}


def test_state_goes_with_its_provider(hosts: Database) -> None:
    _put(hosts, "compute", {"metrics": {"cpu": 1}}, 0)
    _put(hosts, "net", {"a": 1}, 0)
    _put(hosts, "net", {"a": 1}, 0, host=H2)
    with hosts.write() as conn:
        providers.delete_provider(conn, H1)
    with hosts.read() as conn:
        assert state_store.read_hosts(conn, None).keys() == {H2}
    assert _log_rows(hosts)[-2:] == [(H1, "compute"), (H1, "net")]


def test_the_catalog_follows_the_log(hosts: Database) -> None:
    catalog = HostCatalog(hosts)
    _put(hosts, "compute", {"metrics": {"cpu": 1}}, 0)
    catalog.refresh(0.0)  # the first look reads everything
    assert catalog.attributes(H1).metrics == {"cpu": 1.0}
    _put(hosts, "compute", {"metrics": {"cpu": 2}}, 1)
    _write(hosts, host_attributes.put_host, RULES, H2, {"disabled": True})
    _write(
        hosts,
        host_attributes.put_aggregate_metadata,
        "aaaaaaaa-0000-0000-0000-00000000000a",
        {"k": "v"},
    )
    catalog.refresh(0.0)
    assert catalog.attributes(H1).metrics == {"cpu": 2.0}
    assert catalog.attributes(H2).disabled is True
    assert catalog.aggregates == {"aaaaaaaa-0000-0000-0000-00000000000a": {"k": "v"}}
    with hosts.write() as conn:
        providers.delete_provider(conn, H1)
    catalog.refresh(0.0)
    assert catalog.attributes(H1).namespaces == {}
    assert catalog.attributes(H2).received_at("operator") is not None


class _HeldReads:
    """The catalog's database: its first read waits for ``release``, then fails (the database
    was unreachable) or goes on; every read is counted."""

    def __init__(self, db: Database, fail: bool) -> None:
        self.db, self.fail = db, fail
        self.reading, self.release = threading.Event(), threading.Event()
        self.reads = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        self.reads += 1
        if self.reads == 1:
            self.reading.set()
            assert self.release.wait(30)
            if self.fail:
                raise OperationalError("SELECT", {}, Exception(2003, "Can't connect"))
        with self.db.read() as conn:
            yield conn


class _CountingLock:
    """The catalog's lock, counting the threads that came to take it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = threading.Semaphore(0)

    def __enter__(self) -> None:
        self.count.release()
        self.lock.acquire()

    def __exit__(self, *_: object) -> None:
        self.lock.release()

    def wait_for(self, threads: int) -> None:
        for _ in range(threads):
            assert self.count.acquire(timeout=30)


def _waiting_catalog(
    db: Database, fail: bool, interval: float
) -> tuple[HostCatalog, _HeldReads, list[Exception]]:
    """A catalog whose first refresh holds its read, with 3 more threads waiting behind it."""
    write_cloud(db, 2)
    catalog = HostCatalog(db)
    held = _HeldReads(db, fail)
    lock = _CountingLock()
    catalog.db, catalog.lock = held, lock  # type: ignore[assignment]
    errors: list[Exception] = []

    def refresh() -> None:
        try:
            catalog.refresh(interval)
        except OperationalError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=refresh)]
    threads[0].start()
    assert held.reading.wait(30)
    time.sleep(2 * interval)  # the others come later than ``interval`` after the first
    threads += [threading.Thread(target=refresh) for _ in range(3)]
    for thread in threads[1:]:
        thread.start()
    lock.wait_for(4)  # all four asked before the first read ends
    held.release.set()
    for thread in threads:
        thread.join(30)
    return catalog, held, errors


def test_threads_waiting_for_a_catalog_read_that_found_the_database_away_share_its_error(
    sqlite_db: Database,
) -> None:
    """They are answered 503 at once instead of each trying in turn (a request behind
    a few of them waited several connect timeouts during a database outage)."""
    _, held, errors = _waiting_catalog(sqlite_db, fail=True, interval=0.2)
    assert held.reads == 1
    assert len(errors) == 4 and len({id(e) for e in errors}) == 1


@pytest.mark.parametrize(("interval", "reads"), [(0.2, 1), (0.0, 4)])
def test_threads_waiting_for_a_catalog_read_take_it_unless_they_need_their_own(
    sqlite_db: Database, interval: float, reads: int
) -> None:
    """A read that ended after a thread asked is fresh enough for it (however long it took);
    with interval 0 (look again now) each thread reads after it asked."""
    catalog, held, errors = _waiting_catalog(sqlite_db, fail=False, interval=interval)
    assert not errors
    assert held.reads == reads
    assert catalog.attributes(H1) is not None


def test_concurrent_writers_of_one_generation_one_wins(hosts: Database) -> None:
    """Both read generation 1; the swap lets one through, the other is told to read again."""
    if hosts.dialect == "sqlite":
        pytest.skip("SQLite writers are serialised: both cannot be inside a write at once")
    _put(hosts, "net", {"n": 0}, 0)
    both_read = threading.Barrier(2)
    outcomes: list[str] = []

    def writer(n: int) -> None:
        def once(conn: Connection) -> None:
            def new(old: Any) -> dict[str, int]:
                both_read.wait(timeout=10)
                return {"n": n}

            state_store.change(conn, RULES, H1, "net", new, 1)

        try:
            atomically(hosts, once, 3, operation="test")
            outcomes.append("written")
        except StateConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=writer, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["conflict", "written"]
    assert _namespaces(hosts)["net"].generation == 2


def test_host_writes_share_no_row(hosts: Database) -> None:
    """Item 3 of issue 14: writes add log rows; no counter row is updated."""
    for i in range(3):
        _put(hosts, "compute", {"metrics": {"cpu": i}}, i)
        _put(hosts, "compute", {"metrics": {"cpu": i}}, i, host=H2)
    with hosts.read() as conn:
        assert (
            conn.execute(select(func.count()).select_from(t.scheduler_state_changes)).scalar() == 6
        )
    assert "scheduler_revisions" not in t.metadata.tables
