"""Every write route of host state publishes after its commit: a worker of another process
(a host catalog with its own Redis listener on the database's channel) sees each write
without reading the database (or, for a deleted provider, reads it at once)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import falcon.testing
import pytest

from berth.db.engine import Database
from berth.scheduler.hoststate import HostCatalog
from berth.sync.backends import open_sync
from tests.helpers import in_process_client
from tests.scheduler.conftest import host_uuid, write_cloud
from tests.sync.helpers import live, wait_for
from tests.sync.servers import SHARED, need_shared

H1 = host_uuid(1)
AGG = "aaaaaaaa-0000-0000-0000-00000000000a"
V13 = {"openstack-api-version": "scheduler 1.3"}


@pytest.fixture
def client(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    need_shared("redis")
    write_cloud(sqlite_db, 2)
    with in_process_client(
        sqlite_db, monkeypatch, host_state_sync="redis", host_state_sync_url=SHARED["redis"]
    ) as made:
        yield made


@pytest.fixture
def worker(sqlite_db: Database) -> Iterator[HostCatalog]:
    """Another process's catalog: it reads the logs only when told to."""
    catalog = HostCatalog(sqlite_db, open_sync("redis", SHARED["redis"], sqlite_db), 60.0)
    wait_for(live(catalog, 0.0), 10, "listening")
    yield catalog
    catalog.sync.close()


def _sees(worker: HostCatalog, check: Any, what: str) -> None:
    wait_for(lambda: (worker.refresh(1.0), check())[1], 5, what)


def test_each_write_route_publishes(client: falcon.testing.TestClient, worker: HostCatalog) -> None:
    polls = worker.counts["polls"]
    path = f"/scheduler/hosts/{H1}/state"
    body = {"generation": 0, "state": {"metrics": {"cpu_util": 10}}}
    assert client.simulate_put(f"{path}/compute", json=body, headers=V13).status_code == 200
    _sees(worker, lambda: worker.attributes(H1).metrics == {"cpu_util": 10.0}, "PUT")
    patch = {"generation": 1, "state": {"metrics": {"cpu_util": 20}, "rack": "r1"}}
    assert client.simulate_patch(f"{path}/compute", json=patch, headers=V13).status_code == 200
    _sees(worker, lambda: worker.attributes(H1).states["compute"].get("rack") == "r1", "PATCH")
    assert client.simulate_put(f"/scheduler/hosts/{H1}", json={"disabled": True}).status == "200 OK"
    _sees(worker, lambda: worker.attributes(H1).disabled, "1.0's PUT")
    assert client.simulate_delete(f"{path}/compute", headers=V13).status_code == 204
    _sees(worker, lambda: "compute" not in worker.attributes(H1).namespaces, "DELETE")
    metadata = {"metadata": {"availability_zone": "az3"}}
    done = client.simulate_put(f"/scheduler/aggregates/{AGG}/metadata", json=metadata)
    assert done.status_code == 200
    _sees(worker, lambda: worker.aggregates.get(AGG) == metadata["metadata"], "metadata")
    assert worker.counts["polls"] == polls  # every one of them came pushed


def test_deleting_a_provider_with_state_wakes_the_workers(
    client: falcon.testing.TestClient, worker: HostCatalog
) -> None:
    body = {"generation": 0, "state": {"metrics": {"cpu_util": 1}}}
    client.simulate_put(f"/scheduler/hosts/{H1}/state/compute", json=body, headers=V13)
    _sees(worker, lambda: worker.attributes(H1).namespaces != {}, "the state")
    assert client.simulate_delete(f"/resource_providers/{H1}").status_code == 204
    _sees(worker, lambda: worker.attributes(H1).namespaces == {}, "the provider gone")
