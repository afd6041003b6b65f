"""Flavors: validation (table-driven, no database), storage on each database, the revision."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from berth.db import tables as t
from berth.db.engine import Database
from berth.placement import errors
from berth.placement import resource_classes as rcs
from berth.placement import traits as tr
from berth.placement.write.retry import atomically
from berth.scheduler import flavors
from berth.scheduler.flavors import Flavor
from tests.helpers import refusal

SMALL = Flavor(
    uuid="11111111-2222-3333-4444-555555555555",
    name="m1.small",
    resources={"VCPU": 1, "MEMORY_MB": 2048},
    required_traits=frozenset({"HW_CPU_X86_AVX2"}),
    forbidden_traits=frozenset({"COMPUTE_STATUS_DISABLED"}),
    extra_specs={"hw:cpu_policy": "dedicated"},
)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"uuid": "not-a-uuid"}, "Malformed flavor uuid"),
        ({"name": ""}, "1 to 255 characters"),
        ({"name": "x" * 256}, "1 to 255 characters"),
        ({"resources": {}}, "at least one resource"),
        ({"resources": {"VCPU": 0}}, "from 1 to 2147483647"),
        ({"resources": {"VCPU": 2**31}}, "from 1 to 2147483647"),
        ({"resources": {"VCPU": True}}, "must be an integer"),
        ({"resources": {"VCPU": 1.5}}, "must be an integer"),
        (
            {"required_traits": frozenset({"CUSTOM_A", "CUSTOM_B"}),
             "forbidden_traits": frozenset({"CUSTOM_B"})},
            "both required and forbidden: CUSTOM_B",
        ),
        ({"extra_specs": {"key": 1}}, "strings to strings"),
    ],
)  # fmt: skip
def test_check_refuses(change: dict[str, Any], message: str) -> None:
    with pytest.raises(errors.InvalidInput, match=message):
        flavors.check(replace(SMALL, **change))


@pytest.mark.parametrize(
    "written",
    [
        "11111111-2222-3333-4444-555555555555",
        "11111111222233334444555555555555",
        "{11111111-2222-3333-4444-555555555555}",
        "urn:uuid:11111111-2222-3333-4444-555555555555",
        "11111111-2222-3333-4444-555555555555".upper(),
    ],
)
def test_check_makes_the_uuid_canonical(written: str) -> None:
    assert flavors.check(replace(SMALL, uuid=written)).uuid == SMALL.uuid


def test_from_body_generates_a_uuid() -> None:
    made = flavors.from_body({"name": "tiny", "resources": {"VCPU": 1}})
    assert uuid.UUID(made.uuid)
    assert (made.required_traits, made.forbidden_traits, made.extra_specs) == (
        frozenset(),
        frozenset(),
        {},
    )


def _create(db: Database, flavor: Flavor) -> Flavor:
    with db.write() as conn:
        return flavors.create(conn, flavor)


def _names(db: Database) -> list[str]:
    with db.read() as conn:
        return [f.name for f in flavors.list_flavors(conn)]


def _revision(db: Database) -> int:
    with db.read() as conn:
        return flavors.revision(conn)


def test_create_read_list_delete(db: Database) -> None:
    made = _create(db, SMALL)
    assert made.created_at is not None and made.updated_at == made.created_at
    with db.read() as conn:
        by_uuid = flavors.get(conn, SMALL.uuid)
        by_name = flavors.find_by_name(conn, "m1.small")
        upper = flavors.find(conn, SMALL.uuid.upper())
    assert by_uuid == by_name == upper == made
    assert by_uuid.as_body() == {
        "uuid": SMALL.uuid,
        "name": "m1.small",
        "resources": {"VCPU": 1, "MEMORY_MB": 2048},
        "required_traits": ["HW_CPU_X86_AVX2"],
        "forbidden_traits": ["COMPUTE_STATUS_DISABLED"],
        "extra_specs": {"hw:cpu_policy": "dedicated"},
    }
    _create(db, Flavor(str(uuid.uuid4()), "m1.large", {"VCPU": 4}))
    assert _names(db) == ["m1.small", "m1.large"]
    with db.write() as conn:
        flavors.delete(conn, SMALL.uuid)
    assert _names(db) == ["m1.large"]
    with db.read() as conn:
        assert flavors.find(conn, SMALL.uuid) is None
        assert flavors.find_by_name(conn, "m1.small") is None


def test_names_compare_exactly(db: Database) -> None:
    """A lookup by name never answers another case (MariaDB's collation would)."""
    _create(db, SMALL)
    with db.read() as conn:
        assert flavors.find_by_name(conn, "M1.SMALL") is None


def test_missing_flavors_are_not_found(db: Database) -> None:
    with db.read() as conn:
        for ref in (SMALL.uuid, "not-a-uuid"):
            assert flavors.find(conn, ref) is None
            with pytest.raises(errors.NotFound, match="No flavor with uuid"):
                flavors.get(conn, ref)
    message = refusal(db, _revision, errors.NotFound, flavors.delete, SMALL.uuid)
    assert message == f"No flavor with uuid {SMALL.uuid} found"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"uuid": str(uuid.uuid4())}, "with name m1.small already"),
        ({"name": "other"}, f"with uuid {SMALL.uuid} already"),
        ({}, f"with uuid {SMALL.uuid} and name m1.small already"),
    ],
)
def test_a_taken_uuid_or_name_is_a_conflict(
    db: Database, change: dict[str, Any], message: str
) -> None:
    _create(db, SMALL)
    found = refusal(db, _names, errors.Conflict, flavors.create, replace(SMALL, **change))
    assert message in found


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"resources": {"VCPU": 1, "CUSTOM_NOPE": 1}}, "No such resource class CUSTOM_NOPE."),
        ({"required_traits": frozenset({"CUSTOM_NOPE"})}, "No such trait(s): CUSTOM_NOPE."),
        ({"forbidden_traits": frozenset({"CUSTOM_NO"})}, "No such trait(s): CUSTOM_NO."),
    ],
)
def test_unknown_classes_and_traits_are_invalid(
    db: Database, change: dict[str, Any], message: str
) -> None:
    found = refusal(db, _names, errors.InvalidInput, flavors.create, replace(SMALL, **change))
    assert found == message


