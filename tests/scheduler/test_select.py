"""select_destinations end to end on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest

from berth.db.engine import Database
from berth.placement.write import replace
from berth.placement.write.replace import ConsumerAllocations
from berth.scheduler import NoValidHost, RequestSpec, ServerGroupSpec, select_destinations
from berth.scheduler.claims import InstanceExists
from tests.scheduler.conftest import MakeServices, consumers_of, host_uuid, usage, write_cloud
from tests.scheduler.helpers import RULES

FLAVOR = {"VCPU": 2, "MEMORY_MB": 2048, "DISK_GB": 10}
GROUP = "99999999-0000-0000-0000-000000000001"


def _spec(**kwargs: object) -> RequestSpec:
    return RequestSpec(**{"resources": dict(FLAVOR), "project_id": "p", "user_id": "u", **kwargs})  # type: ignore[arg-type]


def test_pack_first_and_spread(db: Database, make_services: MakeServices) -> None:
    write_cloud(db, 3)
    pack = select_destinations(make_services(weighers="ram=-1,cpu=-1"), _spec(num_instances=3))
    assert {s.host_uuid for s in pack.selections} == {host_uuid(1)}
    assert usage(db)[host_uuid(1)] == {"VCPU": 6, "MEMORY_MB": 6144, "DISK_GB": 30}
    spread = select_destinations(make_services(weighers="ram=1,cpu=1"), _spec(num_instances=2))
    assert {s.host_uuid for s in spread.selections} == {host_uuid(2), host_uuid(3)}
    # Every answer is in the database, with the allocation it names.
    held = consumers_of(db)
    for s in pack.selections + spread.selections:
        assert held[s.instance_uuid] == s.host_uuid
        assert s.allocation == {s.host_uuid: FLAVOR}
        assert s.host_uuid not in {a.host_uuid for a in s.alternates}


def test_anti_affinity_and_max_server_per_host(db: Database, make_services: MakeServices) -> None:
    write_cloud(db, 3)
    services = make_services(weighers="ram=-1")
    group = ServerGroupSpec(GROUP, "anti-affinity")
    first = select_destinations(services, _spec(num_instances=3, server_group=group))
    assert len({s.host_uuid for s in first.selections}) == 3
    with pytest.raises(NoValidHost) as caught:
        select_destinations(services, _spec(server_group=ServerGroupSpec(GROUP)))
    assert "3 anti-affinity: host already holds group members" in caught.value.message
    two = ServerGroupSpec("99999999-0000-0000-0000-000000000002", "anti-affinity", 2)
    answer = select_destinations(services, _spec(num_instances=3, server_group=two))
    hosts = [s.host_uuid for s in answer.selections]
    assert max(hosts.count(h) for h in hosts) == 2


def test_affinity_keeps_the_group_together(db: Database, make_services: MakeServices) -> None:
    write_cloud(db, 3)
    services = make_services(weighers="ram=1")  # spread would scatter them without the group
    group = ServerGroupSpec(GROUP, "affinity")
    first = select_destinations(services, _spec(num_instances=2, server_group=group))
    (home,) = {s.host_uuid for s in first.selections}
    later = select_destinations(services, _spec(server_group=ServerGroupSpec(GROUP)))
    assert later.selections[0].host_uuid == home
    # 8 VCPU per host: a third and fourth 2-VCPU member fit, a fifth does not.
    select_destinations(services, _spec(server_group=ServerGroupSpec(GROUP)))
    with pytest.raises(NoValidHost, match="affinity: the group is on another host"):
        select_destinations(services, _spec(server_group=ServerGroupSpec(GROUP)))


def test_dry_run_claims_nothing_and_explains(db: Database, make_services: MakeServices) -> None:
    write_cloud(db, 4, traits={1: {"CUSTOM_GPU"}})
    answer = select_destinations(make_services(), _spec(num_instances=2, dry_run=True))
    assert not answer.claimed and len(answer.selections) == 2
    assert usage(db) == {}
    assert answer.explanation is not None
    assert answer.explanation.summary() == "4 of 4 hosts"


def test_explanation_names_each_stage(db: Database, make_services: MakeServices) -> None:
    write_cloud(db, 10, traits={i: {"CUSTOM_GPU"} for i in (1, 2, 3)})
    services = make_services()
    with pytest.raises(NoValidHost) as caught:
        select_destinations(services, _spec(resources={"VCPU": 9}, required_traits={"CUSTOM_GPU"}))
    e = caught.value.explanation
    assert e is not None
    assert e.summary() == "0 of 10 hosts: 7 lacked CUSTOM_GPU, 3 lacked VCPU"
    assert e.report()[0] == {
        "stage": "candidates",
        "hosts_in": 10,
        "hosts_out": 0,
        "removed": {"lacked CUSTOM_GPU": 7, "lacked VCPU": 3},
    }


def test_all_or_nothing_rolls_back_claims(
    db: Database, make_services: MakeServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_cloud(db, 2)
    services = make_services(alternates=1)
    select_destinations(services, _spec(dry_run=True))  # loads this worker's index
    # From now on the scheduler's view goes stale: host 2 fills up behind its back.
    from berth.candidates.index import MemoryIndex

    monkeypatch.setattr(MemoryIndex, "refresh", lambda self: None)
    monkeypatch.setattr(MemoryIndex, "refresh_if_idle", lambda self: True)
    filler = ConsumerAllocations(
        "f" * 8 + "-0000-0000-0000-000000000000", {host_uuid(2): {"VCPU": 8}}, "p", "u"
    )
    replace.write(db, [filler], check_generation=False, attempts=3)
    before = usage(db)
    spec = _spec(num_instances=2, server_group=ServerGroupSpec(GROUP, "anti-affinity"))
    with pytest.raises(NoValidHost, match="nothing was claimed"):
        select_destinations(services, spec)
    assert usage(db) == before
    assert not set(spec.instance_uuids) & set(consumers_of(db))


def test_without_all_or_nothing_places_what_fits(db: Database, make_services: MakeServices) -> None:
    write_cloud(db, 2)
    spec = _spec(
        num_instances=3, all_or_nothing=False, server_group=ServerGroupSpec(GROUP, "anti-affinity")
    )
    answer = select_destinations(make_services(), spec)
    assert len(answer.selections) == 2 and answer.failed == [spec.instance_uuids[2]]
    assert set(consumers_of(db)) == {s.instance_uuid for s in answer.selections}


def test_an_instance_is_claimed_once(db: Database, make_services: MakeServices) -> None:
    write_cloud(db, 2)
    services = make_services()
    spec = _spec()
    select_destinations(services, spec)
    with pytest.raises(InstanceExists):
        select_destinations(services, _spec(instance_uuids=spec.instance_uuids))


def test_hints(db: Database, make_services: MakeServices) -> None:
    write_cloud(db, 3)
    services = make_services(weighers="ram=1")
    first = select_destinations(services, _spec())
    home = first.selections[0].host_uuid
    mine = first.selections[0].instance_uuid
    same = select_destinations(services, _spec(same_host=[mine]))
    assert same.selections[0].host_uuid == home
    other = select_destinations(services, _spec(different_host=[mine], num_instances=2))
    assert home not in {s.host_uuid for s in other.selections}
    # Names and uuids both work.
    with pytest.raises(NoValidHost, match="3 ignored by the request"):
        select_destinations(services, _spec(ignore_hosts=["cn1", host_uuid(2), "cn3"]))


def test_partition_falls_back_to_other_workers_hosts(
    db: Database, make_services: MakeServices
) -> None:
    write_cloud(db, 4)
    services = make_services(
        partitioning="modulo", worker_count=2, worker_index=0, weighers="ram=-1"
    )
    own = select_destinations(services, _spec(num_instances=4))
    # Provider ids 1..4: worker 0 of 2 owns 2 and 4, and packs onto the first of them.
    assert {s.host_uuid for s in own.selections} == {host_uuid(2)}
    big = _spec(resources={"VCPU": 8}, num_instances=3, all_or_nothing=False)
    answer = select_destinations(services, big)
    assert [s.host_uuid for s in answer.selections] == [host_uuid(4), host_uuid(1), host_uuid(3)]


def test_strict_partitions_stop_at_the_workers_own_hosts(
    db: Database, make_services: MakeServices
) -> None:
    """``scheduler_partition_fallback=false``: placement-bench's strict partitions."""
    write_cloud(db, 4)
    services = make_services(
        partitioning="modulo",
        worker_count=2,
        worker_index=0,
        weighers="ram=-1",
        partition_fallback=False,
    )
    big = _spec(resources={"VCPU": 8}, num_instances=3, all_or_nothing=False)
    answer = select_destinations(services, big)
    assert [s.host_uuid for s in answer.selections] == [host_uuid(2), host_uuid(4)]
    assert len(answer.failed) == 1
    with pytest.raises(NoValidHost):
        select_destinations(services, _spec(resources={"VCPU": 8}))


