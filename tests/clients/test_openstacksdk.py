"""openstacksdk's placement proxy against a running berth.

The SDK negotiates a microversion per resource type from berth's version
document (``GET /``), up to the maximum each SDK resource declares (1.20 for
providers, 1.6 for traits, 1.38 for allocations and usages, 1.34 for
allocation candidates), so these tests also check that negotiation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .helpers import custom, unique

openstack = pytest.importorskip("openstack", reason="openstacksdk is not installed")
from openstack import exceptions  # noqa: E402

# The SDK warns about its own future API changes; they say nothing about berth.
pytestmark = [
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    pytest.mark.slow,
]


@pytest.fixture(params=["admin_token", "none"])
def placement(request: pytest.FixtureRequest) -> Iterator[Any]:
    """An SDK placement proxy, with each way of skipping Keystone."""
    if request.param == "admin_token":
        url = request.getfixturevalue("berth_noauth2")
        auth = {"endpoint": url, "token": "admin"}
    else:
        url = request.getfixturevalue("berth_admin_token")
        auth = {"endpoint": url}
    conn = openstack.connection.Connection(
        auth_type=request.param, auth=auth, placement_endpoint_override=url
    )
    yield conn.placement
    conn.close()


def _provider(placement: Any, **attrs: Any) -> Any:
    return placement.create_resource_provider(name=unique("sdk"), **attrs)


def test_providers(placement: Any) -> None:
    """create (with a parent), get, find, list with filters, update, delete."""
    root = _provider(placement)
    assert root.generation == 0 and root.root_provider_id == root.id
    child = _provider(placement, parent_provider_id=root.id)
    assert child.parent_provider_id == root.id and child.root_provider_id == root.id

    assert placement.get_resource_provider(root.id).name == root.name
    assert placement.find_resource_provider(root.name).id == root.id
    assert [p.id for p in placement.resource_providers(name=root.name)] == [root.id]
    assert {p.id for p in placement.resource_providers(in_tree=child.id)} == {root.id, child.id}

    placement.create_resource_provider_inventory(root, "VCPU", total=16)
    assert root.id in {p.id for p in placement.resource_providers(resources="VCPU:10")}
    assert child.id not in {p.id for p in placement.resource_providers(resources="VCPU:1")}

    new_name = unique("sdk")
    updated = placement.update_resource_provider(root.id, name=new_name)
    assert updated.name == new_name
    assert placement.get_resource_provider(root.id).name == new_name

    with pytest.raises(exceptions.ConflictException):
        placement.delete_resource_provider(root.id)
    placement.delete_resource_provider(child.id)
    placement.delete_resource_provider(root.id)
    with pytest.raises(exceptions.NotFoundException):
        placement.get_resource_provider(root.id)
    placement.delete_resource_provider(root.id, ignore_missing=True)
    assert placement.find_resource_provider(new_name, ignore_missing=True) is None


def test_inventories(placement: Any) -> None:
    """create, get, list, update, delete one; replace and delete all."""
    rp = _provider(placement)
    inv = placement.create_resource_provider_inventory(
        rp, "VCPU", total=8, allocation_ratio=2.0, max_unit=4
    )
    assert (inv.total, inv.allocation_ratio, inv.max_unit) == (8, 2.0, 4)
    assert inv.resource_provider_generation == 1
    placement.create_resource_provider_inventory(rp, "MEMORY_MB", total=2048, step_size=256)

    got = placement.get_resource_provider_inventory("VCPU", resource_provider=rp)
    assert got.total == 8 and got.reserved == 0
    listed = {i.resource_class: i for i in placement.resource_provider_inventories(rp)}
    assert set(listed) == {"VCPU", "MEMORY_MB"} and listed["MEMORY_MB"].step_size == 256
    assert listed["VCPU"].resource_provider_generation == 2

    # The proxy sends resource_provider_generation=None unless it is given.
    updated = placement.update_resource_provider_inventory(
        got, resource_provider=rp, total=12, reserved=2, resource_provider_generation=2
    )
    assert (updated.total, updated.reserved) == (12, 2)

    with pytest.raises(exceptions.ConflictException):
        placement.update_resource_provider_inventory(
            "MEMORY_MB", resource_provider=rp, total=1, resource_provider_generation=2
        )

    placement.delete_resource_provider_inventory("MEMORY_MB", resource_provider=rp)
    assert [i.resource_class for i in placement.resource_provider_inventories(rp)] == ["VCPU"]
    with pytest.raises(exceptions.NotFoundException):
        placement.delete_resource_provider_inventory(
            "MEMORY_MB", resource_provider=rp, ignore_missing=False
        )

    current = placement.get_resource_provider(rp.id)
    before = current.generation
    replaced = placement.set_resource_provider_inventories(
        current,
        {"DISK_GB": {"total": 100}, "VCPU": {"total": 4}},
        resource_provider_generation=before,
    )
    assert replaced.generation == before + 1
    assert {i.resource_class for i in placement.resource_provider_inventories(rp)} == {
        "DISK_GB",
        "VCPU",
    }
    placement.delete_resource_provider_inventories(rp)
    assert list(placement.resource_provider_inventories(rp)) == []
    placement.delete_resource_provider(rp)


def test_traits(placement: Any) -> None:
    """create, get, list, delete traits; get, set, delete a provider's traits."""
    name = custom("sdk")
    assert placement.create_trait(name).name == name
    # GET /traits/{name} answers 204 without a body: the SDK keeps the name as id.
    assert placement.get_trait(name).id == name
    assert [t.name for t in placement.traits(name=f"in:{name}")] == [name]
    assert "HW_CPU_X86_AVX" in {t.name for t in placement.traits()}

    rp = _provider(placement)
    current = placement.get_resource_provider_trait(rp)
    assert current.traits == [] and current.resource_provider_generation == 0
    current.traits = [name, "HW_CPU_X86_SSE"]
    updated = placement.set_resource_provider_trait(current)
    assert sorted(updated.traits) == sorted([name, "HW_CPU_X86_SSE"])
    assert updated.resource_provider_generation == 1
    assert name in {t.name for t in placement.traits(associated=True)}

    with pytest.raises(exceptions.ConflictException):
        placement.delete_trait(name)
    placement.delete_resource_provider_trait(rp)
    assert placement.get_resource_provider_trait(rp).traits == []
    placement.delete_trait(name)
    with pytest.raises(exceptions.NotFoundException):
        placement.get_trait(name)
    placement.delete_resource_provider(rp)


