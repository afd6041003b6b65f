"""Usages per provider and per project/user/consumer type, on every backend."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

import pytest
from sqlalchemy import Connection, insert, select

from berth.db import tables as t
from berth.db.engine import Database
from berth.placement import usages
from berth.placement.class_ids import ResourceClassCache
from berth.placement.usages import ProjectFilter
from tests.helpers import write_provider


def _external(conn: Connection, table: Any, value: str) -> int:
    found = conn.execute(select(table.c.id).where(table.c.external_id == value)).scalar()
    if found is not None:
        return int(found)
    return int(conn.execute(insert(table).values(external_id=value)).inserted_primary_key[0])  # type: ignore[index]


def _consumer_type(conn: Connection, name: str | None) -> int | None:
    if name is None:
        return None
    CT = t.consumer_types
    found = conn.execute(select(CT.c.id).where(CT.c.name == name)).scalar()
    if found is not None:
        return int(found)
    return int(conn.execute(insert(CT).values(name=name)).inserted_primary_key[0])  # type: ignore[index]


class World:
    """Providers, inventory and consumers written straight into the tables."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.providers: dict[str, int] = {}

    def provider(self, name: str, inventory: dict[str, int]) -> int:
        """A provider with ``inventory`` (class -> total)."""
        rows = {rc: {"total": total, "max_unit": total} for rc, total in inventory.items()}
        with self.db.write() as conn:
            pid, _ = write_provider(conn, rows, name)
        self.providers[name] = pid
        return pid

    def consumer(
        self,
        project: str,
        user: str,
        allocations: dict[str, dict[str, int]],
        consumer_type: str | None = None,
    ) -> None:
        """A consumer with allocations {provider name: {class: used}}."""
        uuid = str(uuidlib.uuid4())
        with self.db.write() as conn:
            classes = ResourceClassCache(conn)
            conn.execute(
                insert(t.consumers).values(
                    uuid=uuid,
                    project_id=_external(conn, t.projects, project),
                    user_id=_external(conn, t.users, user),
                    generation=0,
                    consumer_type_id=_consumer_type(conn, consumer_type),
                )
            )
            for name, resources in allocations.items():
                for rc, used in resources.items():
                    conn.execute(
                        insert(t.allocations).values(
                            resource_provider_id=self.providers[name],
                            consumer_id=uuid,
                            resource_class_id=classes.id_of(rc),
                            used=used,
                        )
                    )


@pytest.fixture
def world(db: Database) -> World:
    """Two providers; consumers of two projects, three users and three types."""
    w = World(db)
    w.provider("cn1", {"VCPU": 8, "MEMORY_MB": 4096, "DISK_GB": 100})
    w.provider("cn2", {"VCPU": 8})
    w.provider("empty", {})
    w.consumer("p1", "u1", {"cn1": {"VCPU": 2, "MEMORY_MB": 512}}, "INSTANCE")
    w.consumer("p1", "u1", {"cn1": {"VCPU": 1}, "cn2": {"VCPU": 4}}, "INSTANCE")
    w.consumer("p1", "u2", {"cn2": {"VCPU": 1}}, "MIGRATION")
    w.consumer("p1", "u2", {"cn1": {"DISK_GB": 10}})
    w.consumer("p2", "u1", {"cn1": {"VCPU": 1}})
    return w


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cn1", {"VCPU": 4, "MEMORY_MB": 512, "DISK_GB": 10}),
        ("cn2", {"VCPU": 5}),
        ("empty", {}),
    ],
)
def test_provider_usages(world: World, name: str, expected: dict[str, int]) -> None:
    with world.db.read() as conn:
        assert usages.provider_usages(conn, world.providers[name]) == expected


def test_provider_usages_zero_for_unallocated_inventory(db: Database) -> None:
    w = World(db)
    pid = w.provider("idle", {"VCPU": 8, "DISK_GB": 10})
    with db.read() as conn:
        assert usages.provider_usages(conn, pid) == {"VCPU": 0, "DISK_GB": 0}


@pytest.mark.parametrize(
    ("project", "user", "expected"),
    [
        ("p1", None, {"VCPU": 8, "MEMORY_MB": 512, "DISK_GB": 10}),
        ("p1", "u1", {"VCPU": 7, "MEMORY_MB": 512}),
        ("p1", "u2", {"VCPU": 1, "DISK_GB": 10}),
        ("p2", None, {"VCPU": 1}),
        ("p2", "u2", {}),
        ("nobody", None, {}),
    ],
)
def test_total_usages(
    world: World, project: str, user: str | None, expected: dict[str, int]
) -> None:
    with world.db.read() as conn:
        assert usages.total_usages(conn, ProjectFilter(project, user)) == expected


BY_TYPE_CASES: list[tuple[str | None, str | None, dict[str, Any]]] = [
    (
        None,
        None,
        {
            "INSTANCE": {"VCPU": 7, "MEMORY_MB": 512, "consumer_count": 2},
            "MIGRATION": {"VCPU": 1, "consumer_count": 1},
            "unknown": {"DISK_GB": 10, "consumer_count": 1},
        },
    ),
    (
        "u2",
        None,
        {
            "MIGRATION": {"VCPU": 1, "consumer_count": 1},
            "unknown": {"DISK_GB": 10, "consumer_count": 1},
        },
    ),
    (None, "INSTANCE", {"INSTANCE": {"VCPU": 7, "MEMORY_MB": 512, "consumer_count": 2}}),
    (None, "COW", {}),
    (None, "all", {"all": {"VCPU": 8, "MEMORY_MB": 512, "DISK_GB": 10, "consumer_count": 4}}),
    ("u1", "all", {"all": {"VCPU": 7, "MEMORY_MB": 512, "consumer_count": 2}}),
    (None, "unknown", {"unknown": {"DISK_GB": 10, "consumer_count": 1}}),
    ("u1", "unknown", {}),
]


@pytest.mark.parametrize(("user", "consumer_type", "expected"), BY_TYPE_CASES)
def test_usages_by_consumer_type(
    world: World, user: str | None, consumer_type: str | None, expected: dict[str, Any]
) -> None:
    with world.db.read() as conn:
        got = usages.usages_by_consumer_type(conn, ProjectFilter("p1", user), consumer_type)
    assert got == expected
