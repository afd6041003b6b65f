"""The host catalog with a sync backend (an in-memory one): what it applies, what it reads.

The writers' change ids are checked on SQLite, PostgreSQL and MariaDB (they
must be the log rows' ids); the catalog's logic on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from berth.db import tables as t
from berth.db.engine import Database
from berth.placement.write.retry import atomically
from berth.scheduler import host_attributes, state_store
from berth.scheduler.hoststate import HostCatalog
from berth.sync import protocol
from berth.sync.changes import AGGREGATE, HOST, Change, decode
from tests.scheduler.conftest import host_uuid, write_cloud
from tests.scheduler.helpers import RULES
from tests.sync.helpers import Hub, LoopbackSync, cpu, live, put_aggregate, put_metric, wait_for

H1, H2 = host_uuid(1), host_uuid(2)
AGG = "aaaaaaaa-0000-0000-0000-00000000000a"
SLOW = 60.0  # a check interval no test waits for: what is seen came pushed


@pytest.fixture
def hosts(db: Database) -> Database:
    write_cloud(db, 2)
    return db


@pytest.fixture
def small(sqlite_db: Database) -> Database:
    write_cloud(sqlite_db, 2)
    return sqlite_db


@pytest.fixture
def hub() -> Iterator[Hub]:
    made = Hub()
    yield made
    for member in made.members:
        member.close()


def _reader(db: Database, hub: Hub, check: float = SLOW) -> HostCatalog:
    catalog = HostCatalog(db, LoopbackSync(hub), check)
    wait_for(live(catalog, 0.0), 5, "the catalog trusts its backend")
    return catalog


def _log_ids(db: Database, table: object) -> list[int]:
    with db.read() as conn:
        return list(conn.execute(select(table.c.id).order_by(table.c.id)).scalars())  # type: ignore[attr-defined]


def test_changes_carry_their_log_row_ids_and_values(hosts: Database) -> None:
    """Every write notes one change per log row it inserted, with the row's id."""
    noted: list[Change] = []

    def write(conn: object) -> None:
        noted.clear()
        state_store.put(conn, RULES, H1, "net", {"a": 1}, 0, noted)  # type: ignore[arg-type]
        state_store.patch(conn, RULES, H1, "net", {"b": 2}, 1, noted)  # type: ignore[arg-type]
        fields = {"disabled": True, "metrics": {"cpu": 3}}
        host_attributes.put_host(conn, RULES, H2, fields, noted)  # type: ignore[arg-type]
        state_store.delete_one(conn, H1, "net", noted)  # type: ignore[arg-type]
        host_attributes.put_aggregate_metadata(conn, AGG, {"k": "v"}, noted)  # type: ignore[arg-type]

    atomically(hosts, write, 3, operation="test")
    hosts_log = [c.id for c in noted if c.kind == HOST]
    assert hosts_log == _log_ids(hosts, t.scheduler_state_changes)
    assert [c.id for c in noted if c.kind == AGGREGATE] == _log_ids(
        hosts, t.scheduler_aggregate_changes
    )
    assert [(c.key, c.namespace, c.generation, c.body) for c in noted] == [
        (H1, "net", 1, {"a": 1}),
        (H1, "net", 2, {"a": 1, "b": 2}),
        (H2, "operator", 1, {"disabled": True}),
        (H2, "compute", 1, {"metrics": {"cpu": 3}}),
        (H1, "net", 0, None),
        (AGG, None, 0, {"k": "v"}),
    ]
    assert [decode(c.encode()) for c in noted] == noted


def test_a_pushed_change_is_applied_without_reading_the_logs(small: Database, hub: Hub) -> None:
    writer, reader = LoopbackSync(hub), _reader(small, hub)
    polls, reread = reader.counts["polls"], reader.counts["reread"]
    put_metric(small, writer, H1, 7)
    put_aggregate(small, writer, AGG, {"availability_zone": "az9"})
    reader.refresh(1.0)
    assert cpu(reader, H1) == 7 and reader.aggregates[AGG] == {"availability_zone": "az9"}
    assert (reader.counts["polls"], reader.counts["reread"]) == (polls, reread)
    assert reader.counts["pushed"] == 2
    # The next read of the logs finds both rows delivered: nothing is read again.
    reader.refresh(0.0)
    assert reader.counts["polls"] == polls + 1 and reader.counts["reread"] == reread


