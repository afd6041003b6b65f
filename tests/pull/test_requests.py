"""``/scheduler/requests`` over HTTP on every database, with a real NATS server."""

from __future__ import annotations

from sqlalchemy import func, select

from berth.db import tables as t
from berth.db.engine import Database
from berth.pull.model import queue_name
from tests.pull.conftest import MakeClient, NatsServer
from tests.pull.helpers import V1_2, enqueue, flavor, show, states, take


def _rows(db: Database) -> dict[str, int]:
    counted = {}
    with db.read() as conn:
        for table in (t.pull_requests, t.pull_instances, t.quota_reservations):
            counted[table.name] = conn.execute(select(func.count()).select_from(table)).scalar()
    return counted


def test_enqueue_show_delete(
    db: Database, nats_server: NatsServer, make_client: MakeClient
) -> None:
    client = make_client(nats_server.url)
    small = flavor(client, "small", {"VCPU": 1, "MEMORY_MB": 512})
    got = enqueue(client, flavor="small", count=3)
    assert got.status_code == 202, got.text
    assert got.json["state"] == "queued" and len(got.json["instances"]) == 3
    request = got.json["uuid"]

    messages = take(nats_server.url, queue_name(small["uuid"]))
    assert sorted(m["instance"] for _, m in messages) == sorted(got.json["instances"])
    msg_id, first = messages[0]
    assert msg_id == f"{first['instance']}:0"
    assert first["resources"] == {"MEMORY_MB": 512, "VCPU": 1}
    assert (first["project_id"], first["user_id"], first["attempt"]) == ("p1", "u1", 0)
    assert first["request"] == request and first["queue"] == queue_name(small["uuid"])

    shown = show(client, request)
    assert shown["state"] == "queued" and shown["flavor"] == small["uuid"]
    assert [i["state"] for i in shown["instances"]] == ["queued"] * 3

    deleted = client.simulate_delete(f"/scheduler/requests/{request}", headers=V1_2)
    assert deleted.status_code == 202, deleted.text
    assert {i["state"] for i in deleted.json["instances"]} == {"deleted"}
    assert states(db) == {"deleted": 3}
    assert _rows(db)["quota_reservations"] == 0


def test_capabilities_make_their_own_queue(
    db: Database, nats_server: NatsServer, make_client: MakeClient
) -> None:
    client = make_client(nats_server.url)
    gpu = flavor(client, "gpu", {"VCPU": 1}, required_traits=["HW_CPU_X86_AVX2"])
    client.simulate_put(
        "/traits/CUSTOM_GPU_A100", headers={"openstack-api-version": "placement 1.6"}
    )
    got = enqueue(client, flavor=gpu["uuid"], capabilities=["CUSTOM_GPU_A100"])
    assert got.status_code == 202, got.text
    name = queue_name(gpu["uuid"], ["CUSTOM_GPU_A100"])
    [(_, message)] = take(nats_server.url, name)
    assert message["required"] == ["CUSTOM_GPU_A100", "HW_CPU_X86_AVX2"]
    listed = client.simulate_get("/scheduler/pull/queues", headers=V1_2).json["queues"]
    assert {q["name"] for q in listed} == {queue_name(gpu["uuid"]), name}
    mine = next(q for q in listed if q["name"] == name)
    assert mine["capabilities"] == ["CUSTOM_GPU_A100"]
    assert mine["subject"] == f"berth.work.{name}"
    assert mine["flavor"] == {"uuid": gpu["uuid"], "name": "gpu"}


def test_bad_requests_are_400_and_write_nothing(
    db: Database, nats_server: NatsServer, make_client: MakeClient
) -> None:
    client = make_client(nats_server.url)
    flavor(client, "small", {"VCPU": 1})
    before = _rows(db)
    for body, words in [
        ({"flavor": "nope"}, "No flavor with uuid or name 'nope'"),
        ({"flavor": "small", "capabilities": ["CUSTOM_NOPE"]}, "CUSTOM_NOPE"),
        ({"flavor": "small", "count": 0}, "JSON does not validate"),
        (
            {"flavor": "small", "server_group": "00000000-0000-0000-0000-00000000000a"},
            "server group",
        ),
    ]:
        got = enqueue(client, **body)
        assert got.status_code == 400, (body, got.text)
        assert words in got.json["errors"][0]["detail"], got.text
    assert _rows(db) == before


def test_quota_refusal_writes_nothing(
    db: Database, nats_server: NatsServer, make_client: MakeClient
) -> None:
    client = make_client(nats_server.url)
    small = flavor(client, "small", {"VCPU": 2})
    limits = {"limits": {"instances": 3, "VCPU": 4}}
    put = client.simulate_put("/scheduler/quotas/p1", json=limits, headers=V1_2)
    assert put.status_code == 200, put.text
    assert enqueue(client, flavor="small", count=1).status_code == 202
    before = _rows(db)
    take(nats_server.url, queue_name(small["uuid"]))

    got = enqueue(client, flavor="small", count=2)
    assert got.status_code == 409, got.text
    assert got.json["errors"][0]["code"] == "berth.scheduler.quota_exceeded"
    assert [(e["resource"], e["asked"]) for e in got.json["excesses"]] == [("VCPU", 4)]
    assert _rows(db) == before
    assert take(nats_server.url, queue_name(small["uuid"]), wait=0.3) == []


def test_unknown_request_is_404_and_routes_need_1_2(
    db: Database, nats_server: NatsServer, make_client: MakeClient
) -> None:
    client = make_client(nats_server.url)
    missing = "/scheduler/requests/00000000-0000-0000-0000-00000000000b"
    assert client.simulate_get(missing, headers=V1_2).status_code == 404
    assert client.simulate_delete(missing, headers=V1_2).status_code == 404
    old = {"openstack-api-version": "scheduler 1.1"}
    assert client.simulate_get(missing, headers=old).status_code == 404
    body = {"flavor": "x", "project_id": "p", "user_id": "u"}
    assert client.simulate_post("/scheduler/requests", json=body, headers=old).status_code == 404
    assert client.simulate_get("/scheduler/pull/queues", headers=old).status_code == 404
