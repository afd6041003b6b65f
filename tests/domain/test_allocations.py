"""The atomic allocation write, its checks and the reshaper, on every backend."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

import pytest
from sqlalchemy import func, select, update

from berth.db import tables as t
from berth.db.engine import Database
from berth.placement import consumers, errors, reshaper
from berth.placement.inventories import Inventory
from berth.placement.write import generations, replace
from berth.placement.write.capacity import InvalidAllocation, InventoryInUse
from berth.placement.write.replace import ConsumerAllocations
from berth.placement.write.retry import atomically
from tests.helpers import add_provider

PROJECT, USER = "project-a", "user-a"


def put(
    db: Database,
    consumer: str,
    resources: dict[str, dict[str, int]],
    generation: int | None = None,
    check: bool = True,
    **kw: Any,
) -> None:
    """Write one consumer's allocations as PUT would."""
    request = ConsumerAllocations(consumer, resources, PROJECT, USER, generation, **kw)
    replace.write(db, [request], check_generation=check, attempts=3)


def usage(db: Database, rp: str) -> dict[str, int]:
    """Used amounts per class on provider ``rp``."""
    A, RP, RC = t.allocations, t.resource_providers, t.resource_classes
    with db.read() as conn:
        rows = conn.execute(
            select(RC.c.name, func.sum(A.c.used))
            .select_from(
                A.join(RP, A.c.resource_provider_id == RP.c.id).join(
                    RC, A.c.resource_class_id == RC.c.id
                )
            )
            .where(RP.c.uuid == rp)
            .group_by(RC.c.name)
        )
        return {name: int(used) for name, used in rows}


def generation(db: Database, rp: str) -> int:
    """The provider's generation."""
    RP = t.resource_providers
    with db.read() as conn:
        return int(conn.execute(select(RP.c.generation).where(RP.c.uuid == rp)).scalar_one())


def consumer_generation(db: Database, consumer: str) -> int | None:
    """The consumer's generation, None when it has no row."""
    with db.read() as conn:
        row = consumers.find_consumer(conn, consumer)
    return row.generation if row else None


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def test_write_bumps_provider_and_consumer_generations(db: Database) -> None:
    rp = add_provider(db, {"VCPU": {"total": 8}, "DISK_GB": {"total": 100}})
    c = new_uuid()
    put(db, c, {rp: {"VCPU": 2, "DISK_GB": 10}})
    assert usage(db, rp) == {"VCPU": 2, "DISK_GB": 10}
    assert generation(db, rp) == 1
    assert consumer_generation(db, c) == 1
    put(db, c, {rp: {"VCPU": 3}}, generation=1)
    assert usage(db, rp) == {"VCPU": 3}  # replaced, not added
    assert (generation(db, rp), consumer_generation(db, c)) == (2, 2)


REFUSED = [
    # (inventory, requested, message fragment)
    ({"total": 4}, 5, "would exceed the capacity"),
    ({"total": 4, "reserved": 2}, 3, "would exceed the capacity"),
    ({"total": 4, "allocation_ratio": 2.0}, 9, "would exceed the capacity"),
    ({"total": 100, "min_unit": 10}, 5, "would violate inventory constraints"),
    ({"total": 100, "max_unit": 10}, 11, "would violate inventory constraints"),
    ({"total": 100, "step_size": 4}, 6, "would violate inventory constraints"),
]


@pytest.mark.parametrize(("inventory", "amount", "message"), REFUSED)
def test_refused_write_changes_nothing(
    db: Database, inventory: dict[str, Any], amount: int, message: str
) -> None:
    rp = add_provider(db, {"VCPU": inventory})
    c = new_uuid()
    with pytest.raises(InvalidAllocation, match=message):
        put(db, c, {rp: {"VCPU": amount}})
    assert usage(db, rp) == {}
    assert generation(db, rp) == 0
    assert consumer_generation(db, c) is None


ACCEPTED = [
    ({"total": 4, "allocation_ratio": 2.0}, 8),
    ({"total": 4, "reserved": 1}, 3),
    ({"total": 100, "step_size": 4, "min_unit": 4}, 8),
]


@pytest.mark.parametrize(("inventory", "amount"), ACCEPTED)
def test_accepted_at_the_limits(db: Database, inventory: dict[str, Any], amount: int) -> None:
    rp = add_provider(db, {"VCPU": inventory})
    put(db, new_uuid(), {rp: {"VCPU": amount}})
    assert usage(db, rp) == {"VCPU": amount}


def test_several_consumers_are_checked_together(db: Database) -> None:
    rp = add_provider(db, {"VCPU": {"total": 2}})
    requests = [ConsumerAllocations(new_uuid(), {rp: {"VCPU": 1}}, PROJECT, USER) for _ in "abc"]
    with pytest.raises(InvalidAllocation, match="exceed the capacity"):
        replace.write(db, requests, check_generation=True, attempts=1)
    assert usage(db, rp) == {}


