"""Three berth servers, one on each Galera node, written to by clients at once.

* The HTTP allocation workload of tests/api/test_concurrent_http.py, its
  clients spread over the three servers.
* Every kind of write at once (allocations, select_destinations,
  providers, inventories, traits, aggregates, resource classes, server
  groups, scheduler host and aggregate attributes) on a few shared
  providers: a certification failure is run again like any lost race, so
  no answer is a 5xx and no 409 comes from an unretried database error.
* Node 3 killed with SIGKILL while clients write, and rejoined: nothing
  acknowledged is lost, on any node.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from server import running_berth

from berth.db.engine import Database
from tests.api import test_concurrent_http as http_races
from tests.galera.conftest import NODES, Cluster, fresh_database
from tests.helpers import over_committed
from tests.scheduler.conftest import consumers_of

pytestmark = pytest.mark.slow

HEADERS = {"x-auth-token": "admin", "openstack-api-version": "placement 1.39"}
SERVER_DATABASE = f"berth_h{os.getpid()}"
# What berth answers when a transient database error reaches the edge
# without having been run again (berth/api/app.py).
UNRETRIED = "Another thread concurrently updated the data"


@dataclass
class Servers:
    """One berth server per node, with the logs they write."""

    bases: list[str]
    logs: list[Path]

    def retries(self) -> Counter[str]:
        """``berth_write_retries`` by operation, summed over the servers."""
        total: Counter[str] = Counter()
        for base in self.bases:
            text = httpx.get(f"{base}/metrics", timeout=30).text
            for line in text.splitlines():
                if line.startswith("berth_write_retries_total{"):
                    operation = line.split('operation="', 1)[1].split('"', 1)[0]
                    total[operation] += int(float(line.rsplit(" ", 1)[1]))
        return total

    def log_lines(self, needle: str) -> int:
        """Lines of the servers' logs that contain ``needle``."""
        return sum(p.read_text(errors="replace").count(needle) for p in self.logs)

    def unavailable_errors(self, server: int) -> Counter[str]:
        """The database error codes behind server ``server``'s "database unavailable" lines."""
        found: Counter[str] = Counter()
        for line in self.logs[server].read_text(errors="replace").splitlines():
            if '"database unavailable"' in line:
                codes = re.findall(r"\b(\d{4})\b", json.loads(line).get("error", ""))
                found[codes[0] if codes else "other"] += 1
        return found


@pytest.fixture(scope="module")
def servers(galera: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """Three ``berth serve`` (2 workers each), server i on node i, one database."""
    fresh_database(galera, SERVER_DATABASE).dispose()
    logs = [tmp_path_factory.mktemp("galera") / f"server{n}.log" for n in NODES]
    with contextlib.ExitStack() as stack:
        bases = [
            stack.enter_context(running_berth(url, workers=2, log_path=str(log)))
            for url, log in zip(galera.urls(SERVER_DATABASE), logs, strict=True)
        ]
        yield Servers(bases, logs)


def test_allocation_clients_on_three_servers(galera: Cluster, servers: Servers) -> None:
    """tests/api/test_concurrent_http's clients, through three nodes: only 204 and 409."""
    with httpx.Client(base_url=servers.bases[0], headers=HEADERS, timeout=60) as http:
        providers = http_races.setup(http)
    galera.settle()
    before = galera.conflicts()
    statuses, live = http_races.run_writers(servers.bases, providers)
    conflicts = galera.conflicts() - before
    assert sum(statuses.values()) > 50
    assert set(statuses) <= {204, 409}, statuses
    galera.settle()
    for base in servers.bases:
        http_races.check(base, providers, live)
    print(f"galera HTTP allocations: {dict(statuses)}, {conflicts} certification conflicts")


# -- every kind of write at once ---------------------------------------------------------

CLIENTS_PER_SERVER = 3
ROUNDS = 64
VCPU = 64
NAMES = [f"CUSTOM_GALERA_{i}" for i in range(3)]
AGGREGATES = [str(uuid.UUID(int=i + 1)) for i in range(3)]


@dataclass
class World:
    """The shared providers and server groups every client writes to, and the answers."""

    providers: list[str]
    groups: list[str]
    consumers: list[str] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, kind: str, r: httpx.Response) -> None:
        """Count the answer by kind, status and (for a 409) code."""
        key = f"{kind} {r.status_code}"
        if r.status_code == 409:
            code = r.json()["errors"][0].get("code")
            key += f" {code}{' UNRETRIED' if UNRETRIED in r.text else ''}"
        with self.lock:
            self.answers[key] += 1


@dataclass
class Turn:
    """What one client writes in one round: every client the same kind, on the same provider."""

    http: httpx.Client
    rng: random.Random
    round: int
    provider: str
    world: World

    def replace(self, what: str, value: object) -> httpx.Response:
        """PUT the provider's ``what`` (traits, ...) with the generation just read."""
        path = f"/resource_providers/{self.provider}/{what}"
        generation = self.http.get(path).json()["resource_provider_generation"]
        return self.http.put(path, json={"resource_provider_generation": generation, what: value})


