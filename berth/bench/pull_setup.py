"""What a pull run needs from berth over HTTP: flavors, a quota, the queues, a withdrawal.

One flavor per placement-bench size (``bench-micro`` ... ``bench-xxlarge``,
made once and reused: a replaced cloud keeps the flavors), a limit per
project that never refuses (so that the reserve step judges every request against
a real limit), the number of queues the server lists, and at the end the
withdrawal of what still waits (``DELETE`` of each request with a queued
instance: no host could take it).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from berth.bench.enqueue import HEADERS, project_names
from berth.bench.strategies import SIZES
from berth.bench.transport import Transport, json_of
from berth.db import tables as t
from berth.db.engine import Database
from berth.pull.model import ACTIVE, CLAIMED, DELETING, QUEUED

# placement-bench's names of the six sizes, smallest first (as SIZES).
SIZE_NAMES = ("micro", "small", "medium", "large", "xlarge", "xxlarge")
# The highest limit the API takes: no cloud here holds that many instances or VCPU.
# MEMORY_MB gets none: 10,000 placement-bench hosts hold more than 2**31 - 1 MB.
NO_LIMIT = {"instances": 2**31 - 1, "VCPU": 2**31 - 1}
TEARDOWN_TIMEOUT = 60.0  # seconds the agents get to confirm the deletes of a withdrawal


def flavor_names() -> tuple[str, ...]:
    """The flavor of each size index."""
    return tuple(f"bench-{name}" for name in SIZE_NAMES)


def ensure_flavors(transport: Transport) -> tuple[str, ...]:
    """The six flavors, made where missing (RuntimeError if one exists with other resources)."""
    listed = json_of(*transport.request("GET", "/scheduler/flavors", None, HEADERS), "flavors")
    existing = {f["name"]: f["resources"] for f in listed["flavors"]}
    names = flavor_names()
    for name, (vcpu, ram) in zip(names, SIZES, strict=True):
        wanted = {"VCPU": vcpu, "MEMORY_MB": ram}
        if name in existing and existing[name] != wanted:
            raise RuntimeError(f"flavor {name} exists with {existing[name]}, not {wanted}")
        if name not in existing:
            body = {"name": name, "resources": wanted}
            status, raw = transport.request("POST", "/scheduler/flavors", body, HEADERS)
            if status != 201:
                raise RuntimeError(f"POST /scheduler/flavors {name}: HTTP {status}: {raw[:300]!r}")
    return names


def set_quotas(transport: Transport, projects: int) -> None:
    """Limits that no run reaches for each of the lab's ``projects`` projects."""
    body = {"limits": NO_LIMIT}
    for project in project_names(projects):
        path = f"/scheduler/quotas/{project}"
        json_of(*transport.request("PUT", path, body, HEADERS), "set a project's quota")


def queue_count(transport: Transport) -> int:
    """How many queues the server lists (``GET /scheduler/pull/queues``)."""
    listed = json_of(*transport.request("GET", "/scheduler/pull/queues", None, HEADERS), "queues")
    return len(listed["queues"])


def _waiting(database_url: str) -> list[tuple[str, str]]:
    """(request, state) of every instance of the requests that have a queued instance."""
    PI = t.pull_instances
    waiting = select(PI.c.request_uuid).where(PI.c.state == QUEUED).distinct().subquery()
    query = select(PI.c.request_uuid, PI.c.state).where(
        PI.c.request_uuid.in_(select(waiting.c.request_uuid))
    )
    db = Database(database_url)
    try:
        with db.read() as conn:
            return [(str(r), str(s)) for r, s in conn.execute(query)]
    finally:
        db.dispose()


def _deleting(database_url: str) -> int:
    """How many instances wait for their host to confirm a delete."""
    PI = t.pull_instances
    db = Database(database_url)
    try:
        with db.read() as conn:
            return int(
                conn.execute(select(func.count()).where(PI.c.state == DELETING)).scalar() or 0
            )
    finally:
        db.dispose()


def withdraw(transport: Transport, database_url: str, concurrency: int = 8) -> dict[str, int]:
    """``DELETE`` every request that has a queued instance, and wait for the hosts' teardowns.

    A request of several instances (``--batch``) may have placed some: those
    are torn down with it.  ``withdrawn``: queued instances deleted;
    ``torn_down``: placed ones deleted with them (0 with one instance per request).
    """
    rows = _waiting(database_url)

    def delete(uuid: str) -> None:
        status, raw = transport.request("DELETE", f"/scheduler/requests/{uuid}", None, HEADERS)
        if status != 202:
            raise RuntimeError(f"DELETE /scheduler/requests/{uuid}: HTTP {status}: {raw[:200]!r}")

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(delete, sorted({request for request, _ in rows})))
    deadline = time.monotonic() + TEARDOWN_TIMEOUT
    while _deleting(database_url) and time.monotonic() < deadline:
        time.sleep(0.2)
    return {
        "withdrawn": sum(state == QUEUED for _, state in rows),
        "torn_down": sum(state in (CLAIMED, ACTIVE) for _, state in rows),
    }