def test_missing_inventory_and_unknown_class_and_provider(db: Database) -> None:
    rp = add_provider(db, {"VCPU": {"total": 2}})
    with pytest.raises(
        InvalidAllocation, match=f"Inventory for 'DISK_GB' on resource provider '{rp}'"
    ):
        put(db, new_uuid(), {rp: {"DISK_GB": 1}})
    with pytest.raises(errors.NotFound, match="No such resource class CUSTOM_NOPE"):
        put(db, new_uuid(), {rp: {"CUSTOM_NOPE": 1}})
    missing = new_uuid()
    with pytest.raises(errors.InvalidInput, match=f"'{missing}' that does not exist"):
        put(db, new_uuid(), {missing: {"VCPU": 1}})


GENERATIONS = [
    # (existing consumer?, generation sent, expected message or None)
    (False, None, None),
    (False, 3, "expected null but got 3"),
    (True, None, "expected 1 but got None"),
    (True, 7, "expected 1 but got 7"),
    (True, 1, None),
]


@pytest.mark.parametrize(("exists", "sent", "message"), GENERATIONS)
def test_consumer_generation_is_the_clients_guard(
    db: Database, exists: bool, sent: int | None, message: str | None
) -> None:
    rp = add_provider(db, {"VCPU": {"total": 8}})
    c = new_uuid()
    if exists:
        put(db, c, {rp: {"VCPU": 1}})
    if message is None:
        put(db, c, {rp: {"VCPU": 2}}, generation=sent)
        assert usage(db, rp) == {"VCPU": 2}
    else:
        with pytest.raises(errors.StaleGeneration, match=message):
            put(db, c, {rp: {"VCPU": 2}}, generation=sent)
        assert usage(db, rp) == ({"VCPU": 1} if exists else {})


def test_generation_not_checked_before_1_28(db: Database) -> None:
    rp = add_provider(db, {"VCPU": {"total": 8}})
    c = new_uuid()
    put(db, c, {rp: {"VCPU": 1}}, check=False)
    put(db, c, {rp: {"VCPU": 2}}, generation=42, check=False)
    assert consumer_generation(db, c) == 2


def test_emptying_deletes_consumer_and_bumps_its_providers(db: Database) -> None:
    rp1 = add_provider(db, {"VCPU": {"total": 8}})
    rp2 = add_provider(db, {"VCPU": {"total": 8}})
    c = new_uuid()
    put(db, c, {rp1: {"VCPU": 1}, rp2: {"VCPU": 1}})
    put(db, c, {}, generation=1)
    assert usage(db, rp1) == usage(db, rp2) == {}
    assert (generation(db, rp1), generation(db, rp2)) == (2, 2)
    assert consumer_generation(db, c) is None


def test_empty_write_for_new_consumer_keeps_a_generation_zero_consumer(db: Database) -> None:
    c = new_uuid()
    put(db, c, {})
    assert consumer_generation(db, c) == 0
    with pytest.raises(errors.StaleGeneration, match="expected 0 but got None"):
        put(db, c, {})


def test_moving_a_consumer_bumps_only_the_new_provider(db: Database) -> None:
    old, new = add_provider(db, {"VCPU": {"total": 8}}), add_provider(db, {"VCPU": {"total": 8}})
    c = new_uuid()
    put(db, c, {old: {"VCPU": 4}})
    put(db, c, {new: {"VCPU": 4}}, generation=1)
    assert (usage(db, old), usage(db, new)) == ({}, {"VCPU": 4})
    assert (generation(db, old), generation(db, new)) == (1, 1)


def test_over_capacity_provider_accepts_a_shrinking_write(db: Database) -> None:
    rp = add_provider(db, {"VCPU": {"total": 8}})
    c = new_uuid()
    put(db, c, {rp: {"VCPU": 6}})
    with db.write() as conn:
        conn.execute(update(t.inventories).values(total=4))
    put(db, c, {rp: {"VCPU": 5}}, generation=1)
    with pytest.raises(InvalidAllocation, match="exceed the capacity"):
        put(db, c, {rp: {"VCPU": 6}}, generation=2)
    assert usage(db, rp) == {"VCPU": 5}


def test_owner_and_type_follow_the_latest_write(db: Database) -> None:
    rp = add_provider(db, {"VCPU": {"total": 8}})
    c = new_uuid()
    put(db, c, {rp: {"VCPU": 1}}, consumer_type="INSTANCE")
    request = ConsumerAllocations(c, {rp: {"VCPU": 1}}, "project-b", USER, 1, "MIGRATION")
    replace.write(db, [request], check_generation=True, attempts=1)
    with db.read() as conn:
        view = consumers.allocations_of(conn, c)
    assert view is not None
    assert (view.project_id, view.user_id, view.consumer_type) == ("project-b", USER, "MIGRATION")


