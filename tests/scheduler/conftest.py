"""Fixtures for scheduler tests that use a real database: a small cloud and services."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import falcon.testing
import pytest
from sqlalchemy import func, select

from berth import settings as settings_mod
from berth.bench import cloud_db
from berth.bench.cloud import ProviderSpec
from berth.db import tables as t
from berth.db.engine import Database
from berth.policy import Enforcer
from berth.services import Services
from tests.helpers import in_process_client

# (total, reserved, min_unit, max_unit, step_size, allocation_ratio)
SMALL = {
    "VCPU": (8, 0, 1, 8, 1, 1.0),
    "MEMORY_MB": (16384, 0, 1, 16384, 1, 1.0),
    "DISK_GB": (100, 0, 1, 100, 1, 1.0),
}


def host_uuid(i: int) -> str:
    """The uuid of test host ``i`` (named cn<i>)."""
    return f"00000000-0000-0000-0000-{i:012d}"


def write_cloud(
    db: Database,
    n: int,
    traits: dict[int, set[str]] | None = None,
    aggregates: dict[int, set[str]] | None = None,
    inventories: dict[str, tuple[int, int, int, int, int, float]] | None = None,
) -> list[str]:
    """``n`` small compute nodes cn1..cnN; returns their uuids."""
    specs = [
        ProviderSpec(
            uuid=host_uuid(i),
            name=f"cn{i}",
            inventories=dict(inventories or SMALL),
            traits=set((traits or {}).get(i, set())),
            aggregates=set((aggregates or {}).get(i, set())),
        )
        for i in range(1, n + 1)
    ]
    with db.write() as conn:
        cloud_db.write(conn, specs)
    return [s.uuid for s in specs]


MakeServices = Callable[..., Services]


@pytest.fixture
def make_services(db: Database) -> Iterator[MakeServices]:
    """Services over the test database with scheduler settings overridden (closed after)."""
    made: list[Services] = []

    def make(**overrides: Any) -> Services:
        # Deterministic scan order (tests check which host wins); the random start
        # has its own test.
        values = {
            "scheduler_refresh_ms": 0,
            "scheduler_scan_random_start": False,
            **{f"scheduler_{k}": v for k, v in overrides.items()},
        }
        settings = settings_mod.load(environ={}, database_url=db.url, **values)
        made.append(Services(settings=settings, db=db, enforcer=Enforcer(True)))
        return made[-1]

    yield make
    for services in made:
        services.close()


def usage(db: Database) -> dict[str, dict[str, int]]:
    """Host uuid -> class -> total used (every allocation in the database)."""
    A, RP, RC = t.allocations, t.resource_providers, t.resource_classes
    query = (
        select(RP.c.uuid, RC.c.name, func.sum(A.c.used))
        .select_from(
            A.join(RP, A.c.resource_provider_id == RP.c.id).join(
                RC, A.c.resource_class_id == RC.c.id
            )
        )
        .group_by(RP.c.uuid, RC.c.name)
    )
    out: dict[str, dict[str, int]] = {}
    with db.read() as conn:
        for uuid, rc, used in conn.execute(query):
            out.setdefault(uuid, {})[rc] = int(used)
    return out


def consumers_of(db: Database) -> dict[str, str]:
    """Consumer uuid -> the host uuid holding its allocations."""
    A, RP = t.allocations, t.resource_providers
    query = select(A.c.consumer_id, RP.c.uuid).select_from(
        A.join(RP, A.c.resource_provider_id == RP.c.id)
    )
    with db.read() as conn:
        return {c: h for c, h in conn.execute(query)}


@pytest.fixture
def client(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> Iterator[falcon.testing.TestClient]:
    """A Falcon test client on a fresh SQLite database, request log lines off."""
    with in_process_client(sqlite_db, monkeypatch, log_requests=False) as client:
        yield client
