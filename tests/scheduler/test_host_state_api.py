"""Host state over HTTP (scheduler 1.3), and 1.0's host routes on top of it.

On SQLite, PostgreSQL and MariaDB: the in-process app over each database.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
from typer.testing import CliRunner

from berth import cli
from berth import settings as settings_mod
from berth.db.engine import Database
from berth.policy import Enforcer
from berth.services import Services
from tests.helpers import in_process_client
from tests.scheduler.conftest import host_uuid, write_cloud

# Placement's error codes show from placement 1.23 on.
V1_3 = {"openstack-api-version": "placement latest, scheduler 1.3"}
V1_2 = {"openstack-api-version": "placement latest, scheduler 1.2"}
SERVICE = {**V1_3, "x-auth-token": "nova", "x-roles": "service"}
READER = {**V1_3, "x-auth-token": "someone", "x-roles": "reader"}
H1, H2, H3 = host_uuid(1), host_uuid(2), host_uuid(3)
MISSING = "12345678-1234-1234-1234-123456789012"


def _state(host: str, namespace: str | None = None) -> str:
    return f"/scheduler/hosts/{host}/state" + (f"/{namespace}" if namespace else "")


@pytest.fixture
def make_client(db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A client over the test database with settings of the test's choosing (3 hosts)."""
    write_cloud(db, 3)
    opened: list[Any] = []

    def make(**settings: Any) -> falcon.testing.TestClient:
        manager = in_process_client(
            db, monkeypatch, scheduler_refresh_ms=0, log_requests=False, **settings
        )
        opened.append(manager)
        return manager.__enter__()

    yield make
    for manager in opened:
        manager.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Any) -> falcon.testing.TestClient:
    return make_client()


def _put(
    client: falcon.testing.TestClient,
    host: str,
    ns: str,
    state: dict[str, Any],
    generation: int,
    headers: dict[str, str] = V1_3,
    method: str = "PUT",
) -> falcon.testing.Result:
    body = {"generation": generation, "state": state}
    return client.simulate_request(method, _state(host, ns), json=body, headers=headers)


def _code(result: falcon.testing.Result) -> str:
    return str(result.json["errors"][0]["code"])


def test_write_read_patch_delete(client: falcon.testing.TestClient) -> None:
    made = _put(client, H1, "net", {"links": {"eth0": {"gbps": 10}}, "mtu": 9000}, 0)
    assert made.status_code == 200, made.text
    assert made.json["namespace"] == "net" and made.json["generation"] == 1
    received = made.json["received_at"]
    assert datetime.datetime.fromisoformat(received).tzinfo == datetime.UTC
    shown = client.simulate_get(_state(H1, "net"), headers=V1_3)
    assert (shown.status_code, shown.json) == (200, made.json)
    patch = {"links": {"eth1": {"gbps": 25}}, "mtu": None}
    patched = _put(client, H1, "net", patch, 1, method="PATCH")
    assert patched.status_code == 200, patched.text
    assert patched.json["state"] == {"links": {"eth0": {"gbps": 10}, "eth1": {"gbps": 25}}}
    assert patched.json["generation"] == 2
    every = client.simulate_get(_state(H1), headers=V1_3)
    entry = {k: v for k, v in patched.json.items() if k != "namespace"}
    assert every.json == {"provider_uuid": H1, "namespaces": {"net": entry}}
    gone = client.simulate_delete(_state(H1, "net"), headers=V1_3)
    assert gone.status_code == 204
    missing = client.simulate_get(_state(H1, "net"), headers=V1_3)
    assert (missing.status_code, _code(missing)) == (404, "berth.scheduler.state_not_found")
    again = client.simulate_delete(_state(H1, "net"), headers=V1_3)
    assert (again.status_code, _code(again)) == (404, "berth.scheduler.state_not_found")


def test_a_stale_generation_is_409(client: falcon.testing.TestClient) -> None:
    assert _put(client, H1, "net", {"a": 1}, 0).status_code == 200
    for generation, method in ((0, "PUT"), (2, "PUT"), (0, "PATCH")):
        stale = _put(client, H1, "net", {"a": 2}, generation, method=method)
        assert (stale.status_code, _code(stale)) == (409, "berth.scheduler.state_conflict")
    assert client.simulate_get(_state(H1, "net"), headers=V1_3).json["state"] == {"a": 1}


def test_too_large_is_413_and_writes_nothing(make_client: Any) -> None:
    client = make_client(scheduler_host_state_max_bytes=100)
    assert _put(client, H1, "net", {"a": 1}, 0).status_code == 200
    big = _put(client, H1, "net", {"a": "x" * 200}, 1)
    assert (big.status_code, _code(big)) == (413, "berth.scheduler.state_too_large")
    grown = _put(client, H1, "net", {"b": "y" * 95}, 1, method="PATCH")
    assert (grown.status_code, _code(grown)) == (413, "berth.scheduler.state_too_large")
    shown = client.simulate_get(_state(H1, "net"), headers=V1_3).json
    assert (shown["generation"], shown["state"]) == (1, {"a": 1})