def test_incomplete_consumer_owner_before_1_8(db: Database) -> None:
    rp = add_provider(db, {"VCPU": {"total": 8}})
    c = new_uuid()
    request = ConsumerAllocations(c, {rp: {"VCPU": 1}})
    replace.write(db, [request], check_generation=False, attempts=1)
    with db.read() as conn:
        view = consumers.allocations_of(conn, c)
    assert view is not None
    assert view.project_id == view.user_id == consumers.INCOMPLETE_PROJECT_ID
    assert view.consumer_type == consumers.UNKNOWN_CONSUMER_TYPE


def test_retry_on_lost_race_then_give_up(db: Database) -> None:
    calls: list[int] = []

    def lose_twice(conn: Any) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise errors.ConcurrentUpdate("lost")
        return "won"

    assert atomically(db, lose_twice, 5, operation="allocations") == "won"
    calls.clear()
    with pytest.raises(errors.ConcurrentUpdate, match="Please retry your update"):
        atomically(db, lose_twice, 2, operation="allocations")
    assert len(calls) == 2


def test_client_generation_mismatch_is_not_retried(db: Database) -> None:
    calls: list[int] = []

    def mismatch(conn: Any) -> None:
        calls.append(1)
        raise errors.StaleGeneration("consumer generation conflict")

    with pytest.raises(errors.StaleGeneration):
        atomically(db, mismatch, 5, operation="allocations")
    assert calls == [1]


def test_stale_provider_generation_is_retried_and_succeeds(db: Database) -> None:
    rp = add_provider(db, {"VCPU": {"total": 8}})
    bumped: list[int] = []
    real_bump_all = generations.bump_all_judged

    def racing_bump_all(conn: Any, gens: dict[int, int], again: Any, rounds: int) -> None:
        if not bumped:  # another writer bumps the provider first, once
            bumped.append(1)
            gens = {pid: gen - 1 for pid, gen in gens.items()}
        real_bump_all(conn, gens, again, rounds)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(generations, "bump_all_judged", racing_bump_all)
        put(db, new_uuid(), {rp: {"VCPU": 1}})
    assert bumped == [1]
    assert generation(db, rp) == 1


def test_delete_allocations(db: Database) -> None:
    rp = add_provider(db, {"VCPU": {"total": 8}})
    c = new_uuid()
    gone = f"No allocations for consumer '{c}'"
    with pytest.raises(errors.NotFound, match=gone), db.write() as conn:
        consumers.delete_allocations(conn, c)
    put(db, c, {rp: {"VCPU": 3}})
    with db.write() as conn:
        consumers.delete_allocations(conn, c)
    assert usage(db, rp) == {}
    assert consumer_generation(db, c) is None
    assert generation(db, rp) == 1  # freeing capacity does not bump (as the reference)


def _inv(uuid: str, gen: int, **classes: dict[str, Any]) -> reshaper.ProviderInventories:
    records = [Inventory(rc, **r) for rc, r in classes.items()]
    return reshaper.ProviderInventories(uuid, gen, records)


def test_reshape_moves_inventory_and_allocations(db: Database) -> None:
    parent = add_provider(db, {"VCPU": {"total": 8}, "DISK_GB": {"total": 100}})
    child = add_provider(db, {})
    c = new_uuid()
    put(db, c, {parent: {"VCPU": 4, "DISK_GB": 10}})
    move = ConsumerAllocations(c, {parent: {"DISK_GB": 10}, child: {"VCPU": 4}}, PROJECT, USER, 1)
    inventories = [_inv(parent, 1, DISK_GB={"total": 100}), _inv(child, 0, VCPU={"total": 8})]
    reshaper.reshape(db, inventories, [move], attempts=2)
    assert (usage(db, parent), usage(db, child)) == ({"DISK_GB": 10}, {"VCPU": 4})
    assert (generation(db, parent), generation(db, child)) == (4, 3)


def test_reshape_refuses_removing_allocated_inventory(db: Database) -> None:
    rp = add_provider(db, {"VCPU": {"total": 8}, "DISK_GB": {"total": 100}})
    put(db, new_uuid(), {rp: {"DISK_GB": 10}})
    with pytest.raises(InventoryInUse, match="Inventory for 'DISK_GB'"):
        reshaper.reshape(db, [_inv(rp, 1, VCPU={"total": 1})], [], attempts=2)
    with pytest.raises(errors.StaleGeneration, match="actual: 1, given: 0"):
        reshaper.reshape(db, [_inv(rp, 0, VCPU={"total": 1})], [], attempts=2)
    assert generation(db, rp) == 1
