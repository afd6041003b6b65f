"""``/scheduler/quotas/...`` over HTTP (scheduler 1.1), in process on SQLite."""

from __future__ import annotations

from typing import Any

import falcon.testing
import pytest

from berth import settings as settings_mod
from berth.api.app import create_app
from berth.db.engine import Database
from berth.policy import Enforcer
from berth.scheduler.quotas import Scope
from berth.services import Services
from tests.scheduler.quotas.helpers import allocate, big_host, reserve

V1_1 = {"openstack-api-version": "scheduler 1.1"}
PROJECT = "/scheduler/quotas/p1"
USER = "/scheduler/quotas/p1/users/u1"
LIMITS = {"instances": 10, "VCPU": 40, "MEMORY_MB": 81920}


def _put(client: falcon.testing.TestClient, path: str, body: Any) -> falcon.testing.Result:
    return client.simulate_put(path, json=body, headers=V1_1)


def test_version_1_1_is_offered(client: falcon.testing.TestClient) -> None:
    got = client.simulate_get("/scheduler")
    assert got.json["versions"][0]["min_version"] == "1.0"
    assert got.json["versions"][0]["max_version"] == "1.3"


@pytest.mark.parametrize("path", [PROJECT, USER])
def test_put_get_delete_round_trip(client: falcon.testing.TestClient, path: str) -> None:
    empty = client.simulate_get(path, headers=V1_1)
    assert empty.status_code == 200, empty.text
    assert empty.json["limits"] == {}
    assert empty.json["usage"] == {"instances": {"in_use": 0, "reserved": 0}}

    put = _put(client, path, {"limits": LIMITS})
    assert put.status_code == 200, put.text
    got = client.simulate_get(path, headers=V1_1)
    assert got.json == put.json
    assert got.json["project_id"] == "p1"
    assert got.json.get("user_id") == ("u1" if "users" in path else None)
    assert got.json["limits"] == LIMITS
    assert got.json["usage"]["VCPU"] == {"in_use": 0, "reserved": 0}

    assert _put(client, path, {"limits": {"VCPU": 8}}).json["limits"] == {"VCPU": 8}
    deleted = client.simulate_delete(path, headers=V1_1)
    assert deleted.status_code == 204 and deleted.text == ""
    assert client.simulate_get(path, headers=V1_1).json["limits"] == {}
    assert client.simulate_delete(path, headers=V1_1).status_code == 204


def test_project_and_user_limits_are_apart(client: falcon.testing.TestClient) -> None:
    _put(client, PROJECT, {"limits": {"instances": 5}})
    _put(client, USER, {"limits": {"instances": 2}})
    assert client.simulate_get(PROJECT, headers=V1_1).json["limits"] == {"instances": 5}
    client.simulate_delete(PROJECT, headers=V1_1)
    assert client.simulate_get(USER, headers=V1_1).json["limits"] == {"instances": 2}


def test_usage_shows_allocations_as_get_usages_does_and_reservations(
    client: falcon.testing.TestClient, sqlite_db: Database
) -> None:
    host = big_host(sqlite_db)
    allocate(sqlite_db, host, "p1", "u1", {"VCPU": 2, "MEMORY_MB": 512})
    allocate(sqlite_db, host, "p1", "u2", {"VCPU": 4})
    reserve(sqlite_db, Scope("p1", "u1"), {"VCPU": 1}, count=3, ttl=3600, now=None)
    _put(client, PROJECT, {"limits": {"DISK_GB": 100}})

    got = client.simulate_get(PROJECT, headers=V1_1).json["usage"]
    placement = client.simulate_get(
        "/usages",
        params={"project_id": "p1"},
        headers={"openstack-api-version": "placement 1.9"},
    ).json["usages"]
    assert {r: u["in_use"] for r, u in got.items() if r != "instances"} == {
        **placement,
        "DISK_GB": 0,
    }
    assert got == {
        "instances": {"in_use": 2, "reserved": 3},
        "VCPU": {"in_use": 6, "reserved": 3},
        "MEMORY_MB": {"in_use": 512, "reserved": 0},
        "DISK_GB": {"in_use": 0, "reserved": 0},
    }
    mine = client.simulate_get(USER, headers=V1_1).json["usage"]
    assert mine["instances"] == {"in_use": 1, "reserved": 3}
    assert mine["VCPU"] == {"in_use": 2, "reserved": 3}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"limits": {"CUSTOM_NOPE": 1}}, "No such resource class(es): CUSTOM_NOPE"),
        ({"limits": {"VCPU": -1}}, "JSON does not validate"),
        ({"limits": {"VCPU": 2**31}}, "JSON does not validate"),
        ({"limits": {"VCPU": "4"}}, "JSON does not validate"),
        ({"limits": {"VCPU": 1.5}}, "JSON does not validate"),
        ({"limits": {"vcpu": 1}}, "JSON does not validate"),
        ({"limits": {"VCPU": 1}, "extra": 1}, "JSON does not validate"),
        ({"limits": []}, "JSON does not validate"),
        ({}, "JSON does not validate"),
    ],
)
def test_bad_bodies_are_400(
    client: falcon.testing.TestClient, body: dict[str, Any], words: str
) -> None:
    got = _put(client, PROJECT, body)
    assert got.status_code == 400, got.text
    assert words in got.json["errors"][0]["detail"]
    assert client.simulate_get(PROJECT, headers=V1_1).json["limits"] == {}


def test_too_long_an_id_is_400(client: falcon.testing.TestClient) -> None:
    got = client.simulate_get(f"/scheduler/quotas/{'p' * 256}", headers=V1_1)
    assert got.status_code == 400


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("path", [PROJECT, USER])
def test_not_there_at_scheduler_1_0(
    client: falcon.testing.TestClient, method: str, path: str
) -> None:
    for headers in ({}, {"openstack-api-version": "scheduler 1.0"}):
        got = client.simulate_request(method, path, json={"limits": LIMITS}, headers=headers)
        assert got.status_code == 404, (headers, got.text)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_policy_refuses_non_admins(client: falcon.testing.TestClient, method: str) -> None:
    action = {"GET": "show", "PUT": "update", "DELETE": "delete"}[method]
    got = client.simulate_request(
        method,
        USER,
        json={"limits": LIMITS},
        headers={**V1_1, "x-auth-token": "u1:p1"},
    )
    assert got.status_code == 403
    assert f"berth:scheduler:quotas:{action}" in got.text


def test_a_policy_may_let_readers_see_their_own_project(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rules are checked against the project the URL names."""
    monkeypatch.setattr(falcon.testing.client.wsgiref.validate, "validator", lambda app: app)
    loaded = settings_mod.load(environ={}, database_url=str(sqlite_db.url), log_requests=False)
    rule = {"berth:scheduler:quotas:show": "rule:admin_or_project_reader_or_service_api"}
    services = Services(settings=loaded, db=sqlite_db, enforcer=Enforcer(True, rule))
    client = falcon.testing.TestClient(create_app(loaded, services))
    reader = {**V1_1, "x-auth-token": "u1:p1", "x-roles": "reader"}
    try:
        assert client.simulate_get(PROJECT, headers=reader).status_code == 200
        assert client.simulate_get(USER, headers=reader).status_code == 200
        assert client.simulate_get("/scheduler/quotas/p2", headers=reader).status_code == 403
        put = client.simulate_put(PROJECT, json={"limits": {}}, headers=reader)
        assert put.status_code == 403
    finally:
        services.close()
