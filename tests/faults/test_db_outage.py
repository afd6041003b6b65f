"""A database outage under load: 503 with Retry-After while it lasts, quick recovery, nothing lost.

A real ``berth serve`` (2 workers) runs over a private PostgreSQL or MariaDB
server (tests/faults/private_db.py) while 16 writer threads put and delete
allocations and create providers over HTTP, 8 scheduler threads call
``POST /scheduler/select_destinations`` (and delete what they placed) and a
probe asks ``/healthcheck/ready``.  The database is then stopped cleanly for
``BERTH_TEST_OUTAGE_SECONDS`` (10 by default), started again, and later
killed (a crash: no shutdown, recovery at start) and started at once.

While the database is away every answer is a 503 with Retry-After in
Placement's error format (or a 2xx/409 of a request that finished first),
none in flight then takes longer than ``BOUND`` seconds (nor any other
longer than ``HEALTHY_BOUND``), and readiness says 503.  From
``RECOVERY`` seconds after the database answers again no answer is a 503,
and every kind of request succeeds again (the load runs on until it has, or
``SETTLE_LIMIT`` seconds: a loaded machine answers slowly).  Afterwards:
nothing is over capacity, every acknowledged write is in the database (and
every acknowledged delete is not), and each worker's in-memory
index agrees with the database through ``GET /allocation_candidates``.

The measurements (time to the first 503, time to the first success after
the database returns, slowest answer) are printed: run with ``-s``.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from server import running_berth
from sqlalchemy import select

from berth.db import migrate
from berth.db import tables as t
from berth.db.engine import Database
from berth.placement import catalog
from tests.faults.private_db import PrivateServer
from tests.helpers import over_committed
from tests.scheduler.conftest import usage, write_cloud

OUTAGE = float(os.environ.get("BERTH_TEST_OUTAGE_SECONDS", "10"))
WRITERS = 16
SCHEDULERS = 8
HOSTS = 16
VCPUS = 12  # per host: the threads' consumers (16 x 8 + 8 x 4 VCPUs) can fill some hosts
HELD_BY_WRITER = 8
HELD_BY_SCHEDULER = 4
INVENTORY = {"VCPU": (VCPUS, 0, 1, VCPUS, 1, 1.0), "MEMORY_MB": (65536, 0, 1, 65536, 1, 1.0)}
WARM = 3.0  # seconds of load before the first fault
SETTLE = 4.0  # seconds of load at least after each return
# At most this long after a return, until every kind of request succeeded again from
# RECOVERY on (a loaded machine answers slowly, not wrongly).
SETTLE_LIMIT = 60.0
RECOVERED = ("allocation", "schedule", "ready")
BOUND = 8.0  # no answer during an outage may take longer (connect timeout 5 s, plus queueing)
# Nor any answer with the database up: this test is not about speed, but an answer this slow
# would be a request left waiting on something the outage broke.
HEALTHY_BOUND = 30.0
RECOVERY = 2.0  # from the database answering to berth answering without 503
PAUSE_AFTER_503 = 0.05  # a client backs off a little (it would honour Retry-After)
HEADERS = {"x-auth-token": "admin", "openstack-api-version": "placement 1.36"}
OK = {200, 201, 204}


@dataclass
class Call:
    """One HTTP request of the load and its answer."""

    kind: str
    started: float
    seconds: float
    status: int  # 0: no HTTP answer at all
    retry_after: str | None = None
    error: dict[str, Any] | None = None


@dataclass
class Load:
    """The load's threads and what the server acknowledged."""

    base: str
    stop: threading.Event = field(default_factory=threading.Event)
    calls: list[Call] = field(default_factory=list)
    allocated: dict[str, tuple[str, int]] = field(default_factory=dict)  # consumer: host, vcpus
    deleted: set[str] = field(default_factory=set)
    providers: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)

    def call(
        self, http: httpx.Client, kind: str, method: str, url: str, **kw: Any
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = http.request(method, url, **kw)
        except httpx.HTTPError as exc:
            self.calls.append(Call(kind, started, time.monotonic() - started, 0))
            self.failures.append(f"{kind} {method} {url}: {exc!r}")
            return None
        status = response.status_code
        call = Call(
            kind, started, time.monotonic() - started, status, response.headers.get("retry-after")
        )
        if status >= 500:
            try:
                call.error = response.json()["errors"][0]
            except (ValueError, KeyError, IndexError):
                call.error = {"text": response.text[:300]}
        self.calls.append(call)
        if status == 503:
            time.sleep(PAUSE_AFTER_503)
        return response

    def ok(self, *args: Any, **kw: Any) -> httpx.Response | None:
        response = self.call(*args, **kw)
        return response if response is not None and response.status_code in OK else None

    def delete(self, http: httpx.Client, consumer: str) -> None:
        if self.ok(http, "delete", "DELETE", f"/allocations/{consumer}"):
            del self.allocated[consumer]
            self.deleted.add(consumer)
        else:  # not acknowledged: it may exist or not
            self.allocated.pop(consumer, None)

    def writer(self, seed: int, hosts: list[str]) -> None:
        rng = random.Random(seed)
        held: list[str] = []
        with httpx.Client(base_url=self.base, headers=HEADERS, timeout=60) as http:
            for n in range(1_000_000):
                if self.stop.is_set():
                    return
                if n % 10 == 9:
                    rp = str(uuid.uuid4())
                    body = {"name": f"w{seed}-{n}", "uuid": rp}
                    if self.ok(http, "provider", "POST", "/resource_providers", json=body):
                        self.providers.add(rp)
                elif len(held) >= HELD_BY_WRITER:
                    self.delete(http, held.pop(0))
                else:
                    consumer, host, vcpus = str(uuid.uuid4()), rng.choice(hosts), rng.choice((1, 2))
                    body = {
                        "allocations": {host: {"resources": {"VCPU": vcpus, "MEMORY_MB": 64}}},
                        "project_id": "p",
                        "user_id": "u",
                        "consumer_generation": None,
                    }
                    if self.ok(http, "allocation", "PUT", f"/allocations/{consumer}", json=body):
                        self.allocated[consumer] = (host, vcpus)
                        held.append(consumer)

    def scheduler(self) -> None:
        held: list[str] = []
        body = {
            "flavor": {"resources": {"VCPU": 1, "MEMORY_MB": 64}},
            "num_instances": 1,
            "project_id": "p",
            "user_id": "u",
        }
        with httpx.Client(base_url=self.base, headers=HEADERS, timeout=60) as http:
            while not self.stop.is_set():
                if len(held) >= HELD_BY_SCHEDULER:
                    self.delete(http, held.pop(0))
                    continue
                url = "/scheduler/select_destinations"
                response = self.ok(http, "schedule", "POST", url, json=body)
                if response is None:
                    continue
                for selection in response.json()["selections"]:
                    self.allocated[selection["instance_uuid"]] = (selection["host"]["uuid"], 1)
                    held.append(selection["instance_uuid"])

    def ready(self) -> None:
        with httpx.Client(base_url=self.base, timeout=60) as http:
            while not self.stop.is_set():
                self.call(http, "ready", "GET", "/healthcheck/ready")
                time.sleep(0.1)

    def recovered(self, since: float) -> bool:
        """Every kind in RECOVERED had an answer in OK from a request started at ``since``
        or later."""
        kinds = {c.kind for c in list(self.calls) if c.started >= since and c.status in OK}
        return kinds >= set(RECOVERED)

    def run(self, hosts: list[str]) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self.writer, args=(seed, hosts)) for seed in range(WRITERS)
        ]
        threads += [threading.Thread(target=self.scheduler) for _ in range(SCHEDULERS)]
        threads.append(threading.Thread(target=self.ready))
        for thread in threads:
            thread.start()
        return threads