def test_aggregates(placement: Any) -> None:
    """fetch and set a provider's aggregates (generation checked from 1.19)."""
    rp = _provider(placement)
    fetched = placement.fetch_resource_provider_aggregates(rp)
    assert fetched.aggregates == [] and fetched.generation == 0
    aggs = sorted(str(uuid.uuid4()) for _ in range(3))
    updated = placement.set_resource_provider_aggregates(fetched, *aggs)
    assert sorted(updated.aggregates) == aggs
    assert placement.get_resource_provider(rp.id).generation == 1
    assert {p.id for p in placement.resource_providers(member_of=aggs[0])} == {rp.id}

    stale = placement.get_resource_provider(rp.id)
    stale.generation = 0
    with pytest.raises(exceptions.ConflictException):
        placement.set_resource_provider_aggregates(stale, aggs[0])
    placement.set_resource_provider_aggregates(placement.get_resource_provider(rp.id))
    assert placement.fetch_resource_provider_aggregates(rp).aggregates == []
    placement.delete_resource_provider(rp)


def test_resource_classes(placement: Any) -> None:
    """create, get, list, delete custom resource classes."""
    name = custom("sdk")
    placement.create_resource_class(name=name)
    assert placement.get_resource_class(name).name == name
    names = {rc.name for rc in placement.resource_classes()}
    assert {name, "VCPU", "MEMORY_MB"} <= names
    with pytest.raises(exceptions.BadRequestException):
        placement.delete_resource_class("VCPU")
    placement.delete_resource_class(name)
    with pytest.raises(exceptions.NotFoundException):
        placement.get_resource_class(name)


def _host(placement: Any) -> Any:
    rp = _provider(placement)
    current = placement.get_resource_provider(rp.id)
    placement.set_resource_provider_inventories(
        current,
        {"VCPU": {"total": 8}, "MEMORY_MB": {"total": 4096}},
        resource_provider_generation=current.generation,
    )
    return rp


