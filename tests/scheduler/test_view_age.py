"""A worker's view may lag by ``scheduler_index_refresh_ms``: it never makes a request fail.

Rules the view relied on are judged again in the claim (test_staleness.py);
capacity the view has not seen yet (a host added, allocations freed) is
looked for again: a request that finds no host in a view that may lag is
selected once more from a fresh one before the answer is NoValidHost.
"""

from __future__ import annotations

import pytest

from berth.bench import cloud_db
from berth.bench.cloud import ProviderSpec
from berth.db.engine import Database
from berth.scheduler import NoValidHost, RequestSpec, select_destinations
from berth.scheduler import pipeline as pipeline_mod
from tests.scheduler.conftest import MakeServices, host_uuid, write_cloud

BIG = {"VCPU": 32, "MEMORY_MB": 65536}
AGES = {"default": {}, "long": {"index_refresh_ms": 600_000}}


def _spec(n: int) -> RequestSpec:
    return RequestSpec(
        resources={"VCPU": 1, "MEMORY_MB": 64},
        instance_uuids=[f"{n:08d}-0000-0000-0000-000000000001"],
    )


def _big(uuid: str) -> RequestSpec:
    return RequestSpec(resources=dict(BIG), instance_uuids=[uuid])


def _add_big_host(db: Database) -> str:
    uuid = host_uuid(99)
    spec = ProviderSpec(
        uuid=uuid,
        name="cn99",
        inventories={"VCPU": (64, 0, 1, 64, 1, 1.0), "MEMORY_MB": (131072, 0, 1, 131072, 1, 1.0)},
    )
    with db.write() as conn:
        cloud_db.write(conn, [spec])
    return uuid


@pytest.mark.parametrize("age", sorted(AGES))
def test_a_host_added_within_the_view_age_is_found(
    db: Database, make_services: MakeServices, age: str
) -> None:
    """Only a host added after the worker read its view can take the request: placed there."""
    write_cloud(db, 2)
    services = make_services(**AGES[age])
    select_destinations(services, _spec(1))  # the view is read
    big = _add_big_host(db)
    answer = select_destinations(services, _big("99999999-0000-0000-0000-000000000001"))
    assert answer.selections[0].host_uuid == big


def test_no_host_after_looking_again_is_no_valid_host(
    db: Database, make_services: MakeServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second look is made once, with a fresh view, and its verdict stands."""
    write_cloud(db, 2)
    services = make_services(index_refresh_ms=600_000)
    select_destinations(services, _spec(1))
    looks: list[int] = []
    real = pipeline_mod.look_again

    def counted(pipeline: pipeline_mod.Pipeline) -> None:
        looks.append(1)
        real(pipeline)

    monkeypatch.setattr("berth.scheduler.service.look_again", counted)
    with pytest.raises(NoValidHost):
        select_destinations(services, _big("99999999-0000-0000-0000-000000000002"))
    assert looks == [1]