@dataclass
class Fault:
    """One outage: when the database went, when it answered again."""

    name: str
    down: float  # stopping it began
    gone: float = 0.0  # stopping it ended: the server is down (a kill: at once)
    starting: float = 0.0  # starting it again began
    up: float = 0.0  # it answered again
    until: float = 0.0  # the next fault began, or the load stopped


def _fault(
    name: str, take_down: Callable[[], None], server: PrivateServer, outage: float, load: Load
) -> Fault:
    """Take the database down for ``outage`` s, start it, let the load run SETTLE s more
    and until every kind of request succeeded again (SETTLE_LIMIT at most)."""
    fault = Fault(name, time.monotonic())
    take_down()
    fault.gone = time.monotonic()
    time.sleep(outage)
    fault.starting = time.monotonic()
    server.start()
    fault.up = time.monotonic()
    time.sleep(SETTLE)
    while not load.recovered(fault.up + RECOVERY) and time.monotonic() < fault.up + SETTLE_LIMIT:
        time.sleep(0.1)
    fault.until = time.monotonic()
    return fault


def _between(calls: list[Call], start: float, end: float) -> list[Call]:
    return [c for c in calls if start <= c.started < end]


def _answered(calls: list[Call], start: float, end: float) -> list[Call]:
    """Calls that started and ended within [start, end)."""
    return [c for c in calls if start <= c.started and c.started + c.seconds < end]


