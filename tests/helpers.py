"""Helpers for tests of several packages: rows written and read directly, an app in-process."""

from __future__ import annotations

import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import falcon.testing
import pytest
from sqlalchemy import Connection, func, insert, select, update

from berth import settings as settings_mod
from berth.api.app import create_app
from berth.db import tables as t
from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.placement.class_ids import ResourceClassCache
from berth.placement.errors import PlacementError
from berth.placement.inventories import Inventory
from berth.policy import Enforcer
from berth.services import Services

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.2) -> T:
    """Poll ``check`` until it returns something true; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(every)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def write_provider(
    conn: Connection, inventory: dict[str, dict[str, Any]], name: str | None = None
) -> tuple[int, str]:
    """A root provider (generation 0, named ``name`` or its uuid) with inventory rows
    (fields as :class:`Inventory` takes them), written directly; its id and uuid."""
    uuid = str(uuidlib.uuid4())
    classes = ResourceClassCache(conn)
    pid = conn.execute(
        insert(t.resource_providers).values(uuid=uuid, name=name or uuid, generation=0)
    ).inserted_primary_key[0]  # type: ignore[index]
    conn.execute(
        update(t.resource_providers).where(t.resource_providers.c.id == pid),
        {"root_provider_id": pid},
    )
    for rc, fields in inventory.items():
        record = Inventory(rc, **fields).as_dict()
        conn.execute(
            insert(t.inventories).values(
                resource_provider_id=pid,
                resource_class_id=classes.id_of(rc),
                created_at=utcnow(),
                **record,
            )
        )
    return int(pid), uuid


def add_provider(db: Database, inventory: dict[str, dict[str, Any]]) -> str:
    """A provider written by :func:`write_provider` in a transaction of its own; its uuid."""
    with db.write() as conn:
        return write_provider(conn, inventory)[1]


def over_committed(db: Database) -> list[str]:
    """Every (provider, class) whose usage exceeds (total - reserved) * ratio."""
    A, INV, RP = t.allocations, t.inventories, t.resource_providers
    used = (
        select(A.c.resource_provider_id, A.c.resource_class_id, func.sum(A.c.used).label("used"))
        .group_by(A.c.resource_provider_id, A.c.resource_class_id)
        .subquery()
    )
    query = select(
        RP.c.uuid, INV.c.total, INV.c.reserved, INV.c.allocation_ratio, used.c.used
    ).select_from(
        used.join(
            INV,
            (INV.c.resource_provider_id == used.c.resource_provider_id)
            & (INV.c.resource_class_id == used.c.resource_class_id),
        ).join(RP, RP.c.id == used.c.resource_provider_id)
    )
    with db.read() as conn:
        rows = conn.execute(query).all()
    return [
        f"{r.uuid}: used {r.used} of {(r.total - r.reserved) * r.allocation_ratio}"
        for r in rows
        if r.used > (r.total - r.reserved) * r.allocation_ratio
    ]


def refusal(
    db: Database,
    state: Callable[[Database], object],
    error: type[PlacementError],
    write: Callable[..., object],
    *args: object,
) -> str:
    """The message of the ``error`` that ``write(conn, *args)`` raises in a transaction of
    its own, having checked that ``state(db)`` reads the same after it as before."""
    before = state(db)
    with pytest.raises(error) as caught, db.write() as conn:
        write(conn, *args)
    assert state(db) == before
    return caught.value.message


@contextmanager
def in_process_client(
    db: Database, monkeypatch: pytest.MonkeyPatch, **settings: Any
) -> Iterator[falcon.testing.TestClient]:
    """A Falcon test client of berth over ``db`` with ``settings`` (admin token by default)."""
    # wsgiref's validator insists on a Content-Type even for an empty 201;
    # the reference sends none there, and so does berth.
    monkeypatch.setattr(falcon.testing.client.wsgiref.validate, "validator", lambda app: app)
    # Pull dispatch's NATS: a closed port unless the test brings its own server (the
    # machine's shared one serves other sessions, whose queues are not the test's).
    settings.setdefault("nats_url", "nats://127.0.0.1:1")
    loaded = settings_mod.load(environ={}, database_url=str(db.url), **settings)
    services = Services(settings=loaded, db=db, enforcer=Enforcer(loaded.enforce_new_defaults))
    try:
        yield falcon.testing.TestClient(
            create_app(loaded, services), headers={"x-auth-token": "admin"}
        )
    finally:
        services.close()