def test_random_start_spreads_the_scan(db: Database, make_services: MakeServices) -> None:
    write_cloud(db, 20)
    # Pack-first within a window of 2 hosts: with a random start the windows differ.
    services = make_services(scan_limit=2, scan_random_start=True, weighers="ram=-1", alternates=0)
    hosts = {
        select_destinations(services, _spec(dry_run=True)).selections[0].host_uuid
        for _ in range(30)
    }
    assert len(hosts) > 3
    fixed = make_services(scan_limit=2, weighers="ram=-1", alternates=0)
    assert {
        select_destinations(fixed, _spec(dry_run=True)).selections[0].host_uuid for _ in range(5)
    } == {host_uuid(1)}


def test_server_group_policy_must_match(db: Database, make_services: MakeServices) -> None:
    from berth.placement import errors

    write_cloud(db, 2)
    services = make_services()
    select_destinations(services, _spec(server_group=ServerGroupSpec(GROUP, "anti-affinity")))
    with pytest.raises(errors.Conflict, match="another policy"):
        select_destinations(services, _spec(server_group=ServerGroupSpec(GROUP, "affinity")))
    with pytest.raises(errors.NotFound):
        other = "99999999-0000-0000-0000-0000000000aa"
        select_destinations(services, _spec(server_group=ServerGroupSpec(other)))
    dry = _spec(server_group=ServerGroupSpec("99999999-0000-0000-0000-0000000000bb", "affinity"))
    dry.dry_run = True
    assert select_destinations(services, dry).selections
    with pytest.raises(errors.NotFound):  # the dry run created nothing
        select_destinations(services, _spec(server_group=ServerGroupSpec(dry.server_group.uuid)))  # type: ignore[union-attr]


