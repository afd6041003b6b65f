"""Consumers, projects, users, consumer types and the consumer generation."""

from __future__ import annotations

import uuid as uuidlib

import pytest
from sqlalchemy import func, insert, select

from berth.db import tables as t
from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.placement import consumers, errors
from berth.placement.consumers import ConsumerRow


def _consumer(db: Database) -> ConsumerRow:
    with db.write() as conn:
        project = consumers.ensure_project(conn, "p")
        user = consumers.ensure_user(conn, "u")
        return consumers.create_consumer(conn, str(uuidlib.uuid4()), project, user, None)


@pytest.mark.parametrize(
    ("ensure", "table"),
    [
        (consumers.ensure_project, t.projects),
        (consumers.ensure_user, t.users),
        (consumers.ensure_consumer_type, t.consumer_types),
    ],
)
def test_created_on_demand_once(db: Database, ensure: object, table: object) -> None:
    with db.write() as conn:
        first = ensure(conn, "NAME_1")  # type: ignore[operator]
        again = ensure(conn, "NAME_1")  # type: ignore[operator]
        other = ensure(conn, "NAME_2")  # type: ignore[operator]
        count = conn.execute(select(func.count()).select_from(table)).scalar()  # type: ignore[arg-type]
    assert first == again != other
    assert count == 2


ROW = ConsumerRow(1, "c", 1, 1, 4, None)


@pytest.mark.parametrize(
    ("current", "given", "message"),
    [
        (None, None, None),
        (None, 0, "consumer generation conflict - expected null but got 0"),
        (ROW, 4, None),
        (ROW, None, "consumer generation conflict - expected 4 but got None"),
        (ROW, 3, "consumer generation conflict - expected 4 but got 3"),
    ],
)
def test_check_generation(
    current: ConsumerRow | None, given: int | None, message: str | None
) -> None:
    if message is None:
        consumers.check_generation("c", current, given)
    else:
        with pytest.raises(errors.StaleGeneration) as caught:
            consumers.check_generation("c", current, given)
        assert caught.value.message == message
        assert caught.value.code == errors.CONCURRENT_UPDATE


def test_save_is_a_compare_and_swap(db: Database) -> None:
    row = _consumer(db)
    with db.write() as conn:
        new = consumers.save_consumer(
            conn, row, bump=True, project_id=row.project_id, user_id=row.user_id, type_id=None
        )
    assert new == 1
    with pytest.raises(errors.ConcurrentUpdate), db.write() as conn:
        # ``row`` still says generation 0: the swap must fail.
        consumers.save_consumer(
            conn, row, bump=True, project_id=row.project_id, user_id=row.user_id, type_id=None
        )
    with db.read() as conn:
        assert consumers.find_consumer(conn, row.uuid) == ConsumerRow(
            row.id, row.uuid, row.project_id, row.user_id, 1, None
        )


def test_save_without_changes_writes_nothing(db: Database) -> None:
    row = _consumer(db)
    stale = ConsumerRow(row.id, row.uuid, row.project_id, row.user_id, 99, None)
    with db.write() as conn:
        assert (
            consumers.save_consumer(
                conn,
                stale,
                bump=False,
                project_id=row.project_id,
                user_id=row.user_id,
                type_id=None,
            )
            == 99
        )


def test_owner_change_keeps_generation(db: Database) -> None:
    row = _consumer(db)
    with db.write() as conn:
        other = consumers.ensure_project(conn, "q")
        gen = consumers.save_consumer(
            conn, row, bump=False, project_id=other, user_id=row.user_id, type_id=None
        )
        found = consumers.find_consumer(conn, row.uuid)
    assert gen == 0
    assert found is not None and found.project_id == other


def test_consumer_with_allocations_is_kept(db: Database) -> None:
    row = _consumer(db)
    with db.write() as conn:
        conn.execute(
            insert(t.allocations).values(
                resource_provider_id=1,
                consumer_id=row.uuid,
                resource_class_id=0,
                used=1,
                created_at=utcnow(),
            )
        )
        consumers.delete_if_unallocated(conn, row.id, row.generation)
        assert consumers.find_consumer(conn, row.uuid) is not None


def test_unallocated_consumer_is_deleted_only_at_its_generation(db: Database) -> None:
    row = _consumer(db)
    with pytest.raises(errors.ConcurrentUpdate), db.write() as conn:
        consumers.delete_if_unallocated(conn, row.id, row.generation + 1)
    with db.write() as conn:
        consumers.delete_if_unallocated(conn, row.id, row.generation)
        assert consumers.find_consumer(conn, row.uuid) is None


def test_unique_race_surfaces_as_integrity_error(db: Database) -> None:
    from sqlalchemy.exc import IntegrityError

    row = _consumer(db)
    with pytest.raises(IntegrityError), db.write() as conn:
        consumers.create_consumer(conn, row.uuid, row.project_id, row.user_id, None)
