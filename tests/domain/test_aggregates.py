"""Provider aggregates: replace semantics and the 1.19 generation rules, on every backend."""

from __future__ import annotations

import uuid as uuidlib

import pytest
from sqlalchemy import func, insert, select, update

from berth.db import tables as t
from berth.db.engine import Database
from berth.placement import aggregates as aggs
from berth.placement import errors

AGG_A, AGG_B, AGG_C = (str(uuidlib.uuid4()) for _ in range(3))


def add_provider(db: Database) -> str:
    """A root provider with generation 0."""
    uuid = str(uuidlib.uuid4())
    with db.write() as conn:
        rp = t.resource_providers
        pid = conn.execute(
            insert(rp).values(uuid=uuid, name=uuid, generation=0)
        ).inserted_primary_key[0]  # type: ignore[index]
        conn.execute(update(rp).where(rp.c.id == pid).values(root_provider_id=pid))
    return uuid


def state(db: Database, uuid: str) -> tuple[set[str], int]:
    """The provider's aggregate uuids and generation."""
    rp = t.resource_providers
    with db.read() as conn:
        row = conn.execute(select(rp.c.id, rp.c.generation).where(rp.c.uuid == uuid)).one()
        return set(aggs.provider_aggregates(conn, row.id)), row.generation


def put(db: Database, uuid: str, uuids: list[str], gen: int | None, bump: bool) -> int:
    """Replace the provider's aggregates; the generation after."""
    with db.write() as conn:
        return aggs.set_aggregates(conn, uuid, uuids, gen, bump)


def aggregate_rows(db: Database) -> int:
    """How many aggregates exist at all."""
    with db.read() as conn:
        return int(
            conn.execute(select(func.count()).select_from(t.placement_aggregates)).scalar_one()
        )


def test_replace_without_generation_leaves_it_alone(db: Database) -> None:
    rp = add_provider(db)
    assert put(db, rp, [AGG_A, AGG_B], None, bump=False) == 0
    assert state(db, rp) == ({AGG_A, AGG_B}, 0)
    assert put(db, rp, [AGG_B, AGG_C], None, bump=False) == 0
    assert state(db, rp) == ({AGG_B, AGG_C}, 0)
    assert put(db, rp, [], None, bump=False) == 0
    assert state(db, rp) == (set(), 0)


def test_replace_with_generation_bumps_it(db: Database) -> None:
    rp = add_provider(db)
    assert put(db, rp, [AGG_A], 0, bump=True) == 1
    assert put(db, rp, [AGG_A], 1, bump=True) == 2
    assert state(db, rp) == ({AGG_A}, 2)


def test_stale_generation_changes_nothing(db: Database) -> None:
    rp = add_provider(db)
    put(db, rp, [AGG_A], 0, bump=True)
    with pytest.raises(errors.StaleGeneration) as caught:
        put(db, rp, [AGG_B], 0, bump=True)
    assert caught.value.code == errors.CONCURRENT_UPDATE
    assert caught.value.message == aggs.GENERATION_CHANGED
    assert state(db, rp) == ({AGG_A}, 1)


def test_aggregates_are_shared_and_created_once(db: Database) -> None:
    rp1, rp2 = add_provider(db), add_provider(db)
    put(db, rp1, [AGG_A, AGG_B], None, bump=False)
    put(db, rp2, [AGG_B, AGG_C, AGG_C], None, bump=False)
    assert aggregate_rows(db) == 3
    # Removing the last association keeps the aggregate row, as the reference does.
    put(db, rp1, [], None, bump=False)
    assert aggregate_rows(db) == 3
    assert state(db, rp2) == ({AGG_B, AGG_C}, 0)


def test_listing_is_in_creation_order(db: Database) -> None:
    rp = add_provider(db)
    put(db, rp, [AGG_C, AGG_A, AGG_B], None, bump=False)
    with db.read() as conn:
        pid = conn.execute(
            select(t.resource_providers.c.id).where(t.resource_providers.c.uuid == rp)
        ).scalar_one()
        assert aggs.provider_aggregates(conn, pid) == [AGG_C, AGG_A, AGG_B]


def test_missing_provider(db: Database) -> None:
    with pytest.raises(errors.NotFound):
        put(db, str(uuidlib.uuid4()), [AGG_A], None, bump=False)
    assert aggregate_rows(db) == 0


def test_every_change_reaches_the_change_feed(db: Database) -> None:
    rp = add_provider(db)
    with db.read() as conn:
        before = conn.execute(select(func.count()).select_from(t.change_log)).scalar_one()
    put(db, rp, [AGG_A], None, bump=False)
    put(db, rp, [AGG_B], 0, bump=True)
    with db.read() as conn:
        after = conn.execute(select(func.count()).select_from(t.change_log)).scalar_one()
    assert after - before == 2
