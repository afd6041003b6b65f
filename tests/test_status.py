"""``berth status``: capacity per class and the fullest/emptiest provider trees."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from berth import cli
from berth import status as status_mod
from berth.db import tables as t
from berth.db.clock import utcnow
from berth.db.engine import Database


def _class_id(db: Database, name: str) -> int:
    with db.read() as conn:
        query = select(t.resource_classes.c.id).where(t.resource_classes.c.name == name)
        return int(conn.execute(query).scalar_one())


def populate(db: Database) -> None:
    """Four trees: A (with a child) half full, B full, C empty, D without inventory."""
    vcpu, mem, disk = (_class_id(db, n) for n in ("VCPU", "MEMORY_MB", "DISK_GB"))
    now = utcnow()
    providers = [  # id, name, root, parent
        (1, "host-a", 1, None),
        (2, "host-a-numa0", 1, 1),
        (3, "host-b", 3, None),
        (4, "host-c", 4, None),
        (5, "host-d", 5, None),
    ]
    inventories = [  # provider, class, total, reserved, ratio
        (1, vcpu, 16, 0, 2.0),
        (1, mem, 1024, 0, 1.0),
        (2, vcpu, 8, 0, 1.0),
        (3, vcpu, 10, 2, 1.0),
        (4, disk, 100, 0, 1.0),
    ]
    allocations = [  # provider, consumer, class, used
        (1, "c1", vcpu, 8),
        (1, "c1", mem, 512),
        (2, "c1", vcpu, 4),
        (3, "c2", vcpu, 8),
    ]
    with db.write() as conn:
        conn.execute(
            t.resource_providers.insert(),
            [
                {"id": i, "uuid": f"00000000-0000-0000-0000-00000000000{i}", "name": name,
                 "generation": 1, "root_provider_id": root, "parent_provider_id": parent,
                 "created_at": now}
                for i, name, root, parent in providers
            ],
        )  # fmt: skip
        conn.execute(
            t.inventories.insert(),
            [
                {"resource_provider_id": rp, "resource_class_id": rc, "total": total,
                 "reserved": reserved, "min_unit": 1, "max_unit": total, "step_size": 1,
                 "allocation_ratio": ratio, "created_at": now}
                for rp, rc, total, reserved, ratio in inventories
            ],
        )  # fmt: skip
        conn.execute(
            t.allocations.insert(),
            [
                {"resource_provider_id": rp, "consumer_id": c, "resource_class_id": rc,
                 "used": used, "created_at": now}
                for rp, c, rc, used in allocations
            ],
        )  # fmt: skip
        conn.execute(t.projects.insert(), [{"id": 1, "external_id": "p1", "created_at": now}])
        conn.execute(t.users.insert(), [{"id": 1, "external_id": "u1", "created_at": now}])
        conn.execute(
            t.consumers.insert(),
            [
                {"uuid": c, "project_id": 1, "user_id": 1, "generation": 1, "created_at": now}
                for c in ("c1", "c2")
            ],
        )


@pytest.mark.databases
def test_capacity_per_class_and_hosts(db: Database) -> None:
    populate(db)
    summary = status_mod.gather(db, top=2)
    assert (summary.providers, summary.hosts, summary.consumers, summary.projects) == (5, 4, 2, 1)
    rows = {c.name: (c.providers, c.total, c.reserved, c.capacity, c.used, c.free)
            for c in summary.classes}  # fmt: skip
    assert rows == {
        # capacity = (total - reserved) * allocation_ratio, summed
        "VCPU": (3, 34, 2, 32 + 8 + 8, 20, 28),
        "MEMORY_MB": (1, 1024, 0, 1024, 512, 512),
        "DISK_GB": (1, 100, 0, 100, 0, 100),
    }
    # A tree's fill is its busiest class: host-a's VCPU is 12/40, MEMORY_MB 512/1024.
    assert [(h.name, h.fill, h.bottleneck) for h in summary.fullest] == [
        ("host-b", 1.0, "VCPU"),
        ("host-a", 0.5, "MEMORY_MB"),
    ]
    assert summary.fullest[1].classes == {"VCPU": (12, 40), "MEMORY_MB": (512, 1024)}
    assert [h.name for h in summary.emptiest] == ["host-c", "host-a"]


def test_empty_cloud(sqlite_db: Database) -> None:
    summary = status_mod.gather(sqlite_db)
    assert (summary.providers, summary.classes, summary.fullest) == (0, [], [])


def test_cli_tables_and_json(sqlite_db: Database) -> None:
    populate(sqlite_db)
    runner = CliRunner()
    url = str(sqlite_db.url)
    shown = runner.invoke(cli.app, ["status", "--database-url", url], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "5 resource providers in 4 trees" in shown.output
    for text in ("Capacity per resource class", "MEMORY_MB", "Fullest hosts", "host-b", "100.0%"):
        assert text in shown.output
    as_json = runner.invoke(cli.app, ["status", "--database-url", url, "--json", "--top", "1"])
    data = json.loads(as_json.output)
    assert [h["name"] for h in data["fullest"]] == ["host-b"]
    assert data["fullest"][0]["classes"] == {"VCPU": {"used": 8, "capacity": 8}}
    vcpu = next(c for c in data["classes"] if c["name"] == "VCPU")
    assert (vcpu["free"], vcpu["fill"]) == (28, round(20 / 48, 4))
