"""/scheduler/flavors over HTTP (in-process Falcon app on SQLite)."""

from __future__ import annotations

from typing import Any

import falcon.testing
import pytest

# Placement's error codes show from placement 1.23 on.
V1_1 = {"openstack-api-version": "placement latest, scheduler 1.1"}
FLAVOR_UUID = "11111111-2222-3333-4444-555555555555"
BODY = {
    "name": "m1.small",
    "resources": {"VCPU": 1, "MEMORY_MB": 2048},
    "required_traits": ["HW_CPU_X86_AVX2"],
    "forbidden_traits": ["COMPUTE_STATUS_DISABLED"],
    "extra_specs": {"hw:cpu_policy": "dedicated"},
}


def _post(client: falcon.testing.TestClient, **body: Any) -> falcon.testing.Result:
    return client.simulate_post("/scheduler/flavors", json={**BODY, **body}, headers=V1_1)


def test_create_answers_201_with_the_flavor_and_its_location(
    client: falcon.testing.TestClient,
) -> None:
    made = _post(client, uuid=FLAVOR_UUID)
    assert made.status_code == 201, made.text
    assert made.headers["location"].endswith(f"/scheduler/flavors/{FLAVOR_UUID}")
    assert made.headers["berth-scheduler-version"] == "scheduler 1.3"
    assert made.json == {**BODY, "uuid": FLAVOR_UUID}
    shown = client.simulate_get(f"/scheduler/flavors/{FLAVOR_UUID}", headers=V1_1)
    assert (shown.status_code, shown.json) == (200, made.json)


def test_list_and_delete_round_trip(client: falcon.testing.TestClient) -> None:
    small = _post(client).json
    large = _post(client, name="m1.large", resources={"VCPU": 4}).json
    assert small["uuid"] != large["uuid"]  # generated
    listed = client.simulate_get("/scheduler/flavors", headers=V1_1)
    assert listed.json == {"flavors": [small, large]}
    gone = client.simulate_delete(f"/scheduler/flavors/{small['uuid']}", headers=V1_1)
    assert gone.status_code == 204
    assert client.simulate_get("/scheduler/flavors", headers=V1_1).json == {"flavors": [large]}
    again = client.simulate_delete(f"/scheduler/flavors/{small['uuid']}", headers=V1_1)
    assert again.status_code == 404


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"resources": {"CUSTOM_NOPE": 1}}, "No such resource class CUSTOM_NOPE."),
        ({"required_traits": ["CUSTOM_NOPE"]}, "No such trait(s): CUSTOM_NOPE."),
        ({"forbidden_traits": ["CUSTOM_NOPE"]}, "No such trait(s): CUSTOM_NOPE."),
        ({"resources": {"VCPU": 0}}, "JSON does not validate: 0 is less than the minimum of 1"),
        ({"resources": {"VCPU": 2**31}}, "is greater than the maximum of 2147483647"),
        ({"resources": {}}, "JSON does not validate: {} should be non-empty"),
        ({"resources": {"vcpu": 1}}, "JSON does not validate"),
        ({"bogus": 1}, "Additional properties are not allowed ('bogus' was unexpected)"),
        (
            {"required_traits": ["HW_CPU_X86_AVX2"], "forbidden_traits": ["HW_CPU_X86_AVX2"]},
            "Traits both required and forbidden: HW_CPU_X86_AVX2",
        ),
        ({"name": ""}, "JSON does not validate"),
        ({"name": "x" * 256}, "is too long"),
        ({"uuid": "not-a-uuid"}, "is not a 'uuid'"),
        ({"extra_specs": {"key": 1}}, "1 is not of type 'string'"),
        ({"required_traits": ["A", "A"]}, "has non-unique elements"),
    ],
)
def test_bad_bodies_are_400(
    client: falcon.testing.TestClient, body: dict[str, Any], detail: str
) -> None:
    got = _post(client, **body)
    assert got.status_code == 400, got.text
    assert detail in got.json["errors"][0]["detail"]
    assert client.simulate_get("/scheduler/flavors", headers=V1_1).json == {"flavors": []}


@pytest.mark.parametrize("missing", ["name", "resources"])
def test_name_and_resources_are_required(client: falcon.testing.TestClient, missing: str) -> None:
    body = {k: v for k, v in BODY.items() if k != missing}
    got = client.simulate_post("/scheduler/flavors", json=body, headers=V1_1)
    assert got.status_code == 400
    assert f"'{missing}' is a required property" in got.text


def test_a_taken_name_or_uuid_is_409(client: falcon.testing.TestClient) -> None:
    assert _post(client, uuid=FLAVOR_UUID).status_code == 201
    name = _post(client)
    assert name.status_code == 409
    assert name.json["errors"][0]["code"] == "placement.duplicate_name"
    assert "A flavor with name m1.small already exists" in name.text
    uuid = _post(client, uuid=FLAVOR_UUID, name="other")
    assert uuid.status_code == 409
    assert f"A flavor with uuid {FLAVOR_UUID} already exists" in uuid.text


def test_unknown_uuid_is_404(client: falcon.testing.TestClient) -> None:
    for path in (f"/scheduler/flavors/{FLAVOR_UUID}", "/scheduler/flavors/not-a-uuid"):
        got = client.simulate_get(path, headers=V1_1)
        assert got.status_code == 404
        assert got.json["errors"][0]["code"] == "berth.scheduler.flavor_not_found"


@pytest.mark.parametrize("version", [None, {"openstack-api-version": "scheduler 1.0"}])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/scheduler/flavors"),
        ("POST", "/scheduler/flavors"),
        ("GET", f"/scheduler/flavors/{FLAVOR_UUID}"),
        ("DELETE", f"/scheduler/flavors/{FLAVOR_UUID}"),
    ],
)
def test_the_routes_are_not_there_at_scheduler_1_0(
    client: falcon.testing.TestClient, version: dict[str, str] | None, method: str, path: str
) -> None:
    """Absent, the version is the minimum (1.0): 404 before the policy is asked, as Placement."""
    headers = {**(version or {}), "x-auth-token": "someone"}
    got = client.simulate_request(method, path, json=BODY, headers=headers)
    assert got.status_code == 404


def test_the_newest_version_is_1_2(client: falcon.testing.TestClient) -> None:
    home = client.simulate_get("/scheduler").json["versions"][0]
    assert (home["min_version"], home["max_version"]) == ("1.0", "1.3")


@pytest.mark.parametrize(
    ("method", "path", "action"),
    [
        ("GET", "/scheduler/flavors", "list"),
        ("POST", "/scheduler/flavors", "create"),
        ("GET", f"/scheduler/flavors/{FLAVOR_UUID}", "show"),
        ("DELETE", f"/scheduler/flavors/{FLAVOR_UUID}", "delete"),
    ],
)
def test_policy_refuses_non_admins(
    client: falcon.testing.TestClient, method: str, path: str, action: str
) -> None:
    got = client.simulate_request(
        method, path, json=BODY, headers={**V1_1, "x-auth-token": "someone"}
    )
    assert got.status_code == 403
    assert f"berth:scheduler:flavors:{action}" in got.text