def _allocations(db: Database) -> dict[str, dict[str, int]]:
    """Consumer -> host uuid -> VCPUs, from the database."""
    A, RP, RC = t.allocations, t.resource_providers, t.resource_classes
    query = (
        select(A.c.consumer_id, RP.c.uuid, A.c.used)
        .select_from(
            A.join(RP, A.c.resource_provider_id == RP.c.id).join(
                RC, A.c.resource_class_id == RC.c.id
            )
        )
        .where(RC.c.name == "VCPU")
    )
    out: dict[str, dict[str, int]] = {}
    with db.read() as conn:
        for consumer, host, used in conn.execute(query):
            out.setdefault(consumer, {})[host] = int(used)
    return out


def _worker_views(base: str, workers: int) -> dict[int, tuple[dict[str, Any], list[str]]]:
    """Each worker's candidates and provider list, through one connection per worker.

    A keep-alive connection stays with the worker that accepted it, and
    ``/healthcheck/ready`` names that worker.
    """
    views: dict[int, tuple[dict[str, Any], list[str]]] = {}
    for _ in range(200):
        with httpx.Client(base_url=base, headers=HEADERS, timeout=30) as http:
            ready = http.get("/healthcheck/ready")
            assert ready.status_code == 200, ready.text
            pid = ready.json()["worker"]
            if pid in views:
                continue
            candidates = http.get(
                "/allocation_candidates", params={"resources": "VCPU:1", "limit": "1000"}
            )
            providers = http.get("/resource_providers")
            assert candidates.status_code == providers.status_code == 200
            uuids = [rp["uuid"] for rp in providers.json()["resource_providers"]]
            views[pid] = (candidates.json(), uuids)
        if len(views) == workers:
            break
    return views


def _check_views(db: Database, base: str) -> None:
    """Every worker's index sees every provider's usage as the database does."""
    used = {host: classes.get("VCPU", 0) for host, classes in usage(db).items()}
    with db.read() as conn:
        uuids = set(conn.execute(select(t.resource_providers.c.uuid)).scalars())
        inventory_hosts = set(
            conn.execute(
                select(t.resource_providers.c.uuid).where(
                    t.resource_providers.c.id.in_(select(t.inventories.c.resource_provider_id))
                )
            ).scalars()
        )
    views = _worker_views(base, 2)
    assert len(views) == 2, f"reached only workers {sorted(views)}"
    for pid, (candidates, listed) in views.items():
        assert set(listed) == uuids, f"worker {pid}: provider list differs from the database"
        summaries = candidates["provider_summaries"]
        with_room = {h for h in inventory_hosts if used.get(h, 0) < VCPUS}
        assert set(summaries) == with_room, f"worker {pid}: candidates differ from the database"
        for host, summary in summaries.items():
            seen = summary["resources"]["VCPU"]["used"]
            assert seen == used.get(host, 0), f"worker {pid}: {host} used {seen}, db {used}"


def _summary(name: str, calls: list[Call], faults: list[Fault]) -> list[str]:
    lines = [f"{name}: {len(calls)} requests, statuses {dict(Counter(c.status for c in calls))}"]
    zero = faults[0].down if faults else 0.0
    for slow in sorted(calls, key=lambda c: -c.seconds)[:3]:
        lines.append(
            f"  slow answer {slow.seconds:.3f}s ({slow.kind}, {slow.status}), "
            f"started {slow.started - zero:+.2f}s from the first fault: {slow.error}"
        )
    for fault in faults:
        after = [c for c in calls if c.started + c.seconds >= fault.down and c.status == 503]
        first_503 = min((c.started + c.seconds for c in after), default=float("nan"))
        ok_after = [c for c in _between(calls, fault.up, fault.until) if c.status in OK]
        first_ok = {
            kind: min((c.started + c.seconds for c in ok_after if c.kind == kind), default=0.0)
            - fault.up
            for kind in ("allocation", "schedule", "ready", "provider", "delete")
        }
        last_503 = max(
            (c.started for c in _answered(calls, fault.up, fault.until) if c.status == 503),
            default=fault.up,
        )
        lines.append(
            f"  {fault.name}: down {fault.up - fault.down:.1f}s; first 503 "
            f"{first_503 - fault.down:.3f}s after the stop; after the database answered: "
            f"last 503 started at +{last_503 - fault.up:.3f}s, first success "
            + ", ".join(f"{k} +{v:.3f}s" for k, v in first_ok.items())
        )
    return lines


