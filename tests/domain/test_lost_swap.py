"""A lost generation swap in PUT /allocations is judged again in the same transaction.

Another writer's allocation lands (and bumps the provider's generation)
between this write's capacity read and its swap.  The write then reads the
provider again, counts the other writer's rows (not its own), and either
swaps at the new generation or refuses with the capacity refusal.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, update

from berth.db import tables as t
from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.placement import consumers, errors
from berth.placement.write import generations, replace
from berth.placement.write.capacity import InvalidAllocation
from berth.placement.write.replace import ConsumerAllocations
from berth.placement.write.rows import insert_allocations
from tests.helpers import add_provider, over_committed

INVENTORY = {"VCPU": {"total": 4, "max_unit": 4}}  # capacity 4


def _other_writer_lands(monkeypatch: pytest.MonkeyPatch, provider: str, amount: int) -> None:
    """Before this write's first swap, another writer's ``amount`` of VCPU lands on
    ``provider`` and bumps its generation (written in the same transaction, as if
    committed just before the swap)."""
    real = generations._bump
    landed: list[bool] = []

    def bump(conn: Connection, provider_id: int, expected: int, times: int = 1) -> bool:
        if not landed:
            landed.append(True)
            rp = t.resource_providers
            conn.execute(
                update(rp).where(rp.c.uuid == provider).values(generation=rp.c.generation + 1)
            )
            other = str(uuidlib.uuid4())
            insert_allocations(conn, [(provider_id, other, 0, amount)], utcnow())
        return real(conn, provider_id, expected, times)

    monkeypatch.setattr(generations, "_bump", bump)


def _held(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.sum(t.allocations.c.used))).scalar() or 0)


def _claim(db: Database, provider: str, vcpu: int) -> str:
    consumer = str(uuidlib.uuid4())
    request = ConsumerAllocations(consumer, {provider: {"VCPU": vcpu}}, "project", "user")
    replace.write(db, [request], check_generation=True, attempts=3)
    return consumer


def test_lost_swap_judged_again_fits(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = add_provider(db, INVENTORY)
    _other_writer_lands(monkeypatch, provider, 2)
    consumer = _claim(db, provider, 2)  # 2 + the other's 2 = 4: fits
    assert _held(db) == 4
    with db.read() as conn:
        rp = t.resource_providers
        generation = conn.execute(select(rp.c.generation).where(rp.c.uuid == provider)).scalar()
        row = consumers.find_consumer(conn, consumer)
    assert generation == 2  # the other writer's swap, then this one's
    assert row is not None and row.generation == 1
    assert not over_committed(db)


def test_lost_swap_judged_again_refuses(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = add_provider(db, INVENTORY)
    _other_writer_lands(monkeypatch, provider, 3)
    with pytest.raises(InvalidAllocation, match="exceed the capacity"):
        _claim(db, provider, 2)  # 2 + the other's 3 = 5 > 4
    assert _held(db) == 0  # all rolled back, the other writer's "commit" with it


def test_swaps_lost_every_round_give_up(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = add_provider(db, INVENTORY)
    rounds: list[Any] = []

    def always_lost(conn: Connection, provider_id: int, expected: int, times: int = 1) -> bool:
        rounds.append(expected)
        return False

    monkeypatch.setattr(generations, "_bump", always_lost)
    with pytest.raises(errors.ConcurrentUpdate):
        _claim(db, provider, 1)
    assert len(rounds) == 3 * 3  # 3 rounds in each of 3 transactions
