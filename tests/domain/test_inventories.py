"""Inventories: validation, the generation swap, in-use checks; on every backend."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from berth.db import tables as t
from berth.db.engine import Database
from berth.placement import errors, providers
from berth.placement import inventories as inv
from berth.placement.class_ids import ResourceClassCache
from berth.placement.inventories import Inventory
from berth.placement.write.capacity import InventoryInUse


def add_provider(db: Database) -> str:
    """A root provider with generation 0 and no inventory."""
    uuid = str(uuidlib.uuid4())
    with db.write() as conn:
        pid = conn.execute(
            insert(t.resource_providers).values(uuid=uuid, name=uuid, generation=0)
        ).inserted_primary_key[0]  # type: ignore[index]
        conn.execute(
            update(t.resource_providers)
            .where(t.resource_providers.c.id == pid)
            .values(root_provider_id=pid)
        )
    return uuid


def provider_id(db: Database, uuid: str) -> int:
    """The internal id of provider ``uuid``."""
    RP = t.resource_providers
    with db.read() as conn:
        return int(conn.execute(select(RP.c.id).where(RP.c.uuid == uuid)).scalar_one())


def generation(db: Database, uuid: str) -> int:
    """The provider's generation."""
    RP = t.resource_providers
    with db.read() as conn:
        return int(conn.execute(select(RP.c.generation).where(RP.c.uuid == uuid)).scalar_one())


def stored(db: Database, uuid: str) -> dict[str, dict[str, Any]]:
    """Class -> API fields of the provider's inventory."""
    with db.read() as conn:
        return {
            i.resource_class: i.as_dict() for i in inv.list_inventories(conn, provider_id(db, uuid))
        }


def allocate(db: Database, uuid: str, resources: dict[str, int]) -> None:
    """Allocation rows written directly (one consumer), as the allocation writer would."""
    consumer = str(uuidlib.uuid4())
    with db.write() as conn:
        classes = ResourceClassCache(conn)
        for name, used in resources.items():
            conn.execute(
                insert(t.allocations).values(
                    resource_provider_id=_pid(conn, uuid),
                    consumer_id=consumer,
                    resource_class_id=classes.id_of(name),
                    used=used,
                )
            )


def disk_in_use(db: Database) -> str:
    """A provider with 8 VCPU and 8 DISK_GB (generation 2), 1 DISK_GB allocated."""
    rp = add_provider(db)
    add(db, rp, "VCPU", 8)
    add(db, rp, "DISK_GB", 8)
    allocate(db, rp, {"DISK_GB": 1})
    return rp


def _pid(conn: Any, uuid: str) -> int:
    RP = t.resource_providers
    return int(conn.execute(select(RP.c.id).where(RP.c.uuid == uuid)).scalar_one())


def add(db: Database, uuid: str, rc: str, total: int, **fields: Any) -> int:
    """POST one inventory; the new generation."""
    with db.write() as conn:
        return inv.add_inventory(conn, uuid, Inventory(rc, total, **fields), False)


def replace(db: Database, uuid: str, records: dict[str, int], gen: int | None) -> int:
    """PUT the whole inventory (class -> total); the new generation."""
    wanted = [Inventory(rc, total) for rc, total in records.items()]
    with db.write() as conn:
        return inv.replace_inventories(conn, uuid, wanted, gen)


CAPACITY_CASES = [
    # total, reserved, ratio, reserved may equal total, accepted
    (10, 0, 1.0, False, True),
    (10, 9, 1.0, False, True),
    (10, 10, 1.0, False, False),
    (10, 10, 1.0, True, True),
    (10, 11, 1.0, True, False),
    (10, 11, 1.0, False, False),
    # capacity is truncated: (10 - 9) * 0.5 = 0.5 -> 0
    (10, 9, 0.5, False, False),
    (10, 9, 0.5, True, True),
    (10, 0, 0.0, False, False),
]


@pytest.mark.parametrize(("total", "reserved", "ratio", "equal_ok", "accepted"), CAPACITY_CASES)
def test_check_capacity(
    total: int, reserved: int, ratio: float, equal_ok: bool, accepted: bool
) -> None:
    record = Inventory("VCPU", total, reserved=reserved, allocation_ratio=ratio)
    if accepted:
        inv.check_capacity("rp", [record], equal_ok)
        return
    with pytest.raises(inv.InvalidCapacity) as caught:
        inv.check_capacity("rp", [record], equal_ok)
    expected = "greater than total." if equal_ok else "greater than or equal to total."
    assert caught.value.message == (
        f"Invalid inventory for 'VCPU' on resource provider 'rp'. The reserved value is {expected}"
    )