def test_a_late_push_does_not_undo_newer_state(small: Database, hub: Hub) -> None:
    reader = _reader(small, hub)
    older = put_metric(small, None, H1, 1)
    newer = put_metric(small, None, H1, 2)
    assert isinstance(reader.sync, LoopbackSync)
    reader.sync.deliver(newer)
    reader.sync.deliver(older)  # its writer published late
    reader.refresh(1.0)
    assert cpu(reader, H1) == 2


def test_a_change_pushed_after_the_log_gave_it_changes_nothing(small: Database, hub: Hub) -> None:
    reader = _reader(small, hub)
    first = put_metric(small, None, H1, 1)
    put_metric(small, None, H1, 2)
    reader.refresh(0.0)  # read from the log: 2
    assert isinstance(reader.sync, LoopbackSync)
    reader.sync.deliver(first)
    reader.refresh(1.0)
    assert cpu(reader, H1) == 2


def test_a_lost_publish_is_caught_by_the_next_read_of_the_logs(small: Database, hub: Hub) -> None:
    reader = _reader(small, hub, check=0.2)
    put_metric(small, None, H1, 5)  # committed, never published
    wait_for(lambda: (reader.refresh(0.1), cpu(reader, H1) == 5)[1], 2, "the log's read")
    assert reader.counts["reread"] >= 1


def test_a_key_only_change_makes_the_catalog_read_the_logs_now(small: Database, hub: Hub) -> None:
    writer, reader = LoopbackSync(hub), _reader(small, hub)
    changes = put_metric(small, None, H1, 4)
    writer.publish([c.keys_only() for c in changes])
    wait_for(lambda: (reader.refresh(1.0), cpu(reader, H1) == 4)[1], 2, "the wake-up")
    assert reader.counts["pushed"] == 0


def test_a_backend_that_goes_down_leaves_the_catalog_polling(
    small: Database, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "PUBLISH_RETRY_S", 0.0)  # the writer tries at once again
    writer, reader = LoopbackSync(hub), _reader(small, hub)
    hub.up = False
    wait_for(lambda: not reader.sync.drain().connected, 2, "the listener notices")
    put_metric(small, writer, H1, 8)  # the publish fails: the log has it
    wait_for(lambda: (reader.refresh(0.05), cpu(reader, H1) == 8)[1], 2, "the fallback poll")
    assert not reader.live
    hub.up = True
    wait_for(live(reader, 0.05), 3, "trusted again after reading the logs")
    put_metric(small, writer, H1, 9)
    polls = reader.counts["polls"]
    wait_for(lambda: (reader.refresh(1.0), cpu(reader, H1) == 9)[1], 2, "pushed again")
    assert reader.counts["polls"] == polls


def test_the_writers_own_catalog_sees_its_write_at_once(small: Database, hub: Hub) -> None:
    """A process's publish is handed to its own catalog too (read your writes)."""
    sync = LoopbackSync(hub)
    catalog = HostCatalog(small, sync, SLOW)
    wait_for(live(catalog, 0.0), 5, "live")
    hub.up = False  # nothing goes through the 'server'
    put_metric(small, sync, H1, 3)
    catalog.refresh(1.0)
    assert cpu(catalog, H1) == 3


def test_an_inbox_nobody_drains_is_dropped_for_a_new_epoch(
    small: Database, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "MAX_INBOX", 3)
    writer, reader = LoopbackSync(hub), _reader(small, hub)
    polls = reader.counts["polls"]
    for value in range(5):
        put_metric(small, writer, H1, value)
    reader.refresh(1.0)  # a new epoch: the logs are read again
    assert cpu(reader, H1) == 4 and reader.counts["polls"] == polls + 1


def test_a_full_reload_ignores_pushes_it_already_holds(small: Database, hub: Hub) -> None:
    reader = HostCatalog(small, LoopbackSync(hub), SLOW)
    old = put_metric(small, None, H1, 1)
    put_metric(small, None, H1, 2)
    reader.refresh(0.0)  # the first look loads everything: 2
    assert isinstance(reader.sync, LoopbackSync)
    reader.sync.deliver(old)
    reader.refresh(0.0)
    assert cpu(reader, H1) == 2