def test_allocations_and_usages(placement: Any) -> None:
    """update, get, delete allocations; provider allocations; usages by project."""
    rp = _host(placement)
    consumer, project, user = str(uuid.uuid4()), unique("proj"), unique("user")
    placement.update_allocation(
        consumer,
        allocations={rp.id: {"resources": {"VCPU": 2, "MEMORY_MB": 512}}},
        project_id=project,
        user_id=user,
        consumer_generation=None,
        consumer_type="INSTANCE",
    )
    got = placement.get_allocation(consumer)
    assert got.allocations[rp.id]["resources"] == {"VCPU": 2, "MEMORY_MB": 512}
    assert (got.project_id, got.user_id, got.consumer_type) == (project, user, "INSTANCE")
    assert got.consumer_generation == 1

    by_consumer = {a.id: a for a in placement.resource_provider_allocations(rp)}
    assert by_consumer[consumer].resources == {"VCPU": 2, "MEMORY_MB": 512}
    usages = placement.fetch_resource_provider_usages(rp).usages
    assert usages == {"VCPU": 2, "MEMORY_MB": 512}
    per_type = {u.consumer_type: u for u in placement.usages(project_id=project)}
    assert per_type["INSTANCE"].consumer_count == 1
    assert per_type["INSTANCE"].resources == {"VCPU": 2, "MEMORY_MB": 512}

    with pytest.raises(exceptions.ConflictException):
        placement.update_allocation(
            str(uuid.uuid4()),
            allocations={rp.id: {"resources": {"VCPU": 100}}},
            project_id=project,
            user_id=user,
            consumer_generation=None,
            consumer_type="INSTANCE",
        )
    placement.delete_allocation(consumer)
    assert placement.get_allocation(consumer).allocations == {}
    placement.delete_resource_provider(rp)


def test_create_allocations(placement: Any) -> None:
    """POST /allocations for two consumers at once, then release one."""
    rp = _host(placement)
    project, user = unique("proj"), unique("user")
    first, second = str(uuid.uuid4()), str(uuid.uuid4())

    def body(vcpu: int, generation: int | None) -> dict:
        allocations = {rp.id: {"resources": {"VCPU": vcpu}}} if vcpu else {}
        return {
            "allocations": allocations,
            "project_id": project,
            "user_id": user,
            "consumer_generation": generation,
            "consumer_type": "MIGRATION",
        }

    placement.create_allocations({first: body(1, None), second: body(3, None)})
    assert placement.fetch_resource_provider_usages(rp).usages["VCPU"] == 4
    placement.create_allocations({first: body(0, 1)})
    assert placement.fetch_resource_provider_usages(rp).usages["VCPU"] == 3
    with pytest.raises(exceptions.ConflictException):
        placement.create_allocations({second: body(2, 7)})
    placement.delete_allocation(second)
    placement.delete_resource_provider(rp)


def test_allocation_candidates(placement: Any) -> None:
    """allocation candidates with resources, required traits and limit."""
    rc, trait = custom("sdk"), custom("sdk")
    placement.create_resource_class(name=rc)
    placement.create_trait(trait)
    hosts = []
    for traits in ([trait], []):
        rp = _provider(placement)
        current = placement.get_resource_provider(rp.id)
        placement.set_resource_provider_inventories(
            current, {rc: {"total": 2}}, resource_provider_generation=current.generation
        )
        if traits:
            rpt = placement.get_resource_provider_trait(rp)
            rpt.traits = traits
            placement.set_resource_provider_trait(rpt)
        hosts.append(rp.id)

    found = list(placement.allocation_candidates(resources=f"{rc}:1"))
    assert {next(iter(c.allocations)) for c in found} == set(hosts)
    summary = found[0].provider_summaries[next(iter(found[0].allocations))]
    assert summary["resources"][rc] == {"capacity": 2, "used": 0}
    with_trait = list(placement.allocation_candidates(resources=f"{rc}:1", required=trait))
    assert [next(iter(c.allocations)) for c in with_trait] == [hosts[0]]
    assert with_trait[0].mappings == {"": [hosts[0]]}
    assert len(list(placement.allocation_candidates(resources=f"{rc}:1", limit=1))) == 1
    assert list(placement.allocation_candidates(resources=f"{rc}:3")) == []
    for rp_id in hosts:
        placement.delete_resource_provider(rp_id)