def test_a_schema_refusal_is_400_naming_the_path(client: falcon.testing.TestClient) -> None:
    bad = _put(client, H1, "compute", {"metrics": {"cpu": "busy"}}, 0)
    assert (bad.status_code, _code(bad)) == (400, "berth.scheduler.state_invalid")
    assert "at $.metrics.cpu: 'busy' is not of type 'number'" in bad.json["errors"][0]["detail"]
    flags = _put(client, H1, "operator", {"disabled": "yes"}, 0)
    assert (flags.status_code, _code(flags)) == (400, "berth.scheduler.state_invalid")
    assert client.simulate_get(_state(H1), headers=V1_3).json["namespaces"] == {}


@pytest.mark.parametrize(
    "body",
    [
        {"state": {}},
        {"generation": 0},
        {"generation": -1, "state": {}},
        {"generation": 0, "state": []},
    ],
)
def test_bad_bodies_are_400(client: falcon.testing.TestClient, body: dict[str, Any]) -> None:
    got = client.simulate_put(_state(H1, "net"), json=body, headers=V1_3)
    assert got.status_code == 400, got.text


def test_unknown_host_and_bad_namespace(client: falcon.testing.TestClient) -> None:
    assert _put(client, MISSING, "net", {}, 0).status_code == 404
    assert client.simulate_get(_state(MISSING), headers=V1_3).status_code == 404
    assert _put(client, H1, "Net", {}, 0).status_code == 400


def test_the_routes_start_at_1_3(client: falcon.testing.TestClient) -> None:
    assert client.simulate_get(_state(H1), headers=V1_2).status_code == 404
    assert _put(client, H1, "net", {}, 0, headers=V1_2).status_code == 404
    assert client.simulate_get("/scheduler").json["versions"][0]["max_version"] == "1.3"


def test_policy_reporters_cannot_write_the_operator_namespace(
    client: falcon.testing.TestClient,
) -> None:
    assert _put(client, H1, "compute", {"metrics": {"cpu": 1}}, 0, SERVICE).status_code == 200
    refused = _put(client, H1, "operator", {"disabled": True}, 0, SERVICE)
    assert refused.status_code == 403
    assert "berth:scheduler:hosts:state:operator" in refused.text
    assert client.simulate_delete(_state(H1, "compute"), headers=READER).status_code == 403
    assert _put(client, H1, "net", {}, 0, READER).status_code == 403
    assert _put(client, H1, "operator", {"disabled": True}, 0).status_code == 200  # admin
    shown = client.simulate_get(_state(H1), headers=V1_3).json["namespaces"]
    assert set(shown) == {"compute", "operator"}


def test_policy_on_the_1_0_put(client: falcon.testing.TestClient) -> None:
    """A service may still report metrics through 1.0's PUT; no longer disable a host."""
    service = {"x-auth-token": "nova", "x-roles": "service"}
    path = f"/scheduler/hosts/{H1}"
    disable = client.simulate_put(path, json={"disabled": True}, headers=service)
    assert disable.status_code == 403
    metrics = client.simulate_put(path, json={"metrics": {"cpu": 3}}, headers=service)
    assert metrics.status_code == 200, metrics.text
    assert client.simulate_get(path).json["disabled"] is False


def test_the_1_0_put_does_not_clobber(client: falcon.testing.TestClient) -> None:
    path = f"/scheduler/hosts/{H1}"
    operator = {"disabled": True, "disabled_reason": "maintenance", "availability_zone": "az1"}
    assert client.simulate_put(path, json=operator).status_code == 200
    pushed = client.simulate_put(
        path,
        json={"metrics": {"cpu.percent": 5}},
        headers={"x-auth-token": "nova", "x-roles": "service"},
    )
    assert pushed.json == {**operator, "metrics": {"cpu.percent": 5.0}}
    assert client.simulate_get(path).json == pushed.json
    listed = client.simulate_get("/scheduler/hosts").json  # 1.0's shape
    assert listed == {"hosts": {H1: pushed.json}}
    namespaces = client.simulate_get(_state(H1), headers=V1_3).json["namespaces"]
    assert namespaces["operator"]["state"] == operator
    assert namespaces["compute"]["state"] == {"metrics": {"cpu.percent": 5}}