def _inventories(turn: Turn) -> httpx.Response:
    return turn.replace("inventories", {"VCPU": {"total": turn.rng.randint(VCPU // 2, VCPU)}})


def _provider_traits(turn: Turn) -> httpx.Response:
    return turn.replace("traits", turn.rng.sample(NAMES, turn.rng.randint(0, len(NAMES))))


def _aggregates(turn: Turn) -> httpx.Response:
    chosen = turn.rng.sample(AGGREGATES, turn.rng.randint(0, len(AGGREGATES)))
    return turn.replace("aggregates", chosen)


def _new_trait(turn: Turn) -> httpx.Response:
    return turn.http.put(f"/traits/CUSTOM_GALERA_ROUND_{turn.round}")


def _new_resource_class(turn: Turn) -> httpx.Response:
    return turn.http.put(f"/resource_classes/CUSTOM_GALERA_ROUND_{turn.round}")


def _rename_provider(turn: Turn) -> httpx.Response:
    name = f"{turn.provider}-{turn.rng.randint(0, 9)}"
    return turn.http.put(f"/resource_providers/{turn.provider}", json={"name": name})


def _allocations(turn: Turn) -> httpx.Response:
    world = turn.world
    with world.lock:
        old = world.consumers.pop() if len(world.consumers) > 30 else None
    if old:
        return turn.http.delete(f"/allocations/{old}")
    body = {
        "allocations": {turn.provider: {"resources": {"VCPU": turn.rng.randint(1, 2)}}},
        "project_id": "p",
        "user_id": "u",
        "consumer_generation": None,
        "consumer_type": "INSTANCE",
    }
    consumer = str(uuid.uuid4())
    r = turn.http.put(f"/allocations/{consumer}", json=body)
    if r.is_success:
        with world.lock:
            world.consumers.insert(0, consumer)
    return r


def _host_attributes(turn: Turn) -> httpx.Response:
    body = {"disabled": False, "availability_zone": f"az{turn.rng.randint(0, 2)}"}
    return turn.http.put(f"/scheduler/hosts/{turn.provider}", json=body)


def _aggregate_metadata(turn: Turn) -> httpx.Response:
    aggregate = AGGREGATES[turn.round % len(AGGREGATES)]
    body = {"metadata": {"weight": str(turn.rng.randint(0, 9))}}
    return turn.http.put(f"/scheduler/aggregates/{aggregate}/metadata", json=body)


def _server_group_members(turn: Turn) -> httpx.Response:
    group = turn.world.groups[turn.round % len(turn.world.groups)]
    member = f"/scheduler/server_groups/{group}/members/{uuid.UUID(int=turn.rng.randint(1, 6))}"
    if turn.rng.random() < 0.2:
        return turn.http.delete(member)
    return turn.http.put(member, json={"host": turn.provider})


def _select_destinations(turn: Turn) -> httpx.Response:
    group = {"uuid": turn.world.groups[0], "policy": "soft-anti-affinity"}
    body = {"flavor": {"resources": {"VCPU": 1}}, "num_instances": 2, "server_group": group}
    return turn.http.post("/scheduler/select_destinations", json=body)


KINDS = {
    "allocations": _allocations,
    "select destinations": _select_destinations,
    "inventories": _inventories,
    "provider traits": _provider_traits,
    "aggregates": _aggregates,
    "new trait": _new_trait,
    "new resource class": _new_resource_class,
    "provider rename": _rename_provider,
    "host attributes": _host_attributes,
    "aggregate metadata": _aggregate_metadata,
    "server group members": _server_group_members,
}


def _client(base: str, seed: int, world: World, start: threading.Barrier) -> None:
    """ROUNDS writes, each begun with every other client's (the kinds in turn)."""
    rng = random.Random(seed)
    kinds = list(KINDS.items())
    with httpx.Client(base_url=base, headers=HEADERS, timeout=60) as http:
        for n in range(ROUNDS):
            kind, write = kinds[n % len(kinds)]
            turn = Turn(http, rng, n, world.providers[n % len(world.providers)], world)
            start.wait()
            world.note(kind, write(turn))


def _world(base: str) -> World:
    with httpx.Client(base_url=base, headers=HEADERS, timeout=60) as http:
        for name in NAMES:
            assert http.put(f"/traits/{name}").is_success
        providers = []
        for _ in range(3):
            rp = str(uuid.uuid4())
            assert http.post("/resource_providers", json={"name": rp, "uuid": rp}).is_success
            body = {"resource_provider_generation": 0, "inventories": {"VCPU": {"total": VCPU}}}
            assert http.put(f"/resource_providers/{rp}/inventories", json=body).is_success
            providers.append(rp)
        groups = []
        for policy in ("soft-anti-affinity", "affinity"):
            r = http.post("/scheduler/server_groups", json={"policy": policy})
            assert r.status_code == 201, r.text
            groups.append(r.json()["uuid"])
    return World(providers, groups)


def test_every_kind_of_write_on_three_servers(galera: Cluster, servers: Servers) -> None:
    """All clients write the same thing at once through three nodes: certification
    failures are retried, so no 5xx and no 409 from an unretried database error."""
    world = _world(servers.bases[0])
    galera.settle()
    before, retries_before = galera.conflicts(), servers.retries()
    clients = [(base, n) for base in servers.bases for n in range(CLIENTS_PER_SERVER)]
    start = threading.Barrier(len(clients))
    threads = [
        threading.Thread(target=_client, args=(base, seed, world, start))
        for seed, (base, _) in enumerate(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conflicts = galera.conflicts() - before
    retries = servers.retries() - retries_before
    print(f"galera every write: {conflicts} certification conflicts, retries {dict(retries)}")
    for key, count in sorted(world.answers.items()):
        print(f"  {key}: {count}")
    assert sum(world.answers.values()) == len(clients) * ROUNDS
    assert not [k for k in world.answers if " 5" in k or "UNRETRIED" in k], world.answers
    assert servers.log_lines("transient database error") == 0
    assert servers.log_lines("unexpected error") == 0


# -- a node killed and rejoined mid-run ----------------------------------------------------

KILLED = 3
KILL_AFTER, RUN_SECONDS = 3.0, 20.0
KILL_VCPU = 100  # per provider: room for about a hundred live allocations each
# What a server answers while its node is away: 503 with Retry-After (a
# database outage, docs/operations.md), never a 500.
NODE_AWAY = {503}
# The errors behind those answers: the killed node refuses connections (2003)
# or drops them (2013).  While it rejoins, the survivors may leave the primary
# component for about a second: statements then fail with 1047 ("WSREP has not
# yet prepared node for application use") and commits with 1180 ("Not
# connected to Primary Component").  Nothing was written in any of these cases.
AWAY_ERRORS = {"2003", "2013", "1047", "1180"}
NON_PRIMARY_ERRORS = {"1047", "1180"}
# On any node: until the cluster evicts the killed node, commits stall with their row
# locks held, so a writer waiting for one may run out the lock timeout (1205, lock wait
# timeout).  berth answers that 503 with Retry-After by design, not retried in place
# (docs/configuration.md, BERTH_DATABASE_LOCK_TIMEOUT); nothing was written.
LOCK_WAIT_ERRORS = {"1205"}


def test_a_node_killed_and_rejoined_mid_run_loses_nothing(
    galera: Cluster, servers: Servers
) -> None:
    """SIGKILL node 3 while clients write through all three servers, then let it rejoin:
    every acknowledged write is on all three nodes and nothing is over capacity.  Only
    the killed node's server fails requests for want of its node, and the others only
    in the survivors' moment outside the primary component, if there is one, or when
    a lock wait runs out while commits stall in the kill window."""
    with httpx.Client(base_url=servers.bases[0], headers=HEADERS, timeout=60) as http:
        providers = http_races.setup(http, vcpu=KILL_VCPU)
    galera.settle()
    results: list[tuple[Counter[int], list[str]]] = [(Counter(), [])] * len(servers.bases)

    def write(i: int) -> None:
        results[i] = http_races.run_writers([servers.bases[i]], providers, RUN_SECONDS, 3)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(servers.bases))]
    for t in threads:
        t.start()
    time.sleep(KILL_AFTER)
    galera.kill(KILLED)
    killed_at = time.monotonic()
    rejoined = galera.start_node(KILLED)
    away = time.monotonic() - killed_at
    for t in threads:
        t.join()
    galera.settle()
    errors = [servers.unavailable_errors(i) for i in range(len(NODES))]
    for (statuses, _), node, found in zip(results, NODES, errors, strict=True):
        print(f"galera node kill: server on node {node} answered {dict(statuses)}, {dict(found)}")
    live = {consumer for _, written in results for consumer in written}
    print(f"galera node kill: node {KILLED} away {away:.1f}s; {len(live)} acknowledged writes")
    print(rejoined.strip())
    for node in NODES:
        db = Database(galera.url(node, SERVER_DATABASE, sync_wait=True))
        try:
            assert live - set(consumers_of(db)) == set(), f"acknowledged writes lost on node {node}"
            # (The other tests' providers share the database: the inventories test
            # may shrink a provider below its usage, as Placement allows.)
            assert [p for p in over_committed(db) if p.split(":")[0] in providers] == []
        finally:
            db.dispose()
    for (statuses, _), node, found in zip(results, NODES, errors, strict=True):
        assert set(statuses) <= {204, 409, *NODE_AWAY}, (node, statuses)
        # The killed node's server may also lose a connection mid-commit ("other").
        allowed = AWAY_ERRORS | {"other"} if node == KILLED else NON_PRIMARY_ERRORS
        allowed |= LOCK_WAIT_ERRORS
        assert set(found) <= allowed, found
        assert bool(statuses[503]) == bool(found), (statuses, found)
        assert statuses[204] > 0, (node, statuses)
    assert servers.log_lines('"unexpected error"') == 0
    # The rejoined node's server writes again, without a restart.
    after, _ = http_races.run_writers([servers.bases[KILLED - 1]], providers, 1.0, 1)
    assert set(after) <= {204, 409} and after[204] > 0, after
