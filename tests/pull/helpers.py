"""Helpers for pull-dispatch tests: flavors, hosts, messages read back, invariants."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import falcon.testing
import nats
import orjson
from sqlalchemy import func, select

from berth.bench import cloud_db
from berth.bench.cloud import ProviderSpec
from berth.db import tables as t
from berth.db.engine import Database
from berth.pull.model import ACTIVE, CLAIMED, DELETING, QUEUED, QUEUES_BUCKET, WORK_STREAM
from berth.scheduler import quotas
from berth.scheduler.quotas import Scope
from tests.helpers import over_committed

V1_2 = {"openstack-api-version": "scheduler 1.2"}
# (total, reserved, min_unit, max_unit, step_size, allocation_ratio)
SMALL = {"VCPU": (4, 0, 1, 4, 1, 1.0), "MEMORY_MB": (8192, 0, 1, 8192, 1, 1.0)}


def host_uuid(i: int) -> str:
    """The uuid of test host ``i``."""
    return f"00000000-0000-0000-0000-{i:012d}"


def add_hosts(db: Database, n: int, traits: Mapping[int, set[str]] | None = None) -> list[str]:
    """Hosts 1..n with SMALL inventories (and ``traits`` by index); their uuids."""
    specs = [
        ProviderSpec(
            uuid=host_uuid(i),
            name=f"h{i}",
            inventories=dict(SMALL),
            traits=set((traits or {}).get(i, set())),
        )
        for i in range(1, n + 1)
    ]
    with db.write() as conn:
        cloud_db.write(conn, specs, announce=False)
    return [s.uuid for s in specs]


def flavor(
    client: falcon.testing.TestClient, name: str, resources: Mapping[str, int], **more: Any
) -> dict[str, Any]:
    """A flavor created over HTTP; its body."""
    body = {"name": name, "resources": dict(resources), **more}
    got = client.simulate_post("/scheduler/flavors", json=body, headers=V1_2)
    assert got.status_code == 201, got.text
    return dict(got.json)


def enqueue(client: falcon.testing.TestClient, **body: Any) -> falcon.testing.Result:
    """POST /scheduler/requests with ``body`` (project p1 and user u1 unless given)."""
    full = {"project_id": "p1", "user_id": "u1", **body}
    return client.simulate_post("/scheduler/requests", json=full, headers=V1_2)


def call(client: falcon.testing.TestClient, path: str, body: Any) -> falcon.testing.Result:
    """POST ``body`` to an agent route /scheduler/pull/<path>."""
    return client.simulate_post(f"/scheduler/pull/{path}", json=body, headers=V1_2)


def claim(client: falcon.testing.TestClient, *claims: tuple[str, str, int]) -> list[dict[str, str]]:
    """POST /scheduler/pull/claims for (instance, host, attempt) items; the results."""
    body = {"claims": [{"instance": i, "host": h, "attempt": a} for i, h, a in claims]}
    got = call(client, "claims", body)
    assert got.status_code == 200, got.text
    return list(got.json["results"])


def show(client: falcon.testing.TestClient, uuid: str) -> dict[str, Any]:
    """GET /scheduler/requests/{uuid}."""
    got = client.simulate_get(f"/scheduler/requests/{uuid}", headers=V1_2)
    assert got.status_code == 200, got.text
    return dict(got.json)


def take(
    url: str, queue: str, batch: int = 100, wait: float = 1.0, stream: str = WORK_STREAM
) -> list[tuple[str, dict]]:
    """Fetch and ack up to ``batch`` messages of consumer ``queue``: (msg id, body) each."""

    async def fetch() -> list[tuple[str, dict]]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe_bind(queue, stream=stream)
            try:
                msgs = await sub.fetch(batch, timeout=wait)
            except (TimeoutError, nats.errors.TimeoutError):  # nothing there
                return []
            for m in msgs:
                await m.ack()
            return [((m.headers or {}).get("Nats-Msg-Id", ""), orjson.loads(m.data)) for m in msgs]
        finally:
            await nc.close()

    return asyncio.run(fetch())


def states(db: Database) -> dict[str, int]:
    """How many instances are in each state."""
    PI = t.pull_instances
    with db.read() as conn:
        query = select(PI.c.state, func.count()).group_by(PI.c.state)
        return {state: int(n) for state, n in conn.execute(query)}


def check_invariants(db: Database) -> None:
    """No provider over capacity; per project, quota usage is the instances' rows: one live
    reservation per queued instance, one consumer with allocations per placed one."""
    assert over_committed(db) == []
    PI, PR = t.pull_instances, t.pull_requests
    with db.read() as conn:
        query = (
            select(PR.c.project_id, PI.c.state, func.count())
            .select_from(PI.join(PR, PR.c.uuid == PI.c.request_uuid))
            .group_by(PR.c.project_id, PI.c.state)
        )
        counted: dict[str, dict[str, int]] = {}
        for project, state, n in conn.execute(query):
            counted.setdefault(project, {})[state] = int(n)
        for project, by_state in counted.items():
            usage = quotas.usage(conn, Scope(project))
            placed = sum(by_state.get(s, 0) for s in (CLAIMED, ACTIVE, DELETING))
            assert usage.reserved.get("instances", 0) == by_state.get(QUEUED, 0), (project, usage)
            assert usage.in_use.get("instances", 0) == placed, (project, usage, by_state)


def nats_state(url: str) -> tuple[set[str], dict[str, dict]]:
    """The consumers of BERTH_WORK, and the queue bucket's keys with their JSON."""

    async def read() -> tuple[set[str], dict[str, dict]]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            try:
                consumers = {str(c.name) for c in await js.consumers_info(WORK_STREAM)}
                kv = await js.key_value(QUEUES_BUCKET)
            except nats.js.errors.NotFoundError:  # never synced: no stream, no bucket
                return set(), {}
            try:
                keys = await kv.keys()
            except nats.js.errors.NoKeysError:
                keys = []
            values = {k: orjson.loads((await kv.get(k)).value or b"{}") for k in keys}
            return consumers, values
        finally:
            await nc.close()

    return asyncio.run(read())