def test_list_with_filters(client: falcon.testing.TestClient) -> None:
    first = _put(client, H1, "compute", {"metrics": {"cpu": 1}}, 0).json
    first.pop("namespace")
    _put(client, H2, "net", {"a": 1}, 0)
    everything = client.simulate_get("/scheduler/hosts", headers=V1_3)
    assert everything.status_code == 200
    assert set(everything.json["hosts"]) == {H1, H2}
    assert everything.json["hosts"][H1]["namespaces"]["compute"] == first
    compute = client.simulate_get("/scheduler/hosts?namespace=compute", headers=V1_3).json
    assert compute == {"hosts": {H1: {"namespaces": {"compute": first}}}}
    since = client.simulate_get(
        "/scheduler/hosts", params={"changed_since": first["received_at"]}, headers=V1_3
    ).json
    assert set(since["hosts"]) == {H1, H2}  # received at or after: inclusive
    later = "2999-01-01T00:00:00+01:00"
    assert client.simulate_get(
        "/scheduler/hosts", params={"changed_since": later}, headers=V1_3
    ).json == {"hosts": {}}
    for query in (
        "changed_since=yesterday",
        "colour=red",
        "namespace=Bad",
        "namespace=a&namespace=b",
    ):
        got = client.simulate_get("/scheduler/hosts", query_string=query, headers=V1_3)
        assert got.status_code == 400, query


def test_state_goes_with_the_provider(client: falcon.testing.TestClient) -> None:
    _put(client, H3, "net", {"a": 1}, 0)
    _put(client, H3, "operator", {"disabled": True}, 0)
    placement = {"openstack-api-version": "placement latest"}
    assert client.simulate_delete(f"/resource_providers/{H3}", headers=placement).status_code == 204
    assert client.simulate_get("/scheduler/hosts", headers=V1_3).json == {"hosts": {}}
    assert client.simulate_get(_state(H3), headers=V1_3).status_code == 404


def test_namespaced_state_steers_scheduling(make_client: Any) -> None:
    client = make_client(
        scheduler_filters="host_enabled,host_fresh,metrics_threshold",
        scheduler_metric_limits="net:/load<=1",
        scheduler_host_fresh_namespace="net",
    )
    _put(client, H1, "net", {"load": 5}, 0)
    _put(client, H2, "net", {"load": 0.5}, 0)
    body = {"flavor": {"resources": {"VCPU": 1}}, "dry_run": True}
    got = client.simulate_post("/scheduler/select_destinations", json=body)
    assert got.json["selections"][0]["host"]["uuid"] == H2
    assert got.json["explanation"]["summary"] == (
        "1 of 3 hosts: 1 no net state: counted as down, 1 metric net:/load<=1 not met"
    )


# -- schemas registered by the operator ------------------------------------------------------

NET_SCHEMA = '{"type": "object", "properties": {"gbps": {"type": "number", "minimum": 0}}}'


def test_an_operator_schema_is_enforced(make_client: Any, tmp_path: Path) -> None:
    (tmp_path / "net.json").write_text(NET_SCHEMA)
    client = make_client(scheduler_host_state_schema_dir=str(tmp_path))
    assert _put(client, H1, "net", {"gbps": 10}, 0).status_code == 200
    bad = _put(client, H1, "net", {"gbps": -1}, 1, method="PATCH")
    assert (bad.status_code, _code(bad)) == (400, "berth.scheduler.state_invalid")
    assert "at $.gbps: -1 is less than the minimum of 0" in bad.text
    assert _put(client, H1, "other", {"gbps": -1}, 0).status_code == 200  # no schema: free


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        ("net.json", "{not json", "net.json: cannot read JSON"),
        ("net.json", '{"type": "nonsense"}', "net.json: not a valid JSON Schema"),
        ("net.json", "[1]", "net.json: a schema must be a JSON object"),
        ("operator.json", "{}", "operator.json: the operator namespace's schema is built in"),
        ("Bad Name.json", "{}", "'Bad Name' is not a namespace name"),
    ],
)
def test_a_bad_schema_stops_the_process_at_start(
    sqlite_db: Database, tmp_path: Path, name: str, text: str, said: str
) -> None:
    (tmp_path / name).write_text(text)
    settings = settings_mod.load(
        environ={}, database_url=sqlite_db.url, scheduler_host_state_schema_dir=str(tmp_path)
    )
    with pytest.raises(ValueError, match="scheduler_host_state_schema_dir") as caught:
        Services(settings=settings, db=sqlite_db, enforcer=Enforcer(True))
    assert said in str(caught.value)


def test_berth_serve_refuses_a_bad_schema_before_starting(tmp_path: Path) -> None:
    (tmp_path / "net.json").write_text('{"type": 12}')
    env = {"BERTH_SCHEDULER_HOST_STATE_SCHEMA_DIR": str(tmp_path), "BERTH_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(cli.app, ["serve", "--no-migrate"], env=env)
    assert result.exit_code == 2
    said = " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())  # unboxed, unwrapped
    assert "net.json: not a valid JSON Schema" in said