@pytest.mark.slow
def test_outage_under_load(private_server: PrivateServer, tmp_path: Path) -> None:
    url = private_server.create_database("berth_outage")
    db = Database(url)
    migrate.upgrade(db)
    catalog.sync(db)
    hosts = write_cloud(db, HOSTS, inventories=INVENTORY)
    log_path = tmp_path / "server.log"
    faults: list[Fault] = []
    load: Load | None = None
    try:
        with running_berth(url, workers=2, log_path=str(log_path)) as base:
            load = Load(base)
            threads = load.run(hosts)
            try:
                time.sleep(WARM)
                server = private_server
                faults.append(_fault("stopped", server.stop, server, OUTAGE, load))
                faults.append(_fault("killed", server.kill, server, 0.0, load))
            finally:
                load.stop.set()
                for thread in threads:
                    thread.join(timeout=120)
            db.dispose()  # this test's own connections predate the faults
            _check(load, faults, db)
            _check_views(db, base)
    except AssertionError:
        print(log_path.read_text(errors="replace")[-4000:])
        raise
    finally:
        if load is not None:
            print("\n".join(_summary(private_server.kind, load.calls, faults)))
        db.dispose()


def _check(load: Load, faults: list[Fault], db: Database) -> None:
    calls = load.calls
    assert not load.failures, load.failures[:5]
    statuses = Counter(c.status for c in calls)
    assert set(statuses) <= OK | {400, 409, 503}, statuses
    # From the stop until RECOVERY after the database answered again: each request that
    # was in flight then waited at most BOUND.
    windows = [(f.down, f.up + RECOVERY) for f in faults]
    during = [
        c
        for c in calls
        if any(c.started < end and c.started + c.seconds > start for start, end in windows)
    ]
    since = [[round(c.started - f.down, 2) for f in faults] for c in during]
    slow = [(c, s) for c, s in zip(during, since, strict=True) if c.seconds > BOUND]
    assert not slow, f"answers slower than {BOUND}s (start from each fault's stop): {slow[:5]}"
    slow_healthy = [c for c in calls if c.seconds > HEALTHY_BOUND]
    assert not slow_healthy, f"answers slower than {HEALTHY_BOUND}s: {slow_healthy[:5]}"
    for call in calls:
        if call.status == 503:
            assert call.retry_after is not None and int(call.retry_after) > 0, call
            assert call.error is not None, call
            if call.kind != "ready":
                assert call.error["status"] == 503 and "database" in call.error["detail"], call
    for fault in faults:
        if fault.name == "stopped":
            # From a moment after the server is down until it is started again: 503 only.
            # (Not from when stopping began: under load, pg_ctl itself may take longer than
            # that moment to start and signal the server, which answers meanwhile.)
            during = _answered(calls, fault.gone + 0.5, fault.starting)
            assert Counter(c.status for c in during) == Counter({503: len(during)}), Counter(
                (c.kind, c.status) for c in during
            )
            assert {c.kind for c in during} >= set(RECOVERED)
        # Recovery: from RECOVERY seconds after the database answered, no 503.
        late = [c for c in _answered(calls, fault.up + RECOVERY, fault.until) if c.status == 503]
        assert not late, (
            f"503s more than {RECOVERY}s after the {fault.name} database returned: {late[:3]}"
        )
        back = _answered(calls, fault.up + RECOVERY, fault.until)
        assert {c.kind for c in back if c.status in OK} >= set(RECOVERED)
    # Nothing over capacity; every acknowledged write there, every acknowledged delete gone.
    assert over_committed(db) == []
    found = _allocations(db)
    for consumer, (host, vcpus) in load.allocated.items():
        assert found.get(consumer) == {host: vcpus}, (consumer, host, vcpus, found.get(consumer))
    assert not load.deleted & set(found), "an acknowledged delete is undone"
    with db.read() as conn:
        providers = set(conn.execute(select(t.resource_providers.c.uuid)).scalars())
    assert load.providers <= providers, "an acknowledged provider is missing"


@pytest.mark.slow
def test_worker_started_during_outage(private_postgres: PrivateServer, tmp_path: Path) -> None:
    """A worker that dies while the database is away is replaced, and the new one serves."""
    if not private_postgres.answers():
        private_postgres.start()
    url = private_postgres.create_database("berth_respawn")
    db = Database(url)
    migrate.upgrade(db)
    catalog.sync(db)
    write_cloud(db, 2, inventories=INVENTORY)
    db.dispose()
    log_path = tmp_path / "server.log"
    try:
        with running_berth(url, workers=2, log_path=str(log_path)) as base:
            before = set(_worker_views(base, 2))
            private_postgres.stop()
            os.kill(min(before), signal.SIGKILL)
            time.sleep(3)  # granian starts a new worker meanwhile
            answer = httpx.get(f"{base}/resource_providers", headers=HEADERS, timeout=30)
            assert answer.status_code == 503
            private_postgres.start()
            time.sleep(RECOVERY)
            after = set(_worker_views(base, 2))
            assert len(after) == 2 and after - before, (before, after)
    except AssertionError:
        print(log_path.read_text(errors="replace")[-4000:])
        raise