def test_host_attributes_and_aggregate_metadata(db: Database, make_services: MakeServices) -> None:
    from berth.placement.write.retry import atomically
    from berth.scheduler import host_attributes

    agg_a, agg_b = "aaaaaaaa-0000-0000-0000-000000000001", "aaaaaaaa-0000-0000-0000-000000000002"
    write_cloud(db, 4, aggregates={1: {agg_a}, 2: {agg_a}, 3: {agg_b}})

    def put(fn: object, *args: object) -> None:
        atomically(db, lambda conn: fn(conn, *args), 3, operation="host_attributes")  # type: ignore[operator]

    put(host_attributes.put_aggregate_metadata, agg_a, {"filter_tenant_id": "gold", "ssd": "true"})
    put(host_attributes.put_aggregate_metadata, agg_b, {"ssd": "true"})
    for i, cpu in ((1, 50.0), (2, 50.0), (3, 95.0), (4, 10.0)):
        put(host_attributes.put_host, RULES, host_uuid(i), {"metrics": {"cpu.percent": cpu}})
    services = make_services(metric_limits="cpu.percent<=90")
    ssd = {"aggregate_instance_extra_specs:ssd": "true"}
    gold = select_destinations(services, _spec(project_id="gold", extra_specs=ssd, dry_run=True))
    assert gold.selections[0].host_uuid in {host_uuid(1), host_uuid(2)}
    with pytest.raises(NoValidHost) as caught:
        select_destinations(services, _spec(project_id="tin", extra_specs=ssd))
    assert caught.value.explanation is not None
    assert caught.value.explanation.summary() == (
        "0 of 4 hosts: 2 isolated to other projects, 1 aggregate metadata ssd is not true, "
        "1 metric cpu.percent<=90 not met"
    )


def test_instances_weigher_spreads_by_count(db: Database, make_services: MakeServices) -> None:
    write_cloud(db, 3)
    select_destinations(make_services(weighers="ram=-1"), _spec(num_instances=2))  # both on cn1
    services = make_services(weighers="instances=1.0,ram=-0.01")
    answer = select_destinations(services, _spec(num_instances=2))
    assert {s.host_uuid for s in answer.selections} == {host_uuid(2), host_uuid(3)}
