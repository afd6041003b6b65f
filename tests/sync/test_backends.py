"""Each sync backend against its real server on this machine (each test on a channel of its
own): what one process publishes another receives, and its host catalog applies it without
reading the database.  pg_notify runs on PostgreSQL, the others on SQLite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from berth import settings as settings_mod
from berth.db.engine import Database
from berth.scheduler.hoststate import HostCatalog
from berth.sync.backends import channel_for, open_sync
from berth.sync.backends.pg_notify import PAYLOAD_LIMIT
from berth.sync.changes import AGGREGATE, Change, host_change
from berth.sync.protocol import StateSync
from tests.conftest import fresh_database
from tests.scheduler.conftest import host_uuid, write_cloud
from tests.sync.helpers import cpu, live, put_aggregate, put_metric, wait_for
from tests.sync.servers import SHARED, channel, need_shared

H1 = host_uuid(1)
AGG = "aaaaaaaa-0000-0000-0000-00000000000a"
PUSHED = ["pg_notify", "redis", "nats", "memcached"]
SLOW = 60.0

OpenSync = Callable[[], StateSync]


@pytest.fixture(params=PUSHED)
def backend(request: pytest.FixtureRequest) -> str:
    need_shared(request.param)
    return str(request.param)


@pytest.fixture
def hosts(backend: str, tmp_path: Path) -> Iterator[Database]:
    db = fresh_database("postgresql" if backend == "pg_notify" else "sqlite", tmp_path)
    write_cloud(db, 2)
    yield db
    db.dispose()


@pytest.fixture
def open_backend(backend: str, hosts: Database) -> Iterator[OpenSync]:
    """Opens the backend over the shared server, every one on this test's channel."""
    made: list[StateSync] = []
    name = channel()

    def make() -> StateSync:
        made.append(open_sync(backend, SHARED.get(backend, ""), hosts, name))
        return made[-1]

    yield make
    for sync in made:
        sync.close()


def _listening(sync: StateSync) -> None:
    wait_for(lambda: sync.drain().connected, 10, f"{sync.name} listens")


def _received(sync: StateSync, count: int) -> list[Change]:
    got: list[Change] = []

    def enough() -> bool:
        got.extend(sync.drain().changes)
        return len(got) >= count

    wait_for(enough, 5, f"{count} changes through {sync.name}")
    return got


def test_what_one_process_publishes_another_receives(
    hosts: Database, open_backend: OpenSync
) -> None:
    writer, reader = open_backend(), open_backend()
    _listening(reader)
    sent = put_metric(hosts, None, H1, 1.5) + put_aggregate(hosts, None, AGG, {"k": "v"})
    sent.append(host_change(sent[0].id + 1, H1, "net", 0, sent[0].received_at, None))  # type: ignore[arg-type]
    writer.publish(sent)
    assert sorted(_received(reader, 3), key=lambda c: (c.kind, c.id)) == sorted(
        sent, key=lambda c: (c.kind, c.id)
    )


def test_the_catalog_applies_pushed_changes_without_reading_the_database(
    hosts: Database, open_backend: OpenSync
) -> None:
    writer = open_backend()
    catalog = HostCatalog(hosts, open_backend(), SLOW)
    wait_for(live(catalog, 0.0), 10, "the catalog trusts its backend")
    polls = catalog.counts["polls"]
    put_metric(hosts, writer, H1, 42)
    put_aggregate(hosts, writer, AGG, {"availability_zone": "az2"})
    wait_for(
        lambda: (catalog.refresh(1.0), cpu(catalog, H1) == 42 and AGG in catalog.aggregates)[1],
        5,
        "both changes pushed",
    )
    assert catalog.aggregates[AGG] == {"availability_zone": "az2"}
    assert catalog.counts["polls"] == polls and catalog.counts["pushed"] == 2


@pytest.mark.parametrize("backend", ["pg_notify"], indirect=True)
def test_a_state_too_large_for_a_notification_wakes_the_catalog(
    hosts: Database, open_backend: OpenSync
) -> None:
    """pg_notify sends the key alone; the catalog reads the host from the database."""
    writer = open_backend()
    catalog = HostCatalog(hosts, open_backend(), SLOW)
    wait_for(live(catalog, 0.0), 10, "live")
    changes = put_metric(hosts, None, H1, 1)
    big = host_change(changes[0].id, H1, "compute", 1, changes[0].received_at,  # type: ignore[arg-type]
                      {"metrics": {"cpu": 1}, "pad": "x" * PAYLOAD_LIMIT})  # fmt: skip
    writer.publish([big])
    wait_for(lambda: (catalog.refresh(1.0), cpu(catalog, H1) == 1)[1], 5, "woken")
    assert catalog.counts["pushed"] == 0 and catalog.counts["reread"] >= 1


def test_pg_notify_is_refused_on_other_databases(sqlite_db: Database) -> None:
    with pytest.raises(ValueError, match="needs a PostgreSQL database"):
        open_sync("pg_notify", "", sqlite_db)
    with pytest.raises(ValueError, match="needs a PostgreSQL database"):
        settings_mod.load(environ={"BERTH_HOST_STATE_SYNC": "pg_notify"}, database_url="")


def test_an_unknown_backend_is_refused(sqlite_db: Database) -> None:
    with pytest.raises(ValueError, match="must be one of db, pg_notify"):
        open_sync("zookeeper", "", sqlite_db)
    with pytest.raises(ValueError, match="must be one of db, pg_notify"):
        settings_mod.load(environ={"BERTH_HOST_STATE_SYNC": "zookeeper"})


def test_each_database_has_its_channel(tmp_path: Path) -> None:
    one, two = Database(f"sqlite:///{tmp_path}/a.db"), Database(f"sqlite:///{tmp_path}/b.db")
    pg = Database("postgresql://u@db1.example/berth")
    same = Database("postgresql://u@10.0.0.9:6432/berth")  # another route to it
    try:
        assert channel_for(one) != channel_for(two)
        assert channel_for(pg) == channel_for(same)
        assert channel_for(one).startswith("berth_hs_")
    finally:
        for db in (one, two, pg, same):
            db.dispose()


def test_nats_defaults_to_the_nats_url() -> None:
    loaded = settings_mod.load(
        environ={"BERTH_HOST_STATE_SYNC": "nats", "BERTH_NATS_URL": "nats://10.1.1.1:4222"}
    )
    assert loaded.host_state_sync_target == "nats://10.1.1.1:4222"
    assert (
        settings_mod.load(environ={"BERTH_HOST_STATE_SYNC": "redis"}).host_state_sync_target == ""
    )


def test_kinds_are_kept(hosts: Database, open_backend: OpenSync) -> None:
    """An aggregate's change and a host's never mix up on the way."""
    writer, reader = open_backend(), open_backend()
    _listening(reader)
    writer.publish(put_aggregate(hosts, None, AGG, {}))
    (got,) = _received(reader, 1)
    assert got.kind == AGGREGATE and got.body == {} and got.namespace is None