def test_custom_classes_and_traits_in_the_database_are_known(db: Database) -> None:
    with db.write() as conn:
        rcs.create_class(conn, "CUSTOM_FPGA")
        tr.ensure_trait(conn, "CUSTOM_GOLD")
    made = _create(
        db,
        replace(SMALL, resources={"CUSTOM_FPGA": 1}, required_traits=frozenset({"CUSTOM_GOLD"})),
    )
    assert made.resources == {"CUSTOM_FPGA": 1}


def test_the_revision_moves_with_every_committed_change(db: Database) -> None:
    assert _revision(db) == 0
    _create(db, SMALL)
    assert _revision(db) == 1
    refusal(db, _revision, errors.Conflict, flavors.create, SMALL)  # refused: no change
    with db.write() as conn:
        flavors.delete(conn, SMALL.uuid)
    assert _revision(db) == 2
    with db.read() as conn:
        stamps = conn.execute(select(t.scheduler_flavor_changes.c.created_at)).scalars().all()
    assert len(stamps) == 2 and None not in stamps


def test_concurrent_creates_of_one_name_make_one_flavor(db: Database) -> None:
    """Racing creates of one name: one flavor, every loser a Conflict, one change each."""
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def one() -> None:
        start.wait()
        try:
            atomically(
                db,
                lambda conn: flavors.create(conn, replace(SMALL, uuid=str(uuid.uuid4()))),
                3,
                operation=flavors.OPERATION,
            )
            outcomes.append("created")
        except errors.Conflict as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["Conflict"] * 3 + ["created"]
    assert _names(db) == ["m1.small"]
    assert _revision(db) == 1
