"""The pieces of the write engine on their own: capacity rule and ledger, retry, generation swap."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from berth.db import tables as t
from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.placement import errors, providers
from berth.placement import inventories as inv
from berth.placement.inventories import Inventory
from berth.placement.write import capacity, generations
from berth.placement.write.capacity import Capacity, InventoryInUse, Ledger
from berth.placement.write.retry import RETRIES_EXHAUSTED, atomically, retryable
from berth.placement.write.rows import insert_allocations, insert_new_consumers

# total 8, reserved 0, min 1, max 4, step 2, ratio 1.5: capacity 12; 6 used
CAP = Capacity(
    total=8, reserved=0, min_unit=1, max_unit=4, step_size=2, allocation_ratio=1.5, used=6
)
CONSTRAINTS = "violate inventory constraints"
EXCEED = "exceed the capacity"


@pytest.mark.parametrize(
    ("amount", "added", "held", "why"),
    [
        (2, 2, 0, None),  # 6 + 2 <= 12
        (4, 6, 0, None),  # 6 + 6 == 12: exactly full
        (2, 8, 0, EXCEED),  # 6 + 8 > 12
        (1, 1, 0, CONSTRAINTS),  # not a multiple of step_size
        (6, 6, 0, CONSTRAINTS),  # over max_unit
        (0, 0, 0, CONSTRAINTS),  # under min_unit
        (4, 8, 8, None),  # over capacity, but the write adds no more than it held
        (4, 8, 7, EXCEED),  # over capacity and the write adds to it
    ],
)
def test_capacity_refusal(amount: int, added: int, held: int, why: str | None) -> None:
    assert CAP.refusal(amount, added, held) == why


def test_reserved_lowers_the_capacity() -> None:
    reserved = Capacity(8, 4, 1, 8, 1, 1.0, used=3)
    assert reserved.refusal(1, 1) is None
    assert reserved.refusal(2, 2) == EXCEED


def test_refusal_texts() -> None:
    assert (
        capacity.missing_provider("p")
        == "Allocation for resource provider 'p' that does not exist."
    )
    assert capacity.inventory_invalid("VCPU", "p").message == (
        "Inventory for 'VCPU' on resource provider 'p' invalid."
    )
    assert capacity.unable("VCPU", "p", EXCEED).message == (
        "Unable to create allocation for 'VCPU' on resource provider 'p'. "
        "The requested amount would exceed the capacity."
    )


def test_ledger_counts_accepted_requests_only() -> None:
    ledger = Ledger({(1, 0): Capacity(8, 0, 1, 8, 1, 1.0, used=2)})
    provider = (1, "p")
    assert ledger.add(provider, 0, "VCPU", 4) is None
    ledger.settle(accept=True)  # 6 of 8 used
    assert ledger.add(provider, 0, "VCPU", 1) is None
    refused = ledger.add(provider, 0, "VCPU", 2)  # 6 + 1 + 2 > 8: the request as a whole
    assert refused is not None and refused.message.endswith("would exceed the capacity.")
    ledger.settle(accept=False)  # forgotten: 6 of 8 used
    assert ledger.add(provider, 0, "VCPU", 2) is None
    ledger.settle(accept=True)
    assert ledger.accepted == {(1, 0): 6}
    assert ledger.add(provider, 0, "VCPU", 1) is not None


def test_ledger_refuses_what_has_no_inventory() -> None:
    ledger = Ledger({(1, 0): Capacity(8, 0, 1, 8, 1, 1.0, used=0)}, held={(1, 0): 3})
    invalid = "Inventory for 'DISK_GB' on resource provider 'p' invalid."
    assert ledger.add((1, "p"), 2, "DISK_GB", 1).message == invalid  # type: ignore[union-attr]
    unknown = ledger.add((1, "p"), None, "CUSTOM_X", 1)  # a class that does not exist
    assert unknown is not None and "'CUSTOM_X'" in unknown.message
    assert ledger.add((1, "p"), 2, "DISK_GB", 0) is None  # nothing added, nothing judged


def _sample(name: str, operation: str) -> float:
    return REGISTRY.get_sample_value(name, {"operation": operation}) or 0.0


def _transient() -> DBAPIError:
    class Deadlock(Exception):
        sqlstate = "40P01"

    return DBAPIError("UPDATE ...", {}, Deadlock())


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (errors.ConcurrentUpdate("lost"), True),
        (IntegrityError("INSERT ...", {}, Exception("duplicate")), True),
        (_transient(), True),
        (errors.StaleGeneration("client's generation"), False),
        (DBAPIError("SELECT ...", {}, Exception("syntax error")), False),
        (errors.InvalidInput("bad"), False),
        (ValueError("bug"), False),
    ],
)
def test_what_is_retryable(exc: BaseException, expected: bool) -> None:
    assert retryable(exc) is expected


def _losing(times: int, exc: Callable[[], BaseException]) -> Callable[[Connection], str]:
    calls: list[int] = []

    def once(conn: Connection) -> str:
        calls.append(1)
        if len(calls) <= times:
            raise exc()
        return "won"

    return once


def test_retries_are_counted_under_the_operation(sqlite_db: Database) -> None:
    retries = _sample("berth_write_retries_total", "engine-test")
    others = _sample("berth_write_retries_total", "allocations")
    assert atomically(sqlite_db, _losing(2, _transient), 3, operation="engine-test") == "won"
    assert _sample("berth_write_retries_total", "engine-test") == retries + 2
    assert _sample("berth_write_retries_total", "allocations") == others  # not the old catch-all


def test_exhausted_retries_answer_concurrent_update(sqlite_db: Database) -> None:
    conflicts = _sample("berth_write_conflicts_total", "engine-test-2")
    lose = _losing(5, lambda: errors.ConcurrentUpdate("lost"))
    with pytest.raises(errors.ConcurrentUpdate) as caught:
        atomically(sqlite_db, lose, 2, operation="engine-test-2")
    assert caught.value.message == RETRIES_EXHAUSTED
    assert _sample("berth_write_retries_total", "engine-test-2") == 2
    assert _sample("berth_write_conflicts_total", "engine-test-2") == conflicts + 1


@pytest.mark.parametrize("exc", [errors.StaleGeneration("stale"), errors.InvalidInput("bad")])
def test_not_retried_errors_are_raised_at_once(sqlite_db: Database, exc: Exception) -> None:
    calls: list[int] = []

    def once(conn: Connection) -> None:
        calls.append(1)
        raise exc

    with pytest.raises(type(exc)):
        atomically(sqlite_db, once, 5, operation="engine-test-3")
    assert calls == [1]


def _provider(conn: Connection, **inventory: int) -> providers.ProviderRow:
    uuid = str(uuidlib.uuid4())
    providers.create(conn, uuid, uuid, None)
    for rc, total in inventory.items():
        inv.add_inventory(conn, uuid, Inventory(rc, total), reserved_may_equal_total=False)
    return providers.get_provider(conn, uuid)


def _changes(conn: Connection, provider_id: int) -> int:
    log = t.change_log
    query = select(func.count()).select_from(log).where(log.c.provider_id == provider_id)
    return int(conn.execute(query).scalar_one())


def _generation(conn: Connection, provider_id: int) -> int:
    rp = t.resource_providers
    return int(conn.execute(select(rp.c.generation).where(rp.c.id == provider_id)).scalar_one())


def test_bump_swaps_or_raises(db: Database) -> None:
    with db.write() as conn:
        rp = _provider(conn)
        before = _changes(conn, rp.id)
        assert generations.bump(conn, rp.id, rp.generation, times=3) == rp.generation + 3
        # One swap by three, recorded once: the feed's readers need to know the
        # provider changed, not how many times.
        assert _changes(conn, rp.id) == before + 1
        with pytest.raises(errors.ConcurrentUpdate, match="generation conflict"):
            generations.bump(conn, rp.id, rp.generation)
        assert _generation(conn, rp.id) == rp.generation + 3


def test_swap_many_returns_the_swapped(db: Database) -> None:
    with db.write() as conn:
        one, two, three = _provider(conn), _provider(conn), _provider(conn)
        before = {rp.id: _changes(conn, rp.id) for rp in (one, two, three)}
        expected = {one.id: one.generation, two.id: two.generation + 5, three.id: three.generation}
        assert generations.swap(conn, expected) == {one.id, three.id}
        assert generations.swap(conn, {}) == set()
        assert [_generation(conn, rp.id) for rp in (one, two, three)] == [1, 0, 1]
        after = {rp.id: _changes(conn, rp.id) for rp in (one, two, three)}
    assert after == {
        one.id: before[one.id] + 1,
        two.id: before[two.id],
        three.id: before[three.id] + 1,
    }


def test_capacity_read_by_id_and_by_uuid(db: Database) -> None:
    with db.write() as conn:
        rp = _provider(conn, VCPU=8, DISK_GB=100)
        bare = _provider(conn, MEMORY_MB=512)
        consumer = str(uuidlib.uuid4())
        insert_new_consumers(
            conn, [(consumer, _id(conn, t.projects), _id(conn, t.users))], utcnow()
        )
        insert_allocations(conn, [(rp.id, consumer, 0, 3), (rp.id, consumer, 2, 10)], utcnow())
        by_id = capacity.read(conn, [rp.id, bare.id], [0, 2])
        providers_read, by_uuid = capacity.read_by_uuid(conn, [rp.uuid, bare.uuid], [0, 2])
    assert by_id == by_uuid
    assert {pair: cap.used for pair, cap in by_id.items()} == {(rp.id, 0): 3, (rp.id, 2): 10}
    assert by_id[(rp.id, 0)] == Capacity(8, 0, 1, 0x7FFFFFFF, 1, 1.0, used=3)
    assert providers_read == {rp.uuid: (rp.id, rp.generation)}  # no VCPU nor DISK_GB: absent


def test_inventory_in_use_names_the_classes(db: Database) -> None:
    with db.write() as conn:
        rp = _provider(conn, VCPU=8, DISK_GB=100)
        consumer = str(uuidlib.uuid4())
        insert_new_consumers(
            conn, [(consumer, _id(conn, t.projects), _id(conn, t.users))], utcnow()
        )
        insert_allocations(conn, [(rp.id, consumer, 2, 1), (rp.id, consumer, 0, 1)], utcnow())
        capacity.check_not_in_use(conn, rp.id, rp.uuid, [])
        with pytest.raises(InventoryInUse) as caught:
            capacity.check_not_in_use(conn, rp.id, rp.uuid, [0, 1, 2])
    assert caught.value.message == (
        f"Inventory for 'VCPU, DISK_GB' on resource provider '{rp.uuid}' in use."
    )
    assert caught.value.code == errors.INVENTORY_INUSE


def _id(conn: Connection, table: Any) -> int:
    """The id of a row of ``table`` (a project or user), made for the test."""
    result = conn.execute(table.insert().values(external_id=str(uuidlib.uuid4())))
    return int(result.inserted_primary_key[0])
