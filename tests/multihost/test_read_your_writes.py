"""A write acknowledged by one berth host is seen by another host's next read.

Three hosts in namespaces of their own on one PostgreSQL (and on the Galera
cluster, one node per host), plus the HAProxy front: for every ordered pair
of them (the front included) a provider, its inventory, an allocation and
its removal are written through the first and read at once through the
second, by the database reads (``GET /resource_providers/...``,
``/allocations``, ``/usages``) and by the in-memory index that the change
feed keeps (``GET /allocation_candidates``); then a client that round robins
its own requests over the hosts reads what it wrote through each one.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.engine import make_url

from berth.bench import multihost
from berth.bench.galera import Cluster
from tests.galera.conftest import fresh_database
from tests.multihost.cloud import allocation_body, candidate_roots, client, create_provider

pytestmark = pytest.mark.namespaces

VCPU = 8


def _check_pair(writer: httpx.Client, reader: httpx.Client) -> None:
    """Write through ``writer``; every read through ``reader`` right after sees it."""
    rp = create_provider(writer, VCPU)
    shown = reader.get(f"/resource_providers/{rp}")
    assert shown.status_code == 200, shown.text
    inventory = reader.get(f"/resource_providers/{rp}/inventories").json()
    assert inventory["inventories"]["VCPU"]["total"] == VCPU
    assert inventory["resource_provider_generation"] == shown.json()["generation"] == 1
    assert candidate_roots(reader, VCPU, rp) == {rp}

    consumer = str(uuid.uuid4())
    r = writer.put(f"/allocations/{consumer}", json=allocation_body(rp, VCPU - 2))
    assert r.status_code == 204, r.text
    seen = reader.get(f"/allocations/{consumer}").json()["allocations"]
    assert seen == {rp: {"generation": 2, "resources": {"VCPU": VCPU - 2}}}
    assert reader.get(f"/resource_providers/{rp}/usages").json()["usages"]["VCPU"] == VCPU - 2
    assert candidate_roots(reader, 3, rp) == set()
    assert candidate_roots(reader, 2, rp) == {rp}

    r = writer.delete(f"/allocations/{consumer}")
    assert r.status_code == 204, r.text
    assert reader.get(f"/allocations/{consumer}").json()["allocations"] == {}
    assert candidate_roots(reader, VCPU, rp) == {rp}


def check_every_pair(run: multihost.Deployment) -> int:
    """:func:`_check_pair` for every ordered pair of hosts and the front; the pairs checked."""
    bases = [*run.urls, *([run.front_url] if run.front_url else [])]
    clients = [client(base) for base in bases]
    try:
        pairs = list(itertools.permutations(clients, 2))
        for writer, reader in pairs:
            _check_pair(writer, reader)
    finally:
        for http in clients:
            http.close()
    return len(pairs)


def check_round_robin(run: multihost.Deployment, rounds: int = 6) -> None:
    """A client spreading its own requests: each one goes to the next host."""
    hosts = run.round_robin()
    created = []
    for _ in range(rounds):
        with client(next(hosts)) as writer, client(next(hosts)) as reader:
            created.append(create_provider(writer, VCPU))
            assert reader.get(f"/resource_providers/{created[-1]}").status_code == 200
        with client(next(hosts)) as reader:
            assert candidate_roots(reader, VCPU) >= set(created)


def test_writes_on_one_host_are_read_on_the_others_postgresql(postgres_url: str) -> None:
    with multihost.deploy([postgres_url], hosts=3) as run:
        started = time.monotonic()
        pairs = check_every_pair(run)
        check_round_robin(run)
    print(f"read-your-writes, PostgreSQL: {pairs} pairs in {time.monotonic() - started:.1f} s")


@pytest.fixture
def galera_urls(galera: Cluster) -> Iterator[list[str]]:
    """A fresh migrated database on the cluster, as each node serves it (reads waiting for
    replication, as docs/deploy.md asks of hosts spread over the nodes)."""
    name = f"berth_mh{uuid.uuid4().hex[:8]}"
    fresh_database(galera, name).dispose()
    yield galera.urls(name, sync_wait=True)


@pytest.mark.slow
def test_writes_on_one_host_are_read_on_the_others_galera(galera_urls: list[str]) -> None:
    """Host i on node i: a write certified through one node is read through another."""
    with multihost.deploy(galera_urls, hosts=3) as run:
        nodes = [make_url(url).port for url in galera_urls]
        assert [make_url(h.database_url).port for h in run.hosts] == nodes
        started = time.monotonic()
        pairs = check_every_pair(run)
    print(f"read-your-writes, Galera: {pairs} pairs in {time.monotonic() - started:.1f} s")
