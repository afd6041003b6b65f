"""Agents' batches over HTTP: claims (claimed, taken, full, group), active, deleted."""

from __future__ import annotations

from typing import Any

import falcon.testing

from berth.db.engine import Database
from berth.pull.model import DELETE_STREAM
from tests.pull.conftest import MakeClient, NatsServer
from tests.pull.helpers import V1_2, add_hosts, call, claim, enqueue, flavor, show, states, take
from tests.scheduler.conftest import consumers_of


def _queued(client: falcon.testing.TestClient, count: int, **body: Any) -> tuple[str, list[str]]:
    got = enqueue(client, flavor="half", count=count, **body)
    assert got.status_code == 202, got.text
    return got.json["uuid"], got.json["instances"]


def _client(make_client: MakeClient, nats: NatsServer) -> falcon.testing.TestClient:
    client = make_client(nats.url)
    flavor(client, "half", {"VCPU": 2, "MEMORY_MB": 1024})  # two fit on a host
    return client


def test_claim_outcomes(db: Database, nats_server: NatsServer, make_client: MakeClient) -> None:
    client = _client(make_client, nats_server)
    h1, h2 = add_hosts(db, 2)
    request, (i1, i2, i3) = _queued(client, 3)

    assert [r["outcome"] for r in claim(client, (i1, h1, 0))] == ["claimed"]
    [again] = claim(client, (i1, h2, 0))
    assert again["outcome"] == "taken" and "claimed on " + h1 in again["reason"]
    [stale] = claim(client, (i2, h1, 1))
    assert stale["outcome"] == "taken" and "attempt 0, not 1" in stale["reason"]
    results = claim(client, (i2, h1, 0), (i3, h1, 0))
    assert [r["outcome"] for r in results] == ["claimed", "full"], results
    assert "VCPU" in results[1]["reason"]
    assert [r["outcome"] for r in claim(client, (i3, h2, 0))] == ["claimed"]

    assert consumers_of(db) == {i1: h1, i2: h1, i3: h2}
    shown = show(client, request)
    assert shown["state"] == "claimed"
    assert {i["uuid"]: i["host"] for i in shown["instances"]} == {i1: h1, i2: h1, i3: h2}


def test_a_batch_claims_in_one_call_and_refuses_what_does_not_fit(
    db: Database, nats_server: NatsServer, make_client: MakeClient
) -> None:
    client = _client(make_client, nats_server)
    hosts = add_hosts(db, 3)
    _, made = _queued(client, 7)
    plan = [(instance, hosts[n % 3], 0) for n, instance in enumerate(made)]
    plan.append((made[0], hosts[1], 0))  # twice in one batch
    plan.append(("00000000-0000-0000-0000-0000000000ff", hosts[0], 0))  # no such instance
    outcomes = [r["outcome"] for r in claim(client, *plan)]
    assert outcomes == ["claimed"] * 6 + ["full", "taken", "taken"], outcomes
    assert states(db) == {"claimed": 6, "queued": 1}


def test_a_host_without_the_required_trait_or_unknown_is_full(
    db: Database, nats_server: NatsServer, make_client: MakeClient
) -> None:
    client = make_client(nats_server.url)
    flavor(client, "avx", {"VCPU": 1}, required_traits=["HW_CPU_X86_AVX2"])
    plain, avx = add_hosts(db, 2, traits={2: {"HW_CPU_X86_AVX2"}})
    got = enqueue(client, flavor="avx", count=1)
    [instance] = got.json["instances"]
    [lacked] = claim(client, (instance, plain, 0))
    assert lacked["outcome"] == "full" and "HW_CPU_X86_AVX2" in lacked["reason"]
    [nowhere] = claim(client, (instance, "00000000-0000-0000-0000-0000000000ee", 0))
    assert nowhere["outcome"] == "full"
    assert [r["outcome"] for r in claim(client, (instance, avx, 0))] == ["claimed"]


def _group(client: falcon.testing.TestClient, policy: str) -> str:
    got = client.simulate_post("/scheduler/server_groups", json={"policy": policy}, headers=V1_2)
    assert got.status_code == 201, got.text
    return str(got.json["uuid"])


def test_affinity(db: Database, nats_server: NatsServer, make_client: MakeClient) -> None:
    client = _client(make_client, nats_server)
    h1, h2 = add_hosts(db, 2)
    _, (i1, i2) = _queued(client, 2, server_group=_group(client, "affinity"))
    assert [r["outcome"] for r in claim(client, (i1, h1, 0))] == ["claimed"]
    [refused] = claim(client, (i2, h2, 0))
    assert refused["outcome"] == "group" and "affinity" in refused["reason"]
    assert [r["outcome"] for r in claim(client, (i2, h1, 0))] == ["claimed"]
    assert consumers_of(db) == {i1: h1, i2: h1}


def test_anti_affinity_in_one_batch(
    db: Database, nats_server: NatsServer, make_client: MakeClient
) -> None:
    client = _client(make_client, nats_server)
    h1, h2 = add_hosts(db, 2)
    group = _group(client, "anti-affinity")
    _, (i1, i2, i3) = _queued(client, 3, server_group=group)
    results = claim(client, (i1, h1, 0), (i2, h1, 0), (i3, h2, 0))
    assert [r["outcome"] for r in results] == ["claimed", "group", "claimed"], results
    members = client.simulate_get(f"/scheduler/server_groups/{group}", headers=V1_2).json
    assert {m["instance_uuid"]: m["host"] for m in members["members"]} == {i1: h1, i3: h2}
    assert consumers_of(db) == {i1: h1, i3: h2}


def test_active_then_delete_through_the_host(
    db: Database, nats_server: NatsServer, make_client: MakeClient
) -> None:
    client = _client(make_client, nats_server)
    h1, h2 = add_hosts(db, 2)
    beat = call(client, "heartbeat", {"agent": "a1", "hosts": [h1, h2]})
    assert beat.status_code == 204, beat.text
    request, (i1, i2) = _queued(client, 2)
    claim(client, (i1, h1, 0), (i2, h2, 0))

    reports = {"instances": [{"instance": i1, "host": h1}, {"instance": i2, "host": h1}]}
    got = call(client, "active", reports)
    assert [r["outcome"] for r in got.json["results"]] == ["active", "taken"], got.text
    assert show(client, request)["state"] == "claimed"  # i2 is still only claimed

    deleted = client.simulate_delete(f"/scheduler/requests/{request}", headers=V1_2)
    assert {i["state"] for i in deleted.json["instances"]} == {"deleting"}
    sent = take(nats_server.url, "del-a1", stream=DELETE_STREAM)
    assert sorted((m["instance"], m["host"]) for _, m in sent) == sorted([(i1, h1), (i2, h2)])
    assert {msg_id for msg_id, _ in sent} == {f"{i1}:0:delete", f"{i2}:0:delete"}

    gone = call(client, "deleted", {"instances": [{"instance": i1, "host": h1}]})
    assert [r["outcome"] for r in gone.json["results"]] == ["deleted"]
    again = call(client, "deleted", {"instances": [{"instance": i1, "host": h1}]})
    assert [r["outcome"] for r in again.json["results"]] == ["deleted"]
    assert consumers_of(db) == {i2: h2}
    assert states(db) == {"deleted": 1, "deleting": 1}