def test_add_fills_defaults_and_bumps_generation(db: Database) -> None:
    rp = add_provider(db)
    assert add(db, rp, "DISK_GB", 100, reserved=5) == 1
    assert add(db, rp, "VCPU", 8) == 2
    assert stored(db, rp) == {
        "DISK_GB": {
            "total": 100,
            "reserved": 5,
            "min_unit": 1,
            "max_unit": inv.MAX_INT,
            "step_size": 1,
            "allocation_ratio": 1.0,
        },
        "VCPU": {
            "total": 8,
            "reserved": 0,
            "min_unit": 1,
            "max_unit": inv.MAX_INT,
            "step_size": 1,
            "allocation_ratio": 1.0,
        },
    }
    assert generation(db, rp) == 2
    with db.read() as conn:
        found = inv.find_inventory(conn, provider_id(db, rp), "VCPU")
        assert found is not None and found.created_at is not None
        assert inv.find_inventory(conn, provider_id(db, rp), "MEMORY_MB") is None


@pytest.mark.parametrize(
    ("rc", "total", "reserved", "error"),
    [
        ("VCPU", 8, 0, inv.DuplicateInventory),
        ("NO_SUCH_CLASS", 8, 0, inv.UnknownResourceClass),
        ("DISK_GB", 8, 8, inv.InvalidCapacity),
    ],
)
def test_rejected_add_changes_nothing(
    db: Database, rc: str, total: int, reserved: int, error: type[Exception]
) -> None:
    rp = add_provider(db)
    add(db, rp, "VCPU", 4)
    before = stored(db, rp)
    with pytest.raises(error):
        add(db, rp, rc, total, reserved=reserved)
    assert stored(db, rp) == before
    assert generation(db, rp) == 1


def test_missing_provider_is_not_found_with_generic_code(db: Database) -> None:
    missing = str(uuidlib.uuid4())
    with pytest.raises(errors.NotFound) as caught:
        add(db, missing, "VCPU", 1)
    assert caught.value.message == f"No resource provider with uuid {missing} found"
    assert caught.value.code == errors.DEFAULT_CODE


def test_update_checks_generation_then_changes_one_class(db: Database) -> None:
    rp = add_provider(db)
    add(db, rp, "VCPU", 4)
    with db.write() as conn, pytest.raises(errors.StaleGeneration):
        inv.update_inventory(conn, rp, Inventory("VCPU", 16), 0, False)
    with db.write() as conn:
        assert inv.update_inventory(conn, rp, Inventory("VCPU", 16, max_unit=4), 1, False) == 2
    assert stored(db, rp)["VCPU"]["total"] == 16
    assert stored(db, rp)["VCPU"]["max_unit"] == 4
    with db.read() as conn:
        found = inv.find_inventory(conn, provider_id(db, rp), "VCPU")
        assert found is not None and found.updated_at is not None


def test_update_of_absent_class_rolls_back(db: Database) -> None:
    rp = add_provider(db)
    add(db, rp, "VCPU", 4)
    with db.write() as conn, pytest.raises(inv.InventoryNotFound) as caught:
        inv.update_inventory(conn, rp, Inventory("DISK_GB", 16), 1, False)
    assert caught.value.message == "No inventory of class DISK_GB found."
    assert generation(db, rp) == 1
    assert set(stored(db, rp)) == {"VCPU"}


def test_update_may_leave_capacity_below_usage(db: Database) -> None:
    rp = add_provider(db)
    add(db, rp, "VCPU", 8)
    allocate(db, rp, {"VCPU": 6})
    with db.write() as conn:
        inv.update_inventory(conn, rp, Inventory("VCPU", 2), 1, False)
    assert stored(db, rp)["VCPU"]["total"] == 2


def test_delete_one(db: Database) -> None:
    rp = disk_in_use(db)
    with db.write() as conn:
        assert inv.delete_inventory(conn, rp, "VCPU") == 3
    cases: list[tuple[str, type[Exception], str]] = [
        ("VCPU", inv.InventoryNotFound, "No inventory of class VCPU found for delete"),
        ("HOUSE", inv.UnknownResourceClass, "No such resource class HOUSE."),
        (
            "DISK_GB",
            InventoryInUse,
            f"Inventory for 'DISK_GB' on resource provider '{rp}' in use.",
        ),
    ]
    for rc, error, message in cases:
        with db.write() as conn, pytest.raises(error) as caught:
            inv.delete_inventory(conn, rp, rc)
        assert caught.value.args[0] == message
    assert generation(db, rp) == 3
    assert set(stored(db, rp)) == {"DISK_GB"}


