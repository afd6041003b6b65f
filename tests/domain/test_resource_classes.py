"""Resource classes: standard catalogue, custom ids, rename, delete and in-use checks."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import os_resource_classes
import pytest
from sqlalchemy import Connection, func, select

from berth.db import tables as t
from berth.db.engine import Database
from berth.placement import errors
from berth.placement import resource_classes as rcs
from berth.placement.catalog import CUSTOM_ID_START
from berth.placement.errors import Conflict, InvalidInput, NotFound
from tests.helpers import refusal, write_provider

MUST_BE_CUSTOM = "Resource class name must start with CUSTOM_"
NOT_DELETED = "Error in delete resource class: "
NO_SUCH = "No such resource class"


def _class_rows(db: Database) -> list[tuple[int, str]]:
    with db.read() as conn:
        rows = conn.execute(select(t.resource_classes.c.id, t.resource_classes.c.name)).all()
    return sorted((r.id, r.name) for r in rows)


def test_standard_classes_keep_their_library_index(db: Database) -> None:
    with db.read() as conn:
        listed = rcs.list_classes(conn)
    assert [(rc.id, rc.name) for rc in listed] == list(enumerate(os_resource_classes.STANDARDS))
    assert all(rc.standard for rc in listed)


def test_custom_ids_start_at_10000_and_follow_the_highest(db: Database) -> None:
    with db.write() as conn:
        first = rcs.create_class(conn, "CUSTOM_A")
        second, created = rcs.ensure_class(conn, "CUSTOM_B")
    assert (first.id, second.id, created) == (CUSTOM_ID_START, CUSTOM_ID_START + 1, True)
    assert not first.standard
    with db.write() as conn:
        rcs.delete_class(conn, "CUSTOM_A")
        third = rcs.create_class(conn, "CUSTOM_C")
    # max(id) + 1, not "first free id".
    assert third.id == CUSTOM_ID_START + 2


def test_create_retries_when_another_writer_took_the_id(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.write() as conn:
        rcs.create_class(conn, "CUSTOM_FIRST")
    proposals = iter([CUSTOM_ID_START, CUSTOM_ID_START + 1])
    # The first proposal collides with CUSTOM_FIRST's id, as a racing writer's would.
    monkeypatch.setattr(rcs, "_next_custom_id", lambda conn: next(proposals))
    with db.write() as conn:
        created = rcs.create_class(conn, "CUSTOM_SECOND")
    assert created.id == CUSTOM_ID_START + 1
    assert (CUSTOM_ID_START + 1, "CUSTOM_SECOND") in _class_rows(db)


def test_ensure_returns_existing_class_without_creating(db: Database) -> None:
    with db.write() as conn:
        rcs.create_class(conn, "CUSTOM_GOLD")
    before = _class_rows(db)
    with db.write() as conn:
        found, created = rcs.ensure_class(conn, "CUSTOM_GOLD")
    assert (found.name, created) == ("CUSTOM_GOLD", False)
    assert _class_rows(db) == before


def test_rename_keeps_id_and_sets_updated_at(db: Database) -> None:
    with db.write() as conn:
        old = rcs.create_class(conn, "CUSTOM_OLD")
        write_provider(conn, {"CUSTOM_OLD": {"total": 1, "max_unit": 1}})
        renamed = rcs.rename_class(conn, "CUSTOM_OLD", "CUSTOM_NEW")
    assert (renamed.id, renamed.name) == (old.id, "CUSTOM_NEW")
    with db.read() as conn:
        stored = rcs.get_class(conn, "CUSTOM_NEW")
        assert rcs.find_class(conn, "CUSTOM_OLD") is None
        logged = conn.execute(select(func.count()).select_from(t.change_log)).scalar()
    assert stored.updated_at is not None and stored.last_modified == stored.updated_at
    assert logged == 1  # readers holding provider state must reload it


def test_rename_to_own_name_is_accepted(db: Database) -> None:
    with db.write() as conn:
        rcs.create_class(conn, "CUSTOM_SAME")
        assert rcs.rename_class(conn, "CUSTOM_SAME", "CUSTOM_SAME").name == "CUSTOM_SAME"


def _use_in(conn: Connection, where: str, rc: rcs.ResourceClass) -> None:
    if where == "inventory":
        write_provider(conn, {rc.name: {"total": 4, "max_unit": 4}})
    else:
        rp, _ = write_provider(conn, {})
        conn.execute(
            t.allocations.insert().values(
                resource_provider_id=rp,
                consumer_id=str(uuid.uuid4()),
                resource_class_id=rc.id,
                used=1,
            )
        )


@pytest.mark.parametrize("where", ["inventory", "allocation"])
def test_delete_refuses_a_class_in_use(db: Database, where: str) -> None:
    with db.write() as conn:
        gold = rcs.create_class(conn, "CUSTOM_GOLD")
        _use_in(conn, where, gold)
        assert rcs.in_use(conn, gold.id)
    with pytest.raises(errors.Conflict) as caught, db.write() as conn:
        rcs.delete_class(conn, "CUSTOM_GOLD")
    assert caught.value.message == (
        "Error in delete resource class: Cannot delete resource class CUSTOM_GOLD. "
        "Class is in use in inventory."
    )
    assert (gold.id, "CUSTOM_GOLD") in _class_rows(db)


# Every refusal, with its exact message, among CUSTOM_A, CUSTOM_B and CUSTOM_BUSY.
create, rename, delete = rcs.create_class, rcs.rename_class, rcs.delete_class
REFUSALS = [
    (create, ["CUSTOM_A"], Conflict, "Conflicting resource class already exists: CUSTOM_A"),
    (create, ["VCPU"], InvalidInput, f"{MUST_BE_CUSTOM}: VCPU"),
    (create, ["CUSTOM_"], InvalidInput, f"{MUST_BE_CUSTOM}: CUSTOM_"),
    (rename, ["VCPU", "CUSTOM_X"], InvalidInput, "Cannot update standard resource class VCPU"),
    (rename, ["CUSTOM_A", "CUSTOM_B"], Conflict, "Resource class already exists: CUSTOM_B"),
    (rename, ["CUSTOM_NOPE", "CUSTOM_X"], NotFound, f"{NO_SUCH} CUSTOM_NOPE."),
    (rename, ["CUSTOM_A", "MEMORY_MB"], InvalidInput, f"{MUST_BE_CUSTOM}: MEMORY_MB"),
    (delete, ["VCPU"], InvalidInput, f"{NOT_DELETED}Cannot delete standard resource class VCPU."),
    (delete, ["CUSTOM_MISSING"], NotFound, f"{NO_SUCH} CUSTOM_MISSING."),
    # Names are case-sensitive on every backend (MySQL's collation is not).
    (delete, ["custom_busy"], NotFound, f"{NO_SUCH} custom_busy."),
]


@pytest.mark.parametrize(
    ("change", "args", "error", "message"),
    REFUSALS,
    ids=[f"{change.__name__}-{'-'.join(args)}" for change, args, _, _ in REFUSALS],
)
def test_refused_changes_change_nothing(
    db: Database,
    change: Callable[..., object],
    args: list[str],
    error: type[errors.PlacementError],
    message: str,
) -> None:
    with db.write() as conn:
        for name in ("CUSTOM_A", "CUSTOM_B", "CUSTOM_BUSY"):
            rcs.create_class(conn, name)
    assert refusal(db, _class_rows, error, change, *args) == message


def test_delete_unused_custom_class(db: Database) -> None:
    with db.write() as conn:
        rcs.create_class(conn, "CUSTOM_GONE")
        other = rcs.create_class(conn, "CUSTOM_BUSY")
        _use_in(conn, "inventory", other)
    with db.write() as conn:
        rcs.delete_class(conn, "CUSTOM_GONE")
    with db.read() as conn:
        assert rcs.find_class(conn, "CUSTOM_GONE") is None
        assert rcs.find_class(conn, "CUSTOM_BUSY") is not None
