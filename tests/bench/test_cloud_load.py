"""Bulk loading into berth's schema (on every backend) and through the API."""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path

import orjson
from sqlalchemy import func, select

from berth.bench import cloud, cloud_api, cloud_db, invariants
from berth.bench.cloud import Topology
from berth.bench.transport import in_process, json_of
from berth.db import tables as t
from berth.db.engine import Database
from berth.sync.feed import ChangeFeed

TOPO = Topology(hosts=30, hosts_per_rack=10, numa_nodes=2, shared_storage_gb=1000, disk_gb=10,
                gpu_fraction=0.1, aggregates=3)  # fmt: skip


def _url(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


def _count(db: Database, table: object) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)  # type: ignore[arg-type]


def test_bulk_load_replaces_the_cloud_and_tells_running_readers(db: Database) -> None:
    feed = ChangeFeed(db)
    assert feed.poll() is None  # the first poll loads everything
    specs = cloud.build(TOPO)
    cloud_db.into_database(_url(db), specs)
    assert feed.poll() is None  # "reload everything" was logged
    cloud_db.into_database(_url(db), specs)  # again: replaced, not doubled
    assert _count(db, t.resource_providers) == len(specs) == 93
    assert _count(db, t.inventories) == 60 * 2 + 3  # NUMA VCPU+MEMORY, pools; none on roots
    assert _count(db, t.resource_provider_traits) == 60 + 3 + 3  # NUMA, sharing, GPU
    with db.read() as conn:
        parents = conn.execute(
            select(func.count()).where(t.resource_providers.c.parent_provider_id.is_not(None))
        ).scalar()
    assert parents == 60


def test_api_load_matches_bulk_load(tmp_path: Path) -> None:
    specs = cloud.build(TOPO)
    bulk_url = f"sqlite:///{tmp_path / 'bulk.sqlite'}"
    cloud_db.into_database(bulk_url, specs)
    api = in_process(f"sqlite:///{tmp_path / 'api.sqlite'}")
    cloud_api.through_api(api, specs, concurrency=4)
    bulk = in_process(bulk_url)
    query = "/allocation_candidates?resources=DISK_GB:5&resources1=VCPU:1&group_policy=none"
    answers = [json_of(*tr.request("GET", query), "candidates") for tr in (api, bulk)]
    # The same candidates (API-created providers got their ids in another order).
    found = [sorted(orjson.dumps(r).decode() for r in a["allocation_requests"]) for a in answers]
    assert found[0] == found[1]
    assert len(found[0]) == 60  # every NUMA node, with its rack's pool
    # Again, with allocations in place: the old cloud is emptied first, children before parents.
    body = {"allocations": answers[0]["allocation_requests"][0]["allocations"],
            "project_id": "p", "user_id": "u", "consumer_generation": None,
            "consumer_type": "INSTANCE"}  # fmt: skip
    status, _ = api.request("PUT", f"/allocations/{uuidlib.uuid4()}", body)
    assert status == 204
    cloud_api.through_api(api, specs[:10], concurrency=4)
    listing = json_of(*api.request("GET", "/resource_providers"), "list")
    assert sorted(p["uuid"] for p in listing["resource_providers"]) == sorted(
        s.uuid for s in specs[:10]
    )


def test_capacity_check_by_sql_and_by_api_agree(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    specs = cloud.build(Topology(hosts=3, vcpus=4, vcpu_ratio=1.0))
    specs[1].used["VCPU"] = 9  # over capacity: 4 x 1.0
    cloud_db.into_database(url, specs)
    by_sql = invariants.check(None, url)
    by_api = invariants.check(in_process(url), "")
    assert by_sql["over_capacity"] == by_api["over_capacity"] == 1
    assert by_sql["examples"][0]["provider"] == by_api["examples"][0]["provider"] == specs[1].uuid
