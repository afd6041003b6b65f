"""A process's pull dispatch: the sweeper thread runs on its own and stops with Services."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from berth import settings as settings_mod
from berth.db import tables as t
from berth.db.engine import Database
from berth.placement.write.retry import atomically
from berth.policy import Enforcer
from berth.pull import requests
from berth.pull.model import queue_name
from berth.pull.requests import Order
from berth.scheduler import flavors, quotas
from berth.scheduler.flavors import Flavor
from berth.services import Services
from tests.pull.conftest import NatsServer
from tests.pull.helpers import check_invariants, take

FLAVOR = Flavor("22222222-2222-2222-2222-222222222222", "small", {"VCPU": 1})


def _sweepers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "berth-pull-sweeper"]


def test_the_sweeper_thread_publishes_and_stops_with_services(
    db: Database, stopped_nats: NatsServer
) -> None:
    loaded = settings_mod.load(
        environ={},
        database_url=db.url,
        nats_url=stopped_nats.url,
        nats_retry_s=0,
        pull_sweep_interval_s=0.2,
    )
    services = Services(settings=loaded, db=db, enforcer=Enforcer(True))
    with db.write() as conn:
        flavors.create(conn, FLAVOR)
    order = Order(flavor="small", count=1, project_id="p1", user_id="u1")
    atomically(db, lambda conn: requests.enqueue(conn, order, 60), 3, operation=quotas.OPERATION)
    try:
        services.pull.start_sweeper()
        assert len(_sweepers()) == 1
        stopped_nats.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with db.read() as conn:
                if conn.execute(select(t.pull_instances.c.published)).scalar():
                    break
            time.sleep(0.1)
        assert len(take(stopped_nats.url, queue_name(FLAVOR.uuid))) == 1
    finally:
        services.close()
    assert _sweepers() == []
    check_invariants(db)