def test_replace_adds_updates_and_deletes(db: Database) -> None:
    rp = add_provider(db)
    add(db, rp, "VCPU", 8)
    add(db, rp, "DISK_GB", 8)
    assert replace(db, rp, {"VCPU": 16, "MEMORY_MB": 1024}, 2) == 3
    assert {rc: f["total"] for rc, f in stored(db, rp).items()} == {"VCPU": 16, "MEMORY_MB": 1024}
    # Replacing with nothing still claims the provider.
    assert replace(db, rp, {}, 3) == 4
    assert replace(db, rp, {}, None) == 5
    assert stored(db, rp) == {}


def test_replace_refuses_to_delete_used_inventory(db: Database) -> None:
    rp = add_provider(db)
    add(db, rp, "VCPU", 8)
    add(db, rp, "DISK_GB", 8)
    allocate(db, rp, {"VCPU": 1, "DISK_GB": 1})
    before = stored(db, rp)
    with pytest.raises(InventoryInUse) as caught:
        replace(db, rp, {"MEMORY_MB": 8}, 2)
    # Classes named in resource class id order, as the reference does.
    assert caught.value.message == (
        f"Inventory for 'VCPU, DISK_GB' on resource provider '{rp}' in use."
    )
    assert caught.value.code == errors.INVENTORY_INUSE
    assert stored(db, rp) == before
    assert generation(db, rp) == 2
    # Shrinking below what is used is allowed.
    assert replace(db, rp, {"VCPU": 1, "DISK_GB": 1}, 2) == 3


def test_write_keeping_other_classes_is_the_reshapers_interim(db: Database) -> None:
    rp = disk_in_use(db)
    with db.write() as conn:
        provider = providers.get_provider(conn, rp)
        inv.write_inventories(conn, provider, [Inventory("MEMORY_MB", 64)], keep_others=True)
    assert set(stored(db, rp)) == {"VCPU", "DISK_GB", "MEMORY_MB"}
    assert generation(db, rp) == 2  # the caller swaps the generation
    with pytest.raises(InventoryInUse), db.write() as conn:
        inv.write_inventories(conn, provider, [Inventory("VCPU", 4)])
    with db.write() as conn:
        inv.write_inventories(conn, provider, [Inventory("VCPU", 4), Inventory("DISK_GB", 2)])
    assert {rc: f["total"] for rc, f in stored(db, rp).items()} == {"VCPU": 4, "DISK_GB": 2}


@pytest.mark.parametrize(
    ("records", "gen", "error"),
    [
        ({"VCPU": 4}, 7, errors.StaleGeneration),
        ({"VCPU": 4, "HOUSE": 1}, 1, inv.UnknownResourceClass),
    ],
)
def test_rejected_replace_changes_nothing(
    db: Database, records: dict[str, int], gen: int, error: type[Exception]
) -> None:
    rp = add_provider(db)
    add(db, rp, "DISK_GB", 8)
    with pytest.raises(error):
        replace(db, rp, records, gen)
    assert set(stored(db, rp)) == {"DISK_GB"}
    assert generation(db, rp) == 1


def test_lost_generation_race_rolls_back(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    rp = add_provider(db)
    add(db, rp, "DISK_GB", 8)
    real_write = inv._write

    def write_then_lose_race(conn: Any, *args: Any, **kwargs: Any) -> None:
        real_write(conn, *args, **kwargs)
        # Another writer's bump lands between our read and our swap.
        conn.execute(
            update(t.resource_providers)
            .where(t.resource_providers.c.uuid == rp)
            .values(generation=5)
        )

    monkeypatch.setattr(inv, "_write", write_then_lose_race)
    with pytest.raises(errors.ConcurrentUpdate) as caught:
        replace(db, rp, {"DISK_GB": 8, "VCPU": 1}, 1)
    assert not isinstance(caught.value, errors.StaleGeneration)
    assert set(stored(db, rp)) == {"DISK_GB"}
    assert generation(db, rp) == 1
