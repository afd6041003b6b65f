"""The /scheduler extension over HTTP (in-process Falcon app on SQLite)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import falcon.testing
import pytest

from berth.db.engine import Database
from berth.scheduler.explain import REASON_CODES, REJECTIONS
from tests.helpers import in_process_client
from tests.scheduler.conftest import host_uuid, usage, write_cloud

AGG = "aaaaaaaa-1111-2222-3333-444444444444"
GROUP = "99999999-0000-0000-0000-0000000000ff"
FLAVOR = {"resources": {"VCPU": 2, "MEMORY_MB": 1024}}


@pytest.fixture
def client(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> Iterator[falcon.testing.TestClient]:
    with in_process_client(
        sqlite_db, monkeypatch, scheduler_refresh_ms=0, log_requests=False
    ) as client:
        write_cloud(sqlite_db, 3, aggregates={3: {AGG}})
        yield client


def _select(client: falcon.testing.TestClient, **body: Any) -> falcon.testing.Result:
    return client.simulate_post("/scheduler/select_destinations", json={"flavor": FLAVOR, **body})


def test_versions_and_version_header(client: falcon.testing.TestClient) -> None:
    got = client.simulate_get("/scheduler")
    assert got.status_code == 200
    assert got.json["versions"][0]["max_version"] == "1.3"
    assert got.headers["berth-scheduler-version"] == "scheduler 1.3"
    bad = client.simulate_get("/scheduler", headers={"openstack-api-version": "scheduler 9.9"})
    assert bad.status_code == 406


def test_select_claims_and_names_hosts(
    client: falcon.testing.TestClient, sqlite_db: Database
) -> None:
    got = _select(client, num_instances=2, project_id="p", user_id="u")
    assert got.status_code == 200, got.text
    body = got.json
    assert body["claimed"] is True and len(body["selections"]) == 2
    first = body["selections"][0]
    assert first["host"]["name"].startswith("cn")
    host = first["host"]["uuid"]
    assert first["allocation_request"] == {
        "allocations": {host: {"resources": FLAVOR["resources"]}}
    }
    assert all("name" in alt["host"] for alt in first["alternates"])
    assert sum(u["VCPU"] for u in usage(sqlite_db).values()) == 4


def test_no_valid_host_is_409_with_explanation(client: falcon.testing.TestClient) -> None:
    got = _select(client, flavor={"resources": {"VCPU": 99}})
    assert got.status_code == 409
    assert got.json["errors"][0]["code"] == "berth.scheduler.no_valid_host"
    assert got.json["explanation"]["summary"] == "0 of 3 hosts: 3 lacked VCPU"
    assert got.json["explanation"]["stages"][0]["removed"] == {"lacked VCPU": 3}


def test_dry_run(client: falcon.testing.TestClient, sqlite_db: Database) -> None:
    got = _select(client, dry_run=True)
    assert got.status_code == 200 and got.json["claimed"] is False
    assert got.json["explanation"]["hosts_found"] == 3
    assert usage(sqlite_db) == {}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"flavor": {"resources": {}}},
        {"flavor": {"resources": {"VCPU": 0}}},
        {"flavor": FLAVOR, "num_instances": 0},
        {"flavor": FLAVOR, "server_group": {"uuid": "not-a-uuid"}},
        {"flavor": FLAVOR, "bogus": 1},
    ],
)
def test_bad_bodies_are_400(client: falcon.testing.TestClient, body: dict[str, Any]) -> None:
    got = client.simulate_post("/scheduler/select_destinations", json=body)
    assert got.status_code == 400, got.text


def test_unknown_class_is_400(client: falcon.testing.TestClient) -> None:
    got = _select(client, flavor={"resources": {"CUSTOM_NOPE": 1}})
    assert got.status_code == 400


def test_host_attributes_steer_scheduling(client: falcon.testing.TestClient) -> None:
    put = client.simulate_put(
        f"/scheduler/hosts/{host_uuid(1)}",
        json={"disabled": True, "disabled_reason": "maintenance", "metrics": {"cpu.percent": 5}},
    )
    assert put.status_code == 200
    shown = client.simulate_get(f"/scheduler/hosts/{host_uuid(1)}").json
    assert shown["disabled"] is True and shown["metrics"] == {"cpu.percent": 5.0}
    assert host_uuid(1) in client.simulate_get("/scheduler/hosts").json["hosts"]
    meta = client.simulate_put(
        f"/scheduler/aggregates/{AGG}/metadata", json={"metadata": {"availability_zone": "az1"}}
    )
    assert meta.status_code == 200
    assert client.simulate_get(f"/scheduler/aggregates/{AGG}/metadata").json == {
        "metadata": {"availability_zone": "az1"}
    }
    got = _select(client, availability_zone="az1")
    assert got.json["selections"][0]["host"]["uuid"] == host_uuid(3)
    refused = _select(client, availability_zone="nova", ignore_hosts=["cn2"])
    assert refused.status_code == 409
    assert refused.json["explanation"]["summary"] == (
        "0 of 3 hosts: 1 host disabled, 1 not in availability zone nova, 1 ignored by the request"
    )


def test_unknown_provider_is_404(client: falcon.testing.TestClient) -> None:
    missing = "12345678-1234-1234-1234-123456789012"
    assert client.simulate_get(f"/scheduler/hosts/{missing}").status_code == 404
    assert client.simulate_put(f"/scheduler/hosts/{missing}", json={}).status_code == 404


def test_server_group_lifecycle(client: falcon.testing.TestClient) -> None:
    made = client.simulate_post(
        "/scheduler/server_groups",
        json={
            "uuid": GROUP,
            "name": "web",
            "policy": "anti-affinity",
            "rules": {"max_server_per_host": 2},
        },
    )
    assert made.status_code == 201, made.text
    assert made.headers["location"].endswith(f"/scheduler/server_groups/{GROUP}")
    again = client.simulate_post(
        "/scheduler/server_groups", json={"uuid": GROUP, "policy": "affinity"}
    )
    assert again.status_code == 409
    bad = client.simulate_post(
        "/scheduler/server_groups", json={"policy": "affinity", "rules": {"max_server_per_host": 2}}
    )
    assert bad.status_code == 400
    placed = _select(client, num_instances=2, server_group=GROUP)
    assert placed.status_code == 200
    group = client.simulate_get(f"/scheduler/server_groups/{GROUP}").json
    assert {m["instance_uuid"] for m in group["members"]} == {
        s["instance_uuid"] for s in placed.json["selections"]
    }
    assert group["rules"] == {"max_server_per_host": 2}
    member = "12345678-0000-0000-0000-000000000000"
    assert (
        client.simulate_put(
            f"/scheduler/server_groups/{GROUP}/members/{member}", json={"host": host_uuid(2)}
        ).status_code
        == 204
    )
    assert (
        client.simulate_delete(f"/scheduler/server_groups/{GROUP}/members/{member}").status_code
        == 204
    )
    assert len(client.simulate_get("/scheduler/server_groups").json["server_groups"]) == 1
    assert client.simulate_delete(f"/scheduler/server_groups/{GROUP}").status_code == 204
    assert client.simulate_get(f"/scheduler/server_groups/{GROUP}").status_code == 404


def test_policy_refuses_non_admins(client: falcon.testing.TestClient) -> None:
    got = client.simulate_post(
        "/scheduler/select_destinations",
        json={"flavor": FLAVOR},
        headers={"x-auth-token": "someone"},
    )
    assert got.status_code == 403
    assert "berth:scheduler:select_destinations" in got.text


def test_rejection_labels_are_codes_not_request_data(client: falcon.testing.TestClient) -> None:
    """Zones, hosts and extra specs a client makes up show in the explanation, not in labels."""
    zone, name = f"az-{uuid.uuid4()}", f"host-{uuid.uuid4()}"
    spec = {"resources": FLAVOR["resources"], "extra_specs": {f"k{uuid.uuid4()}": "v"}}
    refused = _select(client, availability_zone=zone, ignore_hosts=[name], flavor=spec)
    assert refused.status_code == 409
    assert f"not in availability zone {zone}" in refused.json["explanation"]["summary"]
    latest = {"openstack-api-version": "placement latest"}
    assert client.simulate_put("/traits/CUSTOM_MADE_UP", headers=latest).status_code == 201
    lacked = _select(client, required_traits=["CUSTOM_MADE_UP"])
    assert lacked.json["explanation"]["summary"] == "0 of 3 hosts: 3 lacked CUSTOM_MADE_UP"
    labels = {s.labels["reason"] for s in REJECTIONS.collect()[0].samples}
    assert labels <= REASON_CODES
    assert "other_zone" in labels
